/// Token-budget-aware closing: a constrained generation that runs out of tokens ends with a
/// complete JSON value rather than a cut one.
///
/// With `remainingTokens` = R (the token about to be chosen included) and C = the tokens of the
/// value's shortest completion (the shortest bytes from `CompletionSearch`, tokenized greedily),
/// the value still fits with its stop token while C ≤ R − 1. Each mask:
///   - slack R − 1 − C ≤ 0: the completion starts now and is followed token by token (the mask
///     holds only its next token), then only the stop tokens;
///   - slack within `lookahead` (how much one token can lengthen C): tokens after which C would
///     exceed R − 2 are removed, so the free choice just before closing cannot overshoot. Inside
///     a string only tokens with a `"` can leave it (and commit to more structure); the others
///     lengthen C by at most an escape or a UTF-8 character, so they are checked only in the
///     last few steps. Checks per step are capped; tokens past the cap are removed (safe side);
///   - otherwise the mask is the grammar's alone.
/// The search runs only when R is within a window of the last known C (and now and then to
/// refresh it); its result is kept while the tokens chosen follow it, since the rest of a
/// shortest completion is a shortest completion of the state it leads to.
struct BudgetState {
    var search: CompletionSearch?
    /// Tokens that complete the value from the current state; meaningful when `searched`
    /// (nil then: no completion was found within the search bound).
    var completion: [Int]?
    var searched = false
    var lastLength: Int?
    var stepsSinceSearch = 0
    /// The completion is being followed (the budget ran out).
    var forcing = false
    /// `CompletionSearch.lookahead` of the grammar (-1: not computed yet).
    var lookahead = -1
    /// Searches run and tokens checked against the budget (benchmarks).
    var searches = 0
    var checkedTokens = 0
}

enum BudgetAction: Equatable {
    case free
    case force(Int)
    case stopsOnly
    /// Keep only tokens after which the completion takes at most `limit` tokens (R − 1 − C = `slack`).
    case filter(limit: Int, slack: Int)
}

extension TokenConstraint {
    /// How far (tokens) beyond the lookahead zone the completion is searched every step.
    static let budgetWindow = 8
    /// Steps between searches while the budget is far from the completion's length.
    static let budgetRefreshInterval = 16
    /// Tokens checked one by one in a step; the rest are removed (the safe side).
    static let maximumBudgetChecks = 192
    /// How much a token that stays inside a string can lengthen the completion: the rest of an
    /// escape (`\u` + 4 hex digits) or of a UTF-8 character, plus one for tokenization.
    static let inStringGrowth = 6

    /// Searches run so far (the budget's cost, for benchmarks and tests).
    public var budgetSearches: Int { budget.searches }
    /// Tokens checked one by one against the budget so far.
    public var budgetCheckedTokens: Int { budget.checkedTokens }
    /// The tokens of the current state's shortest completion, when known (tests).
    var knownCompletion: [Int]? { budget.searched ? budget.completion : nil }

    func budgetAction(remaining r: Int) -> BudgetAction {
        if budget.lookahead < 0 {
            let stops = stopTokenIDs
            budget.lookahead = CompletionSearch.lookahead(for: automaton.grammar) { [vocabulary] in vocabulary.greedyTokens($0, excluding: stops)?.count }
        }
        let zone = budget.lookahead
        if !budget.searched {
            let near = budget.lastLength.map { r - 1 - $0 <= 2 * zone + Self.budgetWindow } ?? true
            if budget.forcing || near || budget.stepsSinceSearch >= Self.budgetRefreshInterval { searchCompletion() }
        }
        guard budget.searched, let completion = budget.completion else { return .free }
        if budget.forcing { return completion.first.map { .force($0) } ?? .stopsOnly }
        let slack = r - 1 - completion.count
        if slack <= 0 {
            // Already complete: the stop token fits (or nothing does); the model chooses.
            guard let first = completion.first else { return .free }
            budget.forcing = true
            closedAtTokenBudget = true
            return .force(first)
        }
        return slack <= zone ? .filter(limit: r - 2, slack: slack) : .free
    }

    /// The shortest completion of the live stacks, as tokens.
    func searchCompletion() {
        if budget.search == nil { budget.search = CompletionSearch(grammar: automaton.grammar) }
        let bytes = budget.search!.shortest(from: stacks)
        budget.completion = bytes.flatMap { vocabulary.greedyTokens($0, excluding: stopTokenIDs) }
        budget.searched = true
        budget.searches += 1
        budget.stepsSinceSearch = 0
        if let c = budget.completion { budget.lastLength = c.count }
    }

    /// Tokens of the shortest completion after `bytes` from the current state (nil: rejected, or
    /// no completion within the search bound).
    func completionLength(after bytes: [UInt8]) -> Int? {
        if budget.search == nil { budget.search = CompletionSearch(grammar: automaton.grammar) }
        guard let rest = budget.search!.shortest(from: stacks, after: bytes) else { return nil }
        return vocabulary.greedyTokens(rest, excluding: stopTokenIDs)?.count
    }

    /// Removes from `mask` every token after which the value could no longer be completed in
    /// `limit` tokens. Kept without a check: the completion's own next token, stop tokens,
    /// whitespace, plain string content while the one live stack is inside a string (the
    /// completion then is the same closing quote and rest), and — while `slack` exceeds
    /// `inStringGrowth` — every other token that cannot leave that string (no `"`).
    func removeTokensPastBudget(limit: Int, slack: Int) {
        let keep = budget.completion?.first ?? -1
        var plain: [UInt64]?
        var onlyQuotes = false
        if stacks.count == 1, let top = stacks[0].last, top.kind == .string {
            onlyQuotes = slack > Self.inStringGrowth
            if top.phase == StringPhase.normal {
                let remaining = Int(automaton.grammar.nodes[Int(top.node)].c) - Int(top.a)
                if remaining > 0 { plain = vocabulary.plainUpTo[min(remaining, vocabulary.plainUpTo.count - 1)] }
            }
        }
        var checks = 0
        // Tokens with a quote first: they matter most when the cap is reached.
        for pass in 0..<(onlyQuotes ? 1 : 2) {
            for w in 0..<mask.count {
                var bits = mask[w] & (pass == 0 ? vocabulary.quoteTokens[w] : ~vocabulary.quoteTokens[w])
                if let plain { bits &= ~plain[w] }
                while bits != 0 {
                    let k = bits.trailingZeroBitCount
                    bits &= bits - 1
                    let id = w * 64 + k
                    if id == keep || stopTokenIDs.contains(id) { continue }
                    guard id < vocabulary.tokenBytes.count, let bytes = vocabulary.tokenBytes[id] else { continue }
                    if bytes.allSatisfy({ automaton.isWhitespace($0) }) { continue }
                    checks += 1
                    var fits = false
                    if checks <= Self.maximumBudgetChecks, let c = completionLength(after: bytes) { fits = c <= limit }
                    if !fits { mask[w] &= ~(1 << UInt64(k)) }
                }
            }
        }
        budget.checkedTokens += min(checks, Self.maximumBudgetChecks)
    }

    /// Bookkeeping after token `id` (nil: raw text was fed): the known completion stays valid
    /// when `id` is its first token.
    func budgetAccepted(_ id: Int?) {
        budget.stepsSinceSearch += 1
        if let id, budget.searched, let c = budget.completion, c.first == id {
            budget.completion = Array(c.dropFirst())
        } else {
            budget.searched = false
            budget.completion = nil
        }
    }
}
