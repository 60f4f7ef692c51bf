/// Text moving through normalizers and pre-tokenizers: Unicode scalars laid out contiguously,
/// split into words, with each scalar's origin — its index among the scalars of the text given to
/// `encode` — so token offsets (and chat-template label masks) survive every transformation.
///
/// Word `i` is `scalars[wordStart(i) ..< ends[i]]`; removed text simply is not in the buffer.
struct PieceBuffer {
    var scalars: [UInt32] = []
    var origin: [Int32] = []
    var ends: [Int] = []

    init() {}

    init(capacity: Int) {
        scalars.reserveCapacity(capacity)
        origin.reserveCapacity(capacity)
    }

    /// One word holding `scalars` with the given origins.
    init(scalars: [UInt32], origin: [Int32]) {
        self.scalars = scalars
        self.origin = origin
        ends = scalars.isEmpty ? [] : [scalars.count]
    }

    var wordCount: Int { ends.count }
    @inline(__always) func wordStart(_ i: Int) -> Int { i == 0 ? 0 : ends[i - 1] }
    @inline(__always) func wordRange(_ i: Int) -> Range<Int> { wordStart(i)..<ends[i] }

    @inline(__always) mutating func append(_ scalar: UInt32, origin o: Int32) {
        scalars.append(scalar)
        origin.append(o)
    }

    /// Closes the current word (no-op when it is empty: empty words never reach the model).
    @inline(__always) mutating func closeWord() {
        let start = ends.last ?? 0
        if scalars.count > start { ends.append(scalars.count) }
    }

    /// Appends `range` of `other` as-is and closes it as a word.
    @inline(__always) mutating func appendWord(from other: PieceBuffer, _ range: Range<Int>) {
        guard !range.isEmpty else { return }
        scalars.append(contentsOf: other.scalars[range])
        origin.append(contentsOf: other.origin[range])
        ends.append(scalars.count)
    }
}

/// How a pre-tokenizer's pattern matches become words (HF `SplitDelimiterBehavior`).
enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// Splits `word` (a range of `input`) at `matches` (sorted, non-overlapping ranges inside the
    /// word, relative to its start) and appends the resulting words to `out`.
    /// `invert` swaps the roles of matches and the text between them, like HF's `invert`.
    func apply(matches: [Range<Int>], word: Range<Int>, of input: PieceBuffer, invert: Bool, into out: inout PieceBuffer) {
        // Pieces: (range relative to word, isMatch)
        var pieces: [(Range<Int>, Bool)] = []
        pieces.reserveCapacity(matches.count * 2 + 1)
        var cursor = 0
        let n = word.count
        for m in matches {
            if m.lowerBound > cursor { pieces.append((cursor..<m.lowerBound, invert)) }
            if !m.isEmpty { pieces.append((m, !invert)) }
            cursor = m.upperBound
        }
        if cursor < n { pieces.append((cursor..<n, invert)) }

        let base = word.lowerBound
        func emit(_ r: Range<Int>) { out.appendWord(from: input, (base + r.lowerBound)..<(base + r.upperBound)) }
        switch self {
        case .removed:
            for (r, isMatch) in pieces where !isMatch { emit(r) }
        case .isolated:
            for (r, _) in pieces { emit(r) }
        case .contiguous:
            var current: Range<Int>? = nil
            var currentIsMatch = false
            for (r, isMatch) in pieces {
                if let c = current, isMatch && currentIsMatch {
                    current = c.lowerBound..<r.upperBound
                } else {
                    if let c = current { emit(c) }
                    current = r
                    currentIsMatch = isMatch
                }
            }
            if let c = current { emit(c) }
        case .mergedWithPrevious:
            // A match joins the piece before it, unless that piece was itself a match.
            var merged: [Range<Int>] = []
            var previousWasMatch = false
            for (r, isMatch) in pieces {
                if isMatch, !previousWasMatch, let last = merged.last {
                    merged[merged.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    merged.append(r)
                }
                previousWasMatch = isMatch
            }
            for r in merged { emit(r) }
        case .mergedWithNext:
            // A match joins the piece after it, unless that piece is itself a match.
            var merged: [Range<Int>] = []
            var nextWasMatch = false
            for (r, isMatch) in pieces.reversed() {
                if isMatch, !nextWasMatch, let last = merged.last {
                    merged[merged.count - 1] = r.lowerBound..<last.upperBound
                } else {
                    merged.append(r)
                }
                nextWasMatch = isMatch
            }
            for r in merged.reversed() { emit(r) }
        }
    }
}
