import ForgeCore
import Foundation

/// One row of `metrics.csv`.
public struct MetricsRow: Sendable, Equatable {
    public var step: Int
    public var epoch: Int
    public var loss: Double
    public var learningRate: Double
    public var gradNorm: Double
    public var tokens: Int
    public var tokensPerSecond: Double
    public var evalLoss: Double?

    public init(step: Int, epoch: Int, loss: Double, learningRate: Double, gradNorm: Double, tokens: Int, tokensPerSecond: Double, evalLoss: Double? = nil) {
        self.step = step; self.epoch = epoch; self.loss = loss; self.learningRate = learningRate; self.gradNorm = gradNorm
        self.tokens = tokens; self.tokensPerSecond = tokensPerSecond; self.evalLoss = evalLoss
    }
}

/// `metrics.csv` (rewritten whole at every flush, so a resumed run drops rows past its checkpoint)
/// and the loss / learning-rate chart as a standalone SVG.
public enum TrainingMetrics {
    public static let header = "step,epoch,loss,lr,grad_norm,tokens,tokens_per_s,eval_loss"

    public static func csv(_ rows: [MetricsRow]) -> String {
        var out = header + "\n"
        for r in rows {
            out += "\(r.step),\(r.epoch),\(format(r.loss)),\(format(r.learningRate)),\(format(r.gradNorm)),\(r.tokens),"
            out += String(format: "%.1f", r.tokensPerSecond) + "," + (r.evalLoss.map(format) ?? "") + "\n"
        }
        return out
    }

    /// Full precision (round-trip), so resumed and uninterrupted runs compare exactly.
    static func format(_ v: Double) -> String { "\(v)" }

    /// Rows of a `metrics.csv` (for resume); bad lines are an error naming the line.
    public static func parse(csv text: String, file: String) throws -> [MetricsRow] {
        var rows: [MetricsRow] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() where i > 0 {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 8, let step = Int(f[0]), let epoch = Int(f[1]), let loss = Double(f[2]), let lr = Double(f[3]),
                  let norm = Double(f[4]), let tokens = Int(f[5]), let rate = Double(f[6]) else {
                throw ForgeError(.badInput, "not a metrics row", file: file, location: "line \(i + 1)")
            }
            rows.append(MetricsRow(step: step, epoch: epoch, loss: loss, learningRate: lr, gradNorm: norm, tokens: tokens,
                                   tokensPerSecond: rate, evalLoss: f[7].isEmpty ? nil : Double(f[7])))
        }
        return rows
    }

    public static func write(_ rows: [MetricsRow], csvPath: String, svgPath: String) throws {
        do {
            try csv(rows).write(toFile: csvPath, atomically: true, encoding: .utf8)
            try svg(rows).write(toFile: svgPath, atomically: true, encoding: .utf8)
        } catch {
            throw ForgeError(.io, "cannot write metrics: \(error.localizedDescription)", file: csvPath)
        }
    }

    // MARK: - SVG

