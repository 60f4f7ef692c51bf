import Foundation
import Models
import TensorMath

/// KV states of prompt prefixes (system message + few-shot examples), reused by later requests
/// that start with the same tokens.
///
/// A radix tree of token blocks (`blockSize` tokens): the node at depth k holds block k of the
/// prompts that pass through it together with that block's KV rows for every layer, so prompts
/// sharing a prefix share its blocks, each stored once.
/// - `restore` copies the longest match into a request's cache: whole blocks down the tree, then
///   the leading rows of the child block whose first tokens match the prompt's next ones (KV row i
///   depends only on tokens 0...i, so a block stored for another continuation serves the tokens it
///   has in common). A request sharing 1,300 tokens with a cached prompt reuses all 1,300, not the
///   1,280 of its whole 32-token blocks.
/// - `store` copies only the blocks the tree does not hold yet (a request that reused 1,280
///   positions stores its few new blocks, not its whole prompt again).
/// Memory is bounded by `capacityBytes`: the least recently used leaf blocks are evicted first
/// (restore and store touch every node they pass, so a parent is never older than its children).
///
/// Not thread-safe: the generator / scheduler that owns it calls it from one thread.
public final class PrefixCache {
    public let blockSize: Int
    public let capacityBytes: Int
    /// Bytes of one block's KV rows (all layers, keys and values).
    public let blockBytes: Int
    public private(set) var bytes = 0
    public private(set) var hits = 0
    public private(set) var misses = 0
    /// Positions served from the cache, summed over hits.
    public private(set) var reusedTokens = 0
    private let layerCount: Int
    private let kvWidth: Int
    private let root = Node(tokens: [], kv: nil, parent: nil)
    /// Every node but the root.
    private var nodes: [ObjectIdentifier: Node] = [:]
    private var clock = 0

    final class Node {
        let tokens: [Int]
        /// Per layer l: keys `[blockSize, kvWidth]` at `2l · blockSize · kvWidth`, then values.
        let kv: FloatBuffer?
        weak var parent: Node?
        var children: [[Int]: Node] = [:]
        var lastUse = 0
        init(tokens: [Int], kv: FloatBuffer?, parent: Node?) { self.tokens = tokens; self.kv = kv; self.parent = parent }
    }

    public init(config: LlamaConfig, blockSize: Int = 32, capacityBytes: Int = 256 << 20) {
        precondition(blockSize > 0, "PrefixCache: block size must be positive")
        self.blockSize = blockSize
        self.capacityBytes = capacityBytes
        layerCount = config.numHiddenLayers
        kvWidth = config.kvWidth
        blockBytes = blockSize * config.kvWidth * config.numHiddenLayers * 2 * MemoryLayout<Float>.size
    }

    /// Distinct stored prefixes (leaves of the tree).
    public var entryCount: Int { nodes.values.reduce(0) { $0 + ($1.children.isEmpty ? 1 : 0) } }
    /// Stored blocks.
    public var blockCount: Int { nodes.count }

    private func block(_ tokens: [Int], _ index: Int) -> [Int] { Array(tokens[(index * blockSize)..<((index + 1) * blockSize)]) }

