import ForgeCore
import XCTest
@testable import Inference

/// The shortest completion that token-budget-aware closing forces, against brute force: a
/// breadth-first search over all 256 bytes whose states are the constraint's own sets of live
/// stacks (no reduced alphabet, no canonical ids, no multi-source search), on every prefix of
/// valid documents — inside keys, strings with minLength, numbers, escapes, partial UTF-8, after
/// commas, arrays with minItems, nested required keys, enums, undecided anyOf — and in
/// json_object mode. Then the greedy tokenization of a completion, and the cache per state.
final class ShortestCompletionTests: XCTestCase {
    static let byteVocabulary = TokenVocabulary(tokenBytes: (0..<256).map { [UInt8($0)] } + [nil])
    static let eos = 256

    /// Strings are short (maxLength ≤ 4) so that the brute force's state space stays small.
    static let schema = """
        {"type": "object", "properties": {
           "name": {"type": "string", "minLength": 2, "maxLength": 3},
           "tags": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"enum": ["x", "xyz", 7]}},
           "size": {"type": "number"},
           "pair": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}, "required": ["b"],
                    "additionalProperties": false},
           "either": {"anyOf": [{"type": "string", "minLength": 3, "maxLength": 4}, {"enum": ["ab"]}, {"type": "integer"},
                                {"type": "object", "properties": {"k": {"type": "null"}}, "required": ["k"], "additionalProperties": false},
                                {"type": "object", "properties": {"k": {"type": "string", "maxLength": 2}, "m": {"type": "boolean"}},
                                 "required": ["k", "m"], "additionalProperties": false}]}
         }, "required": ["name", "tags", "pair", "either"], "additionalProperties": false}
        """
    static let documents = [
        #"{"name":"ab","tags":["x","xyz"],"size":-1.5e3,"pair":{"a":7,"b":true},"either":"abc"}"#,
        #"{ "name": "a\n\u00e9", "tags": [7, "x", "x"], "pair": {"b": false}, "either": {"k": "q", "m": true}}"#,
        #"{"name":"éa","tags":["xyz",7],"size":0.25,"pair":{"a":-12,"b":false},"either":{"k":null}}"#,
        #"{"name":"abc","tags":["x","x"],"pair":{"b":true},"either":-3}"#,
    ]

    func makeConstraint(_ format: ResponseFormat, vocabulary: TokenVocabulary = byteVocabulary) throws -> TokenConstraint {
        try XCTUnwrap(JSONConstraintCompiler(vocabulary: vocabulary, maxWhitespaceRun: 2).makeConstraint(for: format, stopTokenIDs: [Self.eos]))
    }

    /// Bytes of the shortest completion from `c`'s state by brute force (all 256 bytes per
    /// level, states = sets of live stacks), or nil beyond `maxDepth`.
    func bruteForceLength(_ c: TokenConstraint, maxDepth: Int = 80) -> Int? {
        let saved = c.stacks
        defer { c.stacks = saved }
        var level = [saved]
        var seen: Set<Set<[JSONFrame]>> = [Set(saved)]
        for depth in 0...maxDepth {
            for stacks in level {
                c.stacks = stacks
                if c.canEnd { return depth }
            }
            var next: [[[JSONFrame]]] = []
            for stacks in level {
                for b in 0...255 {
                    c.stacks = stacks
                    guard c.wouldAccept([UInt8(b)]).accepted else { continue }
                    XCTAssertTrue(c.accept(text: [UInt8(b)]))
                    if seen.insert(Set(c.stacks)).inserted { next.append(c.stacks) }
                }
            }
            level = next
        }
        return nil
    }

