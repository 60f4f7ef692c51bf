// bench/json_parse_bench.sh's driver (compiled by the script, not a package target): parse time
// of the shared JSONParser vs the anchors (the pre-merge tokenizer and checkpoint parsers,
// extracted from git by the script, and Foundation's JSONSerialization), side by side.
import Foundation

func milliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fatalError("usage: json_parse_bench RUNS FILE…") }
let runs = Int(arguments[1]) ?? 15
print("| file | bytes | anchor | anchor ms | JSONParser ms | JSONParser / anchor |")
print("|---|---:|---|---:|---:|---:|")
for path in arguments.dropFirst(2) {
    let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
    let name = (path as NSString).lastPathComponent
    // Interleaved runs, so that machine load hits every parser alike.
    var new: [Double] = [], tokenizer: [Double] = [], checkpoint: [Double] = [], foundation: [Double] = []
    var sink = 0
    for _ in 0..<runs {
        try new.append(milliseconds { let v = try JSONParser.parse(bytes, options: JSONParseOptions(duplicateKeys: .keepAll, loneSurrogates: .replace)); sink &+= v.object?.count ?? 0 })
        try tokenizer.append(milliseconds { let v = try AnchorTokenizerJSON.parse(bytes, file: path); sink &+= v.object?.count ?? 0 })
        try checkpoint.append(milliseconds { let v = try AnchorCheckpointJSON.parse(bytes); sink &+= v.objectValue?.count ?? 0 })
        try foundation.append(milliseconds { let v = try JSONSerialization.jsonObject(with: Data(bytes)); sink &+= (v as? [String: Any])?.count ?? 0 })
    }
    let n = median(new)
    for (anchor, times) in [("old Tokenizers JSON", tokenizer), ("old Checkpoints JSONValue", checkpoint), ("Foundation JSONSerialization", foundation)] {
        let a = median(times)
        print("| \(name) | \(bytes.count) | \(anchor) | \(String(format: "%.2f", a)) | \(String(format: "%.2f", n)) | \(String(format: "%.2f", n / a)) |")
    }
    if sink == 42 { print("") }
}
