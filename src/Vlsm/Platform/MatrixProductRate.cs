using System.Diagnostics;
using static TorchSharp.torch;

namespace Vlsm.Platform;

/// <summary>The rate of a square matrix product through libtorch: what <c>vlsm env</c>, <see cref="Bf16Speed"/> and the bench's ceiling measure.</summary>
public static class MatrixProductRate
{
    /// <summary>
    /// GFLOP/s of an n³ product in <paramref name="dtype"/>: the fastest of <paramref name="runs"/> after a
    /// warm-up (thread pool, kernel selection), so a stray background task cannot lower it. A rate, not a
    /// benchmark of vlsm's work (bench/ has those).
    /// </summary>
    public static double Gflops(ScalarType dtype, long n, int runs)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var generator = new Generator(0);
        var a = randn([n, n], generator: generator).to(dtype);
        var b = randn([n, n], generator: generator).to(dtype);
        double best = double.MaxValue;
        for (int i = 0; i <= runs; i++)
        {
            var watch = Stopwatch.StartNew();
            using (var c = a.matmul(b)) c.sum().to(ScalarType.Float32).item<float>();
            if (i > 0) best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }
}
