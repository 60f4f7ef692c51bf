import ForgeCore

/// What a sample type shows the text LLM about an image.
public enum ContextKind: String, Sendable, Codable, CaseIterable {
    /// Captions only (LLaVA's conversation type).
    case captions
    /// Captions, a blank line, then one normalized box per line (detail and reasoning types).
    case captionsAndBoxes = "captions_and_boxes"

    /// The built-in mapping for LLaVA's three types; other types declare theirs in type.yaml.
    public static func builtin(forType type: String) -> ContextKind? {
        switch type {
        case "conversation": return .captions
        case "detail", "reasoning": return .captionsAndBoxes
        default: return nil
        }
    }
}

/// One image's annotations as the store holds them, in file order.
public struct ImageAnnotations: Sendable, Equatable {
    public struct Box: Sendable, Equatable {
        public var category: String
        /// COCO [x, y, w, h] in pixels.
        public var x, y, w, h: Double
        public init(category: String, x: Double, y: Double, w: Double, h: Double) {
            self.category = category; self.x = x; self.y = y; self.w = w; self.h = h
        }
    }

    public var imageID: Int64
    public var fileName: String
    public var width: Int64
    public var height: Int64
    public var captions: [String]
    public var boxes: [Box]

    public init(imageID: Int64, fileName: String, width: Int64, height: Int64, captions: [String], boxes: [Box]) {
        self.imageID = imageID; self.fileName = fileName; self.width = width; self.height = height
        self.captions = captions; self.boxes = boxes
    }
}

public struct SymbolicContext: Sendable, Equatable {
    public var text: String
    /// Boxes left out because w ≤ 0 or h ≤ 0.
    public var droppedBoxes: Int
}

/// LLaVA's symbolic representation of an image, exactly:
///
///     A man riding a horse on a beach.        ← captions, stripped, file order
///     …
///                                             ← blank line (only when there are boxes)
///     person: [0.681, 0.242, 0.774, 0.694]    ← x/W, y/H, (x+w)/W, (y+h)/H, clamped, round(·, 3)
public enum SymbolicContextFormatter {
    public static func format(_ a: ImageAnnotations, kind: ContextKind) -> SymbolicContext {
        // Appends into one string (no per-line arrays or interpolation): `context --all` formats
        // every image of a 118K-image set.
        var text = ""
        text.reserveCapacity(64 * a.captions.count + 40 * a.boxes.count)
        for (i, caption) in a.captions.enumerated() {
            if i > 0 { text.append("\n") }
            text.append(PythonText.strip(caption))
        }
        var dropped = 0
        if kind == .captionsAndBoxes {
            let W = Double(a.width), H = Double(a.height)
            var wroteBox = false
            for b in a.boxes {
                guard b.w > 0, b.h > 0 else { dropped += 1; continue }
                if !wroteBox {
                    if !a.captions.isEmpty { text.append("\n\n") }
                    wroteBox = true
                } else {
                    text.append("\n")
                }
                text.append(b.category)
                text.append(": [")
                text.append(PythonFloat.roundedRepr(clamp01(b.x / W)))
                text.append(", ")
                text.append(PythonFloat.roundedRepr(clamp01(b.y / H)))
                text.append(", ")
                text.append(PythonFloat.roundedRepr(clamp01((b.x + b.w) / W)))
                text.append(", ")
                text.append(PythonFloat.roundedRepr(clamp01((b.y + b.h) / H)))
                text.append("]")
            }
        }
        return SymbolicContext(text: text, droppedBoxes: dropped)
    }

    @inline(__always) static func clamp01(_ v: Double) -> Double { v < 0 ? 0 : (v > 1 ? 1 : v) }
}

/// Python's `str.strip()`: removes the characters Python's `str.isspace` accepts, which is
/// wider than Swift's whitespace set (it includes U+001C…U+001F) and narrower in places.
public enum PythonText {
    public static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    public static func strip(_ s: String) -> String {
        // Fast path: most captions start and end with a printable ASCII byte (no scalar walk).
        let utf8 = s.utf8
        if let first = utf8.first, let last = utf8.last,
           (0x21..<0x80).contains(first), (0x21..<0x80).contains(last) {
            return s
        }
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        return String(scalars[first...last])
    }
}
