using static TorchSharp.torch;

namespace Vlsm.Platform;

/// <summary>
/// Whether bfloat16 matrix products are usable on this CPU. libtorch multiplies bf16 matrices with
/// oneDNN's kernels only on CPUs with AVX-512 (BW, VL, DQ) or AMX; elsewhere (AMD Zen 3, Intel before
/// Skylake-SP, any AVX2-only CPU) every bf16 product, attention and convolution goes to its reference
/// kernel: on a 2-core AMD EPYC Zen 3, 1 GFLOP/s against 74 in float32. Measuring the two rates
/// instead of copying libtorch's rule stays right for builds and CPUs that rule does not foresee.
/// </summary>
public static class Bf16Speed
{
    /// <summary>bf16 counts as slow below a quarter of fp32's product rate: CPUs without bf16 instructions that still convert in vector registers (AVX-512 without avx512_bf16) stay near fp32's rate; the reference kernel is 20-100x below it.</summary>
    public const double SlowBelowFractionOfFp32 = 0.25;

    private static readonly Lazy<(double Bf16, double Fp32)> Rates = new(() => (MatrixProductRate.Gflops(ScalarType.BFloat16, 256, runs: 3), MatrixProductRate.Gflops(ScalarType.Float32, 256, runs: 3)));

    /// <summary>bf16 and fp32 product rates (GFLOP/s, 256³, best of 3 after a warm-up; about 0.1 s on a CPU where bf16 is slow), measured once per process.</summary>
    public static (double Bf16, double Fp32) MeasuredRates => Rates.Value;

    /// <summary>Whether bf16 products run below <see cref="SlowBelowFractionOfFp32"/> of the fp32 rate here.</summary>
    public static bool IsSlow => IsSlowAt(Rates.Value.Bf16, Rates.Value.Fp32);

    /// <summary>Whether bf16 counts as slow at these product rates (GFLOP/s): below <see cref="SlowBelowFractionOfFp32"/> of fp32's.</summary>
    public static bool IsSlowAt(double bf16Gflops, double fp32Gflops) => bf16Gflops < SlowBelowFractionOfFp32 * fp32Gflops;

    /// <summary>A note for a user who asked for bf16 on a CPU where it is slow, with the rates and <paramref name="fix"/>; null where bf16 is not slow.</summary>
    public static string? SlowNote(string fix = "Use --precision fp32 (the default) unless you need bf16's numbers.")
    {
        if (!IsSlow) return null;
        var (bf16, fp32) = Rates.Value;
        var cpu = CpuDescription.Read();
        return $"note: bf16 is slow on this CPU ({cpu.Model}{(cpu.Family is { } f ? $", family {f} model {cpu.ModelNumber}" : "")}): "
            + $"libtorch has no bf16 kernels for it and multiplies bf16 matrices at {bf16:0.0} GFLOP/s against {fp32:0} GFLOP/s in fp32, so this run will take roughly {fp32 / bf16:0}x as long as in fp32. "
            + fix;
    }
}