    /// At every prefix of `document`: the search's completion is as short as brute force, and
    /// it really completes the value. Returns how many states were compared.
    @discardableResult
    func checkEveryPrefix(_ format: ResponseFormat, _ document: String, stride step: Int = 1, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let bytes = Array(document.utf8)
        var checked = 0
        for end in Swift.stride(from: bytes.count, through: 0, by: -step) {
            checked += 1
            let c = try makeConstraint(format)
            XCTAssertTrue(c.accept(text: Array(bytes[..<end])), "prefix \(end) of \(document)", file: file, line: line)
            let search = CompletionSearch(grammar: c.automaton.grammar)
            let found = try XCTUnwrap(search.shortest(from: c.stacks), "no completion after \(String(decoding: bytes[..<end], as: UTF8.self))",
                                      file: file, line: line)
            let prefix = String(decoding: bytes[..<end], as: UTF8.self)
            XCTAssertEqual(found.count, bruteForceLength(c), "after \(prefix.debugDescription): found \(String(decoding: found, as: UTF8.self).debugDescription)",
                           file: file, line: line)
            let check = try makeConstraint(format)
            XCTAssertTrue(check.accept(text: Array(bytes[..<end]) + found) && check.canEnd,
                          "\(String(decoding: Array(bytes[..<end]) + found, as: UTF8.self)) is not a complete value", file: file, line: line)
        }
        return checked
    }

    func testShortestCompletionEqualsBruteForceOnEveryPrefix() throws {
        let format = ResponseFormat.jsonSchema(name: "t", schema: Self.schema, strict: true)
        // Every prefix of the first document; every third of the others (their early prefixes,
        // with long completions, are the brute force's costly states).
        var states = 0
        for (i, d) in Self.documents.enumerated() { states += try checkEveryPrefix(format, d, stride: i == 0 ? 1 : 3) }
        XCTAssertGreaterThan(states, 150)
    }

