import ArgumentParser
import TensorMath

// Before any thread can be inside BLAS: OpenBLAS may have picked a slower kernel family than this
// CPU runs (Debian 0.3.21 falls back to Prescott on CPUs newer than its tables); see BLASRuntime.
BLASRuntime.ensureBestCore()
LlavaForge.main()
