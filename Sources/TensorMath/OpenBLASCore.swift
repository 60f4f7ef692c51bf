/// What we know about OpenBLAS's x86-64 kernel families ("cores"), ranked by the widest vector
/// unit their kernels use. Used to decide whether the core OpenBLAS picked at load time
/// under-uses this CPU.
public enum OpenBLASCore {
    public enum Tier: Int, Comparable, Sendable {
        case generic = 0, avx = 1, avx2 = 2, avx512 = 3
        public static func < (a: Tier, b: Tier) -> Bool { a.rawValue < b.rawValue }
    }

    /// Tier of a core name as printed by `openblas_get_corename()` (case-insensitive).
    /// Unknown names (other architectures, newer releases) are `nil`: never second-guessed.
    public static func tier(ofCore name: String) -> Tier? {
        switch name.lowercased() {
        case "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn",
             "dunnington", "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano":
            return .generic
        case "sandybridge", "bulldozer", "piledriver", "steamroller":
            return .avx
        case "haswell", "zen", "excavator":
            return .avx2
        case "skylakex", "cooperlake", "sapphirerapids":
            return .avx512
        default:
            return nil
        }
    }

    /// The widest tier this CPU can run.
    public static func tier(of cpu: CPUFeatures) -> Tier {
        if cpu.hasAVX512 { return .avx512 }
        if cpu.hasAVX2 { return .avx2 }
        if cpu.hasAVX { return .avx }
        return .generic
    }

    /// The core we switch to for a tier. SkylakeX rather than Cooperlake on AVX-512 parts: both
    /// share the sgemm micro-kernel, and SkylakeX measured faster here (docs/ARCHITECTURE.md).
    public static func preferredCore(for tier: Tier, cpu: CPUFeatures) -> String? {
        switch tier {
        case .avx512: return "SkylakeX"
        case .avx2: return cpu.isAMD ? "Zen" : "Haswell"
        case .avx: return "SandyBridge"
        case .generic: return nil
        }
    }

    /// The exported kernel-table symbol of a core in a DYNAMIC_ARCH build (`gotoblas_SKYLAKEX`).
    /// Its presence proves the library can run that core before we ask it to.
    public static func tableSymbol(forCore name: String) -> String { "gotoblas_" + name.uppercased() }
}
