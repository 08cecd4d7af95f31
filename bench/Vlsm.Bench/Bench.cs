using System.Diagnostics;
using static TorchSharp.torch;

namespace Vlsm.Bench;

internal static class Bench
{
    /// <summary>Median of <paramref name="n"/> timed runs (seconds), after one warm-up run (first-call allocations, caches) unless <paramref name="warmUp"/> is false.</summary>
    public static double Median(int n, Func<double> run, bool warmUp = true)
    {
        if (warmUp) run();
        var times = Enumerable.Range(0, n).Select(_ => run()).Order().ToArray();
        return times[n / 2];
    }

    /// <summary>Random 352x352 images, 12-token prompts and binary targets.</summary>
    public static (Tensor Pixels, Tensor Ids, Tensor Mask, Tensor Target) RandomBatch(int batch)
    {
        var pixels = randn(batch, 3, 352, 352);
        var ids = full(batch, 12, 320L, ScalarType.Int64);
        ids[TensorIndex.Colon, 0] = tensor(49406L);
        ids[TensorIndex.Colon, 11] = tensor(49407L);
        var mask = ones(batch, 12, ScalarType.Int64);
        var target = rand(batch, 352, 352).gt(0.5).to(ScalarType.Float32);
        return (pixels, ids, mask, target);
    }

    /// <summary>Seconds one timed call of <paramref name="work"/> takes.</summary>
    public static double Time(Action work)
    {
        var clock = Stopwatch.StartNew();
        work();
        return clock.Elapsed.TotalSeconds;
    }
}
