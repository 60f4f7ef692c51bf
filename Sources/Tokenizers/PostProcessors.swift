import ForgeCore

/// A `tokenizer.json` post-processor: adds the template's special tokens around the encoded
/// sequence when `addSpecialTokens` is set. Added ids carry origin -1 (no source text).
protocol PostProcessor: Sendable {
    func process(ids: inout [Int], origins: inout [Int32])
}

enum PostProcessorFactory {
    static func make(_ json: JSONValue?, file: String?, field: String = "post_processor") throws -> PostProcessor? {
        guard let json, !json.isNull else { return nil }
        guard let type = json["type"]?.string else {
            throw ForgeError(.badInput, "post-processor without a \"type\"", file: file, location: field)
        }
        switch type {
        case "TemplateProcessing":
            return try TemplateProcessor(json: json, file: file, field: field)
        case "ByteLevel":
            return nil // only trims offsets; ids are unchanged
        case "Sequence":
            guard let items = json["processors"]?.array else {
                throw ForgeError(.badInput, "Sequence post-processor without \"processors\"", file: file, location: field)
            }
            var stages: [PostProcessor] = []
            for (i, item) in items.enumerated() {
                if let stage = try make(item, file: file, field: "\(field).processors[\(i)]") { stages.append(stage) }
            }
            return stages.isEmpty ? nil : SequencePostProcessor(stages: stages)
        case "BertProcessing", "RobertaProcessing":
            guard let cls = json["cls"]?.array, cls.count == 2, let clsId = cls[1].wholeNumber,
                  let sep = json["sep"]?.array, sep.count == 2, let sepId = sep[1].wholeNumber else {
                throw ForgeError(.badInput, "\(type) needs \"cls\" and \"sep\" as [token, id]", file: file, location: field)
            }
            return TemplateProcessor(prefix: [clsId], suffix: [sepId])
        default:
            throw ForgeError(.badInput, "unsupported post-processor type \"\(type)\"", file: file, location: "\(field).type")
        }
    }
}

struct SequencePostProcessor: PostProcessor {
    var stages: [PostProcessor]
    func process(ids: inout [Int], origins: inout [Int32]) {
        for stage in stages { stage.process(ids: &ids, origins: &origins) }
    }
}

/// The single-sequence template: special tokens before and after `$A`.
struct TemplateProcessor: PostProcessor {
    var prefix: [Int]
    var suffix: [Int]

    init(prefix: [Int], suffix: [Int]) {
        self.prefix = prefix
        self.suffix = suffix
    }

    init(json: JSONValue, file: String?, field: String) throws {
        guard let single = json["single"]?.array else {
            throw ForgeError(.badInput, "TemplateProcessing without \"single\"", file: file, location: field)
        }
        let specials = json["special_tokens"]?.object ?? [:]
        var before: [Int] = []
        var after: [Int] = []
        var seenSequence = false
        for (i, piece) in single.enumerated() {
            if piece["Sequence"] != nil {
                seenSequence = true
            } else if let name = piece["SpecialToken"]?["id"]?.string {
                guard let ids = specials[name]?["ids"]?.array?.compactMap({ $0.wholeNumber }), !ids.isEmpty else {
                    throw ForgeError(.badInput, "template token \(JSONText.quoted(name)) is not in special_tokens", file: file, location: "\(field).single[\(i)]")
                }
                if seenSequence { after += ids } else { before += ids }
            } else {
                throw ForgeError(.badInput, "template piece must be Sequence or SpecialToken", file: file, location: "\(field).single[\(i)]")
            }
        }
        prefix = before
        suffix = after
    }

    func process(ids: inout [Int], origins: inout [Int32]) {
        if !prefix.isEmpty {
            ids.insert(contentsOf: prefix, at: 0)
            origins.insert(contentsOf: [Int32](repeating: -1, count: prefix.count), at: 0)
        }
        if !suffix.isEmpty {
            ids.append(contentsOf: suffix)
            origins.append(contentsOf: [Int32](repeating: -1, count: suffix.count))
        }
    }
}
