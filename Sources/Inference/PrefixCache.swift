import Foundation
import Models

/// KV states of prompt prefixes (system message + few-shot examples), reused by later requests
/// that start with the same tokens.
///
/// Keys are token blocks (`blockSize` tokens): a trie whose node at depth k stands for the first
/// k·blockSize tokens. Each stored entry is a KV snapshot of one block-aligned prefix; every node on
/// its path refers to it, so a request sharing only the first j blocks of an entry still reuses
/// those j·blockSize positions (`KVCache.copyPrefix` copies the leading rows). Memory is bounded
/// by `capacityBytes`; the least recently used entries are evicted first, and an entry whose
/// prefix a new, longer entry extends is dropped (the longer one serves it).
///
/// Not thread-safe: the generator / scheduler that owns it calls it from one thread.
public final class PrefixCache {
    public let blockSize: Int
    public let capacityBytes: Int
    public private(set) var bytes = 0
    public private(set) var hits = 0
    public private(set) var misses = 0
    /// Positions served from the cache, summed over hits.
    public private(set) var reusedTokens = 0
    private let config: LlamaConfig
    private let root = Node()
    private var entries: [ObjectIdentifier: Entry] = [:]
    private var clock = 0

    final class Node {
        var children: [[Int]: Node] = [:]
        /// Entries whose prefix passes through (or ends at) this node.
        var holders: [Entry] = []
    }

    final class Entry {
        let tokens: [Int]
        let cache: KVCache
        let bytes: Int
        var lastUse: Int
        init(tokens: [Int], cache: KVCache, bytes: Int, lastUse: Int) {
            self.tokens = tokens; self.cache = cache; self.bytes = bytes; self.lastUse = lastUse
        }
    }

    public init(config: LlamaConfig, blockSize: Int = 32, capacityBytes: Int = 256 << 20) {
        precondition(blockSize > 0, "PrefixCache: block size must be positive")
        self.config = config
        self.blockSize = blockSize
        self.capacityBytes = capacityBytes
    }

    public var entryCount: Int { entries.count }

    private func block(_ tokens: [Int], _ index: Int) -> [Int] { Array(tokens[(index * blockSize)..<((index + 1) * blockSize)]) }

    /// Copies the longest cached prefix of `prompt` into `target` (which is reset first) and returns
    /// its length — a multiple of `blockSize`, always < `prompt.count` so at least one prompt token
    /// is left to decode (its logits start the generation). 0 when nothing matches.
    @discardableResult
    public func restore(prompt: [Int], into target: KVCache) -> Int {
        target.reset()
        let usable = min((prompt.count - 1) / blockSize, target.capacity / blockSize)
        var node = root, matched = 0
        var best: Entry?
        for b in 0..<max(0, usable) {
            guard let child = node.children[block(prompt, b)] else { break }
            node = child
            matched += blockSize
            best = child.holders.max { $0.lastUse < $1.lastUse }
        }
        guard let entry = best, matched > 0 else { misses += 1; return 0 }
        clock += 1
        entry.lastUse = clock
        target.copyPrefix(from: entry.cache, count: matched)
        hits += 1
        reusedTokens += matched
        return matched
    }

    /// Remembers the block-aligned prefix of `tokens` from `source` (which holds at least that many
    /// positions of exactly these tokens, e.g. right after a prompt's prefill).
    public func store(prompt tokens: [Int], from source: KVCache) {
        let blocks = min(tokens.count, source.length) / blockSize
        guard blocks > 0 else { return }
        let length = blocks * blockSize
        let size = length * source.kvWidth * source.layerCount * 2 * MemoryLayout<Float>.size
        guard size <= capacityBytes else { return }
        // Walk the path; if an entry already covers all of it, only touch it.
        var node = root
        var path: [Node] = []
        for b in 0..<blocks {
            let key = block(tokens, b)
            let child = node.children[key] ?? { let made = Node(); node.children[key] = made; return made }()
            path.append(child)
            node = child
        }
        clock += 1
        if let covering = node.holders.first {
            covering.lastUse = clock
            return
        }
        // Entries on this path end earlier: the new one serves them, drop them.
        let shorter = Set(path.flatMap { $0.holders }.map { ObjectIdentifier($0) })
        for id in shorter { if let e = entries[id] { remove(e) } }
        while bytes + size > capacityBytes, let oldest = entries.values.min(by: { $0.lastUse < $1.lastUse }) { remove(oldest) }
        let snapshot = KVCache(config: config, capacity: length)
        snapshot.copyPrefix(from: source, count: length)
        let entry = Entry(tokens: Array(tokens.prefix(length)), cache: snapshot, bytes: size, lastUse: clock)
        // Re-walk: removals may have pruned nodes of this path.
        node = root
        for b in 0..<blocks {
            let key = block(tokens, b)
            let child = node.children[key] ?? { let made = Node(); node.children[key] = made; return made }()
            child.holders.append(entry)
            node = child
        }
        entries[ObjectIdentifier(entry)] = entry
        bytes += size
    }

    /// Drops every entry.
    public func removeAll() {
        root.children = [:]
        entries = [:]
        bytes = 0
    }

    private func remove(_ entry: Entry) {
        entries[ObjectIdentifier(entry)] = nil
        bytes -= entry.bytes
        var nodes: [(parent: Node, key: [Int], node: Node)] = []
        var node = root
        for b in 0..<(entry.tokens.count / blockSize) {
            let key = block(entry.tokens, b)
            guard let child = node.children[key] else { break }
            nodes.append((node, key, child))
            node = child
        }
        for (parent, key, child) in nodes.reversed() {
            child.holders.removeAll { $0 === entry }
            if child.holders.isEmpty && child.children.isEmpty { parent.children[key] = nil }
        }
    }
}