    /// Copies the longest cached prefix of `prompt` into `target` (which is reset first) and returns
    /// its length, always < `prompt.count` so at least one prompt token is left to decode (its
    /// logits start the generation). 0 when nothing matches.
    @discardableResult
    public func restore(prompt: [Int], into target: KVCache) -> Int {
        target.reset()
        precondition(target.layerCount == layerCount && target.kvWidth == kvWidth, "PrefixCache: KV cache of another model")
        let limit = min(prompt.count - 1, target.capacity)
        var node = root, path: [Node] = []
        while (path.count + 1) * blockSize <= limit, let child = node.children[block(prompt, path.count)] {
            path.append(child)
            node = child
        }
        let whole = path.count * blockSize
        // The child sharing the most leading tokens with the rest (less than a block: a whole
        // matching block would have been followed above).
        var partial: Node?, extra = 0
        let bound = min(blockSize, limit - whole)
        if bound > 0 {
            for child in node.children.values {
                var k = 0
                while k < bound && child.tokens[k] == prompt[whole + k] { k += 1 }
                if k > extra { extra = k; partial = child }
            }
        }
        let total = whole + extra
        guard total > 0 else { misses += 1; return 0 }
        clock += 1
        for (b, n) in path.enumerated() {
            copy(n, rows: blockSize, into: target, at: b * blockSize)
            n.lastUse = clock
        }
        if let partial {
            copy(partial, rows: extra, into: target, at: whole)
            partial.lastUse = clock
        }
        target.advance(by: total)
        hits += 1
        reusedTokens += total
        return total
    }

    /// Remembers the whole blocks of `tokens` from `source` (which holds at least that many
    /// positions of exactly these tokens, e.g. right after a prompt's prefill); copies only the
    /// blocks not stored yet. Stops early when the budget cannot fit another block even after
    /// evicting every block off this prompt's path.
    public func store(prompt tokens: [Int], from source: KVCache) {
        precondition(source.layerCount == layerCount && source.kvWidth == kvWidth, "PrefixCache: KV cache of another model")
        let blocks = min(tokens.count, source.length) / blockSize
        guard blocks > 0 else { return }
        clock += 1
        var node = root
        var path: Set<ObjectIdentifier> = []
        for b in 0..<blocks {
            let key = block(tokens, b)
            if let child = node.children[key] {
                child.lastUse = clock
                path.insert(ObjectIdentifier(child))
                node = child
                continue
            }
            while bytes + blockBytes > capacityBytes {
                guard evictLeastRecentlyUsedLeaf(sparing: path) else { return }
            }
            let buffer = FloatBuffer(count: 2 * layerCount * blockSize * kvWidth)
            let rowFloats = blockSize * kvWidth, offset = b * rowFloats
            for layer in 0..<layerCount {
                (buffer.pointer + 2 * layer * rowFloats).update(from: source.keys[layer].pointer + offset, count: rowFloats)
                (buffer.pointer + (2 * layer + 1) * rowFloats).update(from: source.values[layer].pointer + offset, count: rowFloats)
            }
            let child = Node(tokens: key, kv: buffer, parent: node)
            child.lastUse = clock
            node.children[key] = child
            nodes[ObjectIdentifier(child)] = child
            bytes += blockBytes
            path.insert(ObjectIdentifier(child))
            node = child
        }
    }

    /// Drops every block.
    public func removeAll() {
        root.children = [:]
        nodes = [:]
        bytes = 0
    }

    /// The first `rows` rows of `node`'s block into `target`'s positions `at..<at+rows`, every layer.
    private func copy(_ node: Node, rows: Int, into target: KVCache, at position: Int) {
        guard let kv = node.kv else { return }
        let blockFloats = blockSize * kvWidth, count = rows * kvWidth, offset = position * kvWidth
        for layer in 0..<layerCount {
            (target.keys[layer].pointer + offset).update(from: kv.pointer + 2 * layer * blockFloats, count: count)
            (target.values[layer].pointer + offset).update(from: kv.pointer + (2 * layer + 1) * blockFloats, count: count)
        }
    }

    /// Removes the least recently used block without children that is not in `path`; false when
    /// there is none.
    private func evictLeastRecentlyUsedLeaf(sparing path: Set<ObjectIdentifier>) -> Bool {
        var victim: Node?
        for (id, n) in nodes where n.children.isEmpty && !path.contains(id) {
            if victim == nil || n.lastUse < victim!.lastUse { victim = n }
        }
        guard let victim else { return false }
        victim.parent?.children[victim.tokens] = nil
        nodes[ObjectIdentifier(victim)] = nil
        bytes -= blockBytes
        return true
    }
}
