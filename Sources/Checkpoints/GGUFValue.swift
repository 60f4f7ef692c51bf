/// A GGUF metadata value. Type ids (gguf.md `gguf_metadata_value_type`): 0 uint8, 1 int8,
/// 2 uint16, 3 int16, 4 uint32, 5 int32, 6 float32, 7 bool, 8 string, 9 array, 10 uint64,
/// 11 int64, 12 float64.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    /// Elements all of one type; arrays of arrays occur (nested arrays of strings, for example).
    case array([GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// Any integer value that fits in `Int`.
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// Any numeric value (integers converted) as Double.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var bool: Bool? { if case .bool(let v) = self { return v } else { return nil } }
    public var string: String? { if case .string(let v) = self { return v } else { return nil } }
    public var array: [GGUFValue]? { if case .array(let v) = self { return v } else { return nil } }

    /// An array whose elements are all strings.
    public var strings: [String]? {
        guard case .array(let values) = self else { return nil }
        var result: [String] = []
        result.reserveCapacity(values.count)
        for value in values {
            guard case .string(let text) = value else { return nil }
            result.append(text)
        }
        return result
    }

    /// An array whose elements are all integers fitting in `Int`.
    public var ints: [Int]? {
        guard case .array(let values) = self else { return nil }
        var result: [Int] = []
        result.reserveCapacity(values.count)
        for value in values {
            guard let number = value.int else { return nil }
            result.append(number)
        }
        return result
    }

    /// An array whose elements are all numeric, as Float.
    public var floats: [Float]? {
        guard case .array(let values) = self else { return nil }
        var result: [Float] = []
        result.reserveCapacity(values.count)
        for value in values {
            switch value {
            case .float32(let v): result.append(v)
            default:
                guard let number = value.double else { return nil }
                result.append(Float(number))
            }
        }
        return result
    }

    /// The GGUF type name (`uint32`, `string`, `array[string]`, …).
    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .array(let values): return "array[\(values.first?.typeName ?? "")]"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        }
    }
}
