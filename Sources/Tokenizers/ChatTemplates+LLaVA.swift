import ForgeCore
import Foundation

extension ChatTemplate {
    /// LLaVA `SeparatorStyle.TWO` (sep " ", sep2 "</s>"):
    /// `system + " " + "USER: q" + " " + "ASSISTANT: a" + "</s>" + "USER: …"`, and a trailing
    /// `"ASSISTANT:"` for generation. Masking follows LLaVA's `preprocess_v1`: system, user turns
    /// and the "ASSISTANT:" marker are context; " answer" and its "</s>" are trained.
    func renderSeparatorStyleTwo(system: String?, _ turns: [ChatMessage], generationPrompt: Bool) throws -> RenderedChat {
        var segments: [ChatSegment] = []
        segments.append(ChatSegment((system ?? "") + " ", role: .system, trainable: false))
        for (i, m) in turns.enumerated() {
            let expected: ChatRole = i % 2 == 0 ? .user : .assistant
            guard m.role == expected else {
                throw ForgeError(.badInput, "LLaVA conversations alternate user/assistant starting with user; found \(m.role.rawValue)", location: "turn \(i)")
            }
            if m.role == .user {
                segments.append(ChatSegment("USER: " + m.content + " ", role: .user, trainable: false))
            } else {
                segments.append(ChatSegment("ASSISTANT:", role: .assistant, trainable: false))
                segments.append(ChatSegment(" " + m.content, role: .assistant, trainable: true))
                segments.append(ChatSegment("</s>", role: .assistant, trainable: true))
            }
        }
        if generationPrompt {
            guard turns.count % 2 == 1 else {
                throw ForgeError(.badInput, "a generation prompt must end with a user turn", location: "turn \(turns.count - 1)")
            }
            segments.append(ChatSegment("ASSISTANT:", role: .assistant, trainable: false))
        }
        return RenderedChat(segments: segments)
    }

    /// LLaVA `preprocess_plain`: the first (user) turn collapses to `<image>`, followed by the
    /// caption and "\n"; only caption + "\n" are trained.
    func renderPlain(_ turns: [ChatMessage], generationPrompt: Bool) throws -> RenderedChat {
        if generationPrompt {
            return RenderedChat(segments: [ChatSegment(ChatTemplate.imageToken, role: .user, trainable: false)])
        }
        guard turns.count == 2, turns[0].role == .user, turns[1].role == .assistant else {
            throw ForgeError(.badInput, "the plain template takes exactly one user turn (with <image>) and one caption")
        }
        guard turns[0].content.contains(ChatTemplate.imageToken) else {
            throw ForgeError(.badInput, "the plain template's user turn must contain <image>", location: "turn 0")
        }
        return RenderedChat(segments: [
            ChatSegment(ChatTemplate.imageToken, role: .user, trainable: false),
            ChatSegment(turns[1].content + "\n", role: .assistant, trainable: true),
        ])
    }

    public static let imageToken = "<image>"

    /// LLaVA's `preprocess_multimodal`: a message mentioning `<image>` gets it moved to the front,
    /// followed by a newline (`"<image>\n" + rest.strip()`).
    public static func llavaImageFirst(_ content: String) -> String {
        guard content.contains(imageToken) else { return content }
        let rest = content.replacingOccurrences(of: imageToken, with: "")
        return (imageToken + "\n" + pythonStrip(rest)).trimmingPythonWhitespace()
    }

    static func pythonStrip(_ s: String) -> String { s.trimmingPythonWhitespace() }
}

extension String {
    /// Python's `str.strip()` (Unicode whitespace at both ends).
    func trimmingPythonWhitespace() -> String {
        let scalars = Array(unicodeScalars)
        var lo = 0, hi = scalars.count
        while lo < hi, scalars[lo].properties.isWhitespace || (0x1C...0x1F).contains(scalars[lo].value) { lo += 1 }
        while hi > lo, scalars[hi - 1].properties.isWhitespace || (0x1C...0x1F).contains(scalars[hi - 1].value) { hi -= 1 }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[lo..<hi])
        return String(view)
    }
}
