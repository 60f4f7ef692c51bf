/// SHA-256 (FIPS 180-4), incremental. Used for request-cache keys and fingerprints, where a
/// collision would silently reuse a wrong response; a cryptographic hash makes that a non-issue.
/// The block function lives in `SHA256OneShot`, which `hex` uses for whole arrays.
public struct SHA256 {
    private var state = SHA256OneShot.initialState
    private var buffer: [UInt8] = []
    private var totalLength: UInt64 = 0

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        totalLength &+= UInt64(bytes.count)
        buffer += bytes
        let whole = buffer.count / 64 * 64
        guard whole > 0 else { return }
        compressBlocks(whole: whole)
        buffer.removeFirst(whole)
    }

    public mutating func update(_ string: String) { update(Array(string.utf8)) }

    /// Compresses the first `whole` bytes (a multiple of 64) of `buffer`.
    private mutating func compressBlocks(whole: Int) {
        var w = [UInt32](repeating: 0, count: 64)
        var s = state
        SHA256OneShot.k.withUnsafeBufferPointer { kp in
            w.withUnsafeMutableBufferPointer { wp in
                buffer.withUnsafeBufferPointer { src in
                    for start in stride(from: 0, to: whole, by: 64) {
                        SHA256OneShot.compress(UnsafeBufferPointer(rebasing: src[start..<(start + 64)]), &s, wp, kp)
                    }
                }
            }
        }
        state = s
    }

    public mutating func finalize() -> [UInt8] {
        let bitLength = totalLength &* 8
        buffer.append(0x80)
        while buffer.count % 64 != 56 { buffer.append(0) }
        for i in (0..<8).reversed() { buffer.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        compressBlocks(whole: buffer.count)
        buffer.removeAll()
        var out: [UInt8] = []
        withUnsafeBytes(of: state) { raw in
            for word in raw.bindMemory(to: UInt32.self) {
                out += [UInt8(word >> 24), UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 8), UInt8(truncatingIfNeeded: word)]
            }
        }
        return out
    }

    /// Lowercase hex of the digest of everything given so far plus `suffix`, leaving this hasher
    /// as it was: hash a shared prefix once, then each message's tail from that midstate.
    public func hex<C: Collection>(appending suffix: C) -> String where C.Element == UInt8 {
        var copy = self
        copy.update(Array(suffix))
        let digest = copy.finalize()
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 64)
        for (i, byte) in digest.enumerated() {
            out[i * 2] = digits[Int(byte >> 4)]
            out[i * 2 + 1] = digits[Int(byte & 0xF)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        SHA256OneShot.hex(Array(bytes))
    }

    public static func hex(_ string: String) -> String { hex(Array(string.utf8)) }
}
