import GRDBSQLite
import Store

extension RawStatement {
    /// Binds a text without copying when it is a span of the mapped file (valid until `step`).
    @inline(__always) func bind(_ i: Int32, _ t: COCOText) {
        switch t {
        case .raw(let p, let n): bindText(i, bytes: p, count: n)
        case .decoded(let s): bind(i, s)
        }
    }
}
