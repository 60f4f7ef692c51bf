import Foundation

/// The instruction-set extensions the kernel reports for this CPU (`/proc/cpuinfo` flags). The
/// kernel only lists AVX-512 when the OS saves its state (XSAVE), so a listed flag is usable.
public struct CPUFeatures: Equatable, Sendable {
    public var vendor: String
    public var flags: Set<String>

    public init(vendor: String, flags: Set<String>) {
        self.vendor = vendor
        self.flags = flags
    }

    /// Reads the first processor's entry; an unreadable or absent file gives no flags (so nothing
    /// is ever forced on a machine we cannot inspect).
    public static func current() -> CPUFeatures {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
            return CPUFeatures(vendor: "", flags: [])
        }
        return parse(cpuinfo: text)
    }

    public static func parse(cpuinfo text: String) -> CPUFeatures {
        var vendor = ""
        var flags: Set<String> = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if key == "vendor_id", vendor.isEmpty { vendor = value }
            if key == "flags", flags.isEmpty { flags = Set(value.split(separator: " ").map(String.init)) }
            if !vendor.isEmpty, !flags.isEmpty { break }
        }
        return CPUFeatures(vendor: vendor, flags: flags)
    }

    /// The AVX-512 subset OpenBLAS's SkylakeX kernels use (F, CD, BW, DQ, VL).
    public var hasAVX512: Bool { ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) }
    public var hasAVX2: Bool { flags.contains("avx2") && flags.contains("fma") }
    public var hasAVX: Bool { flags.contains("avx") }
    public var isAMD: Bool { vendor == "AuthenticAMD" }
}