    func testShortestCompletionInJSONObjectModeAndNestedRequiredKeys() throws {
        try checkEveryPrefix(.jsonObject, #"{"a":[1,{"b":null},"x",true],"c":{}}"#)
        let nested = """
            {"type": "object", "properties": {"c": {"type": "array", "minItems": 1, "items": {"type": "object",
              "properties": {"q": {"type": "string", "minLength": 1, "maxLength": 3}, "r": {"type": "string", "maxLength": 2}},
              "required": ["q", "r"], "additionalProperties": false}}, "mood": {"enum": ["ok", "sad"]}},
             "required": ["c", "mood"], "additionalProperties": false}
            """
        try checkEveryPrefix(.jsonSchema(name: "n", schema: nested, strict: true), #"{"c":[{"q":"a","r":""},{"q":"bc","r":"d"}],"mood":"sad"}"#)
    }

    func testCompletionsOfTypicalStatesReadWell() throws {
        let format = ResponseFormat.jsonSchema(name: "t", schema: Self.schema, strict: true)
        func completion(_ prefix: String) throws -> String {
            let c = try makeConstraint(format)
            XCTAssertTrue(c.accept(text: Array(prefix.utf8)))
            return String(decoding: try XCTUnwrap(CompletionSearch(grammar: c.automaton.grammar).shortest(from: c.stacks)), as: UTF8.self)
        }
        // The shortest literal of an enum (7 over "x"), true over false, an integer over a string.
        XCTAssertEqual(try completion(""), #"{"name":"..","tags":[7,7],"pair":{"b":true},"either":0}"#)
        XCTAssertEqual(try completion(#"{"na"#), #"me":"..","tags":[7,7],"pair":{"b":true},"either":0}"#, "inside a key")
        XCTAssertEqual(try completion(#"{"name":"a"#), #".","tags":[7,7],"pair":{"b":true},"either":0}"#, "minLength 2: one filler")
        XCTAssertEqual(try completion(#"{"name":"ab","tags":["xy"#), #"z",7],"pair":{"b":true},"either":0}"#, "an enum prefix, then minItems")
        XCTAssertEqual(try completion(#"{"name":"ab","tags":["x","x"],"size":1."#), #"0,"pair":{"b":true},"either":0}"#, "a number needs a digit")
        XCTAssertEqual(try completion(#"{"name":"ab","tags":["x","x"],"pair":{"b":true},"either":{"k":"#), "null}}",
                       "the undecided anyOf takes the alternative that ends first")
        XCTAssertEqual(try completion(#"{"name":"ab","tags":["x","x"],"pair":{"b":true},"either":"a"#), #"b"}"#, #"the enum "ab" beats a string of 3"#)
    }

    /// The completion as tokens: greedy longest match over the vocabulary, never the stop id.
    func testGreedyTokenizationUsesTheLongestTokens() throws {
        var tokens: [[UInt8]?] = (0..<256).map { [UInt8($0)] }
        tokens.append(Array("\"}".utf8))  // 256: would be the stop token below
        for p in ["\"}", "\":", "nam", "name", "\",\"", "true", "}]}"] { tokens.append(Array(p.utf8)) }
        let vocabulary = TokenVocabulary(tokenBytes: tokens)
        let ids = try XCTUnwrap(vocabulary.greedyTokens(Array(#"name":true"}]}"#.utf8), excluding: [256]))
        XCTAssertEqual(ids.map { String(decoding: vocabulary.tokenBytes[$0]!, as: UTF8.self) }, ["name", "\":", "true", "\"}", "]", "}"])
        XCTAssertFalse(ids.contains(256), "the stop id is never used")
        // Brute-force check of greediness on random strings: each token is the longest entry that
        // is a prefix of what is left.
        var rng = SeededRandom(seed: 5, key: "greedy")
        let pieces = ["n", "a", "m", "e", "\"", "}", "]", ":", "t", "r", "u", "name", "nam"]
        for _ in 0..<200 {
            let text = (0..<(rng.next() % 12)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined()
            let bytes = Array(text.utf8)
            let out = try XCTUnwrap(vocabulary.greedyTokens(bytes, excluding: [256]))
            XCTAssertEqual(out.flatMap { vocabulary.tokenBytes[$0]! }, bytes, text)
            var position = 0
            for id in out {
                let longest = (0..<tokens.count).filter { $0 != 256 }.compactMap { i -> Int? in
                    let t = tokens[i]!
                    return position + t.count <= bytes.count && Array(bytes[position..<(position + t.count)]) == t ? t.count : nil
                }.max()
                XCTAssertEqual(vocabulary.tokenBytes[id]!.count, longest, text)
                position += vocabulary.tokenBytes[id]!.count
            }
        }
        XCTAssertNil(TokenVocabulary(tokenBytes: [Array("ab".utf8)]).greedyTokens([0x61], excluding: []), "no token for a lone byte")
    }

    /// The completion is searched once and then kept while the chosen tokens follow it.
    func testTheCompletionIsCachedWhileItIsFollowed() throws {
        let c = try makeConstraint(.jsonSchema(name: "t", schema: Self.schema, strict: true))
        XCTAssertTrue(c.accept(text: Array(#"{"name":"ab","tags":["x"#.utf8)))
        c.remainingTokens = 1000
        _ = c.allowedMask()
        XCTAssertEqual(c.budgetSearches, 1, "the first mask with a budget searches")
        let first = try XCTUnwrap(c.knownCompletion)
        XCTAssertEqual(first.map { UInt8($0) }, Array(#"",7],"pair":{"b":true},"either":0}"#.utf8))
        c.accept(first[0])
        XCTAssertEqual(c.knownCompletion, Array(first.dropFirst()), "following the completion keeps the rest")
        c.remainingTokens = 999
        _ = c.allowedMask()
        XCTAssertEqual(c.budgetSearches, 1, "no new search")
        c.accept(Int(UInt8(ascii: " ")))
        XCTAssertNil(c.knownCompletion, "another token forgets it")
        // Far from the budget, no search for a while.
        for k in 0..<5 {
            c.remainingTokens = 990 - k
            _ = c.allowedMask()
        }
        XCTAssertEqual(c.budgetSearches, 1)
        XCTAssertFalse(c.closedAtTokenBudget)
    }

    /// Byte by byte with a tight budget: the constraint forces the completion so that the value
    /// ends exactly when the budget (minus the stop token) does, whatever the state.
    func testATightBudgetForcesTheShortestCompletion() throws {
        let format = ResponseFormat.jsonSchema(name: "t", schema: Self.schema, strict: true)
        for prefix in ["", #"{"name":"a"#, #"{"name":"ab","tags":["x","x"],"size":12"#, #"{"name":"ab","tags":["x","x"],"pair":{"b":true},"either":{"k":"#] {
            let probe = try makeConstraint(format)
            XCTAssertTrue(probe.accept(text: Array(prefix.utf8)))
            let need = try XCTUnwrap(CompletionSearch(grammar: probe.automaton.grammar).shortest(from: probe.stacks)).count
            for budget in [need + 1, need + 3] {
                let c = try makeConstraint(format)
                XCTAssertTrue(c.accept(text: Array(prefix.utf8)))
                var text = Array(prefix.utf8)
                var remaining = budget
                while true {
                    c.remainingTokens = remaining
                    let mask = c.allowedMask()
                    if mask[Self.eos >> 6] & (1 << UInt64(Self.eos & 63)) != 0 { break }
                    XCTAssertGreaterThan(remaining, 1, "the stop token must still fit: \(String(decoding: text, as: UTF8.self))")
                    // The worst choice a model could make: the last allowed byte (e.g. `{` over `}`, `9` over `"`).
                    let id = try XCTUnwrap((0..<256).last { mask[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 })
                    c.accept(id)
                    text.append(UInt8(id))
                    remaining -= 1
                }
                let check = try makeConstraint(format)
                XCTAssertTrue(check.accept(text: text) && check.canEnd, String(decoding: text, as: UTF8.self))
                if budget == need + 1 { XCTAssertTrue(c.closedAtTokenBudget, "closing was forced from the start") }
            }
        }
    }

    /// An adversary with the multi-byte fixture vocabulary: whenever allowed it opens more
    /// structure (a new item `"},` / `[{"`, a comma, a key), else takes the last allowed token —
    /// the choices that lengthen the completion most. Whatever the budget, the value still ends
    /// complete with its stop token inside it: the lookahead filter never lets it overshoot.
    func testAnAdversaryCannotOvershootTheBudget() throws {
        let vocabulary = ConstrainedGenerationTests.vocabulary
        let format = ResponseFormat.jsonSchema(name: "t", schema: ConstrainedGenerationTests.schema, strict: true)
        let compiler = JSONConstraintCompiler(vocabulary: vocabulary)
        let eos = ConstrainedGenerationTests.eos
        let probe = try XCTUnwrap(compiler.makeConstraint(for: format, stopTokenIDs: [eos]))
        probe.remainingTokens = 1000
        _ = probe.allowedMask()
        let need = try XCTUnwrap(probe.knownCompletion).count
        let opening = ["\"},", "[{\"", "\", \"", "\",", ", ", "{\"", "\":"].map { Array($0.utf8) }
        for budget in Swift.stride(from: need + 1, through: need + 40, by: 3) {
            let c = try XCTUnwrap(compiler.makeConstraint(for: format, stopTokenIDs: [eos]))
            var text: [UInt8] = []
            var remaining = budget
            var ended = false
            while remaining > 0 {
                c.remainingTokens = remaining
                let mask = c.allowedMask()
                let allowed = (0..<vocabulary.count).filter { mask[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 }
                if allowed == [eos] { ended = true; break }
                let nonStop = allowed.filter { $0 != eos }
                let pick = nonStop.first { id in opening.contains { $0 == vocabulary.tokenBytes[id] } } ?? nonStop.last!
                c.accept(pick)
                text += vocabulary.tokenBytes[pick]!
                remaining -= 1
            }
            XCTAssertTrue(ended, "budget \(budget): the stop token did not fit after \(String(decoding: text, as: UTF8.self))")
            try ConstrainedGenerationTests.assertValid(String(decoding: text, as: UTF8.self))
        }
    }
}