    /// "Nice" tick values (1, 2, 5 × 10^k) covering [lo, hi]; `integers` keeps whole steps only.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5, integers: Bool = false) -> [Double] {
        guard hi > lo else { return [lo] }
        let raw = (hi - lo) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        var step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        if integers { step = max(1, step.rounded(.up)) }
        let first = (lo / step).rounded(.up)
        let n = Int(((hi / step) - first + 1e-9).rounded(.down))
        return (0...max(0, n)).map { (first + Double($0)) * step }.filter { $0 <= hi + step * 1e-9 }
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) < 1e-2 || abs(v) >= 1e5 { return String(format: "%.1e", v) }
        return String(format: "%g", (v * 1000).rounded() / 1000)
    }

    /// Loss (left axis, blue; eval loss as orange dots) and learning rate (right axis, green dashed)
    /// against the optimizer step.
    public static func svg(_ rows: [MetricsRow]) -> String {
        let width = 760.0, height = 400.0, left = 70.0, right = 80.0, top = 40.0, bottom = 50.0
        let plotW = width - left - right, plotH = height - top - bottom
        let steps = rows.map { Double($0.step) }
        let losses = rows.map(\.loss) + rows.compactMap(\.evalLoss)
        let xMin = steps.min() ?? 0, xMax = max((steps.max() ?? 1), xMin + 1)
        var lMin = losses.min() ?? 0, lMax = losses.max() ?? 1
        if lMax - lMin < 1e-9 { lMin -= 0.5; lMax += 0.5 }
        let rMax = max(rows.map(\.learningRate).max() ?? 1, 1e-12)
        func x(_ s: Double) -> Double { left + (s - xMin) / (xMax - xMin) * plotW }
        func yLoss(_ v: Double) -> Double { top + (1 - (v - lMin) / (lMax - lMin)) * plotH }
        func yRate(_ v: Double) -> Double { top + (1 - v / rMax) * plotH }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Training loss and learning rate</text>\n"
        // Axes.
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(f(left + plotW))\" y1=\"\(f(top))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>\n"
        for t in ticks(xMin, xMax, integers: true) {
            s += "<line x1=\"\(f(x(t)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(x(t)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"black\"/>"
            s += "<text x=\"\(f(x(t)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(Int(t))</text>\n"
        }
        for t in ticks(lMin, lMax) {
            s += "<line x1=\"\(f(left - 5))\" y1=\"\(f(yLoss(t)))\" x2=\"\(f(left))\" y2=\"\(f(yLoss(t)))\" stroke=\"black\"/>"
            s += "<line x1=\"\(f(left))\" y1=\"\(f(yLoss(t)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(yLoss(t)))\" stroke=\"#e5e5e5\"/>"
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(yLoss(t) + 4))\" text-anchor=\"end\">\(label(t))</text>\n"
        }
        for t in ticks(0, rMax) {
            s += "<line x1=\"\(f(left + plotW))\" y1=\"\(f(yRate(t)))\" x2=\"\(f(left + plotW + 5))\" y2=\"\(f(yRate(t)))\" stroke=\"black\"/>"
            s += "<text x=\"\(f(left + plotW + 8))\" y=\"\(f(yRate(t) + 4))\" text-anchor=\"start\">\(label(t))</text>\n"
        }
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">optimizer step</text>\n"
        s += "<text transform=\"translate(18 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\" fill=\"#1f77b4\">loss</text>\n"
        s += "<text transform=\"translate(\(f(width - 14)) \(f(top + plotH / 2))) rotate(90)\" text-anchor=\"middle\" fill=\"#2ca02c\">learning rate</text>\n"
        // Series.
        if !rows.isEmpty {
            let lossPoints = rows.map { "\(f(x(Double($0.step)))),\(f(yLoss($0.loss)))" }.joined(separator: " ")
            let ratePoints = rows.map { "\(f(x(Double($0.step)))),\(f(yRate($0.learningRate)))" }.joined(separator: " ")
            s += "<polyline id=\"loss\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"\(lossPoints)\"/>\n"
            s += "<polyline id=\"lr\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1.5\" stroke-dasharray=\"6 3\" points=\"\(ratePoints)\"/>\n"
            for r in rows { if let e = r.evalLoss { s += "<circle class=\"eval\" cx=\"\(f(x(Double(r.step))))\" cy=\"\(f(yLoss(e)))\" r=\"4\" fill=\"#ff7f0e\"/>\n" } }
        }
        // Legend.
        let lx = left + 10, ly = top + 10
        s += "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 24))\" y2=\"\(f(ly))\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"\(f(lx + 30))\" y=\"\(f(ly + 4))\">train loss</text>\n"
        s += "<line x1=\"\(f(lx))\" y1=\"\(f(ly + 16))\" x2=\"\(f(lx + 24))\" y2=\"\(f(ly + 16))\" stroke=\"#2ca02c\" stroke-dasharray=\"6 3\"/><text x=\"\(f(lx + 30))\" y=\"\(f(ly + 20))\">learning rate</text>\n"
        s += "<circle cx=\"\(f(lx + 12))\" cy=\"\(f(ly + 32))\" r=\"4\" fill=\"#ff7f0e\"/><text x=\"\(f(lx + 30))\" y=\"\(f(ly + 36))\">eval loss</text>\n"
        s += "</svg>\n"
        return s
    }
}
