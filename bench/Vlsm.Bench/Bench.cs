using System.Diagnostics;
using Vlsm.Data;
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

    /// <summary>
    /// A batch as the data loader hands it over: random <paramref name="size"/>-square images and
    /// binary masks, one prompt for all; <paramref name="id"/> names its records, so a new id means
    /// samples never seen (frozen towers run), the same id samples the feature cache holds.
    /// </summary>
    public static Batch LoaderBatch(int batch, int size, string prompt, int id)
    {
        using var pixels = randn(batch, 3, size, size);
        using var target = rand(batch, size, size).gt(0.5).to(ScalarType.Float32);
        return new Batch
        {
            Index = 0,
            Width = size,
            Height = size,
            Images = pixels.data<float>().ToArray(),
            Masks = target.data<float>().ToArray(),
            Prompts = Enumerable.Repeat(prompt, batch).ToList(),
            Records = Enumerable.Range(0, batch).Select(i => new RecordId("bench", "train", id * batch + i, $"{id}-{i}.png", $"{id}-{i}.png")).ToList(),
            OriginalSizes = Enumerable.Repeat((size, size), batch).ToList(),
        };
    }

    /// <summary>Seconds one timed call of <paramref name="work"/> takes.</summary>
    public static double Time(Action work)
    {
        var clock = Stopwatch.StartNew();
        work();
        return clock.Elapsed.TotalSeconds;
    }
}
