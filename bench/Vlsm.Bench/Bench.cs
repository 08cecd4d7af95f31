using System.Diagnostics;
using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Bench;

internal static class Bench
{
    /// <summary>
    /// Runs this bench program again as a child (a measurement alone in its own process, so its peak
    /// RSS is its own) and returns its exit code, its stdout and the stdout's last line (the result).
    /// </summary>
    public static (int Exit, string Output, string LastLine) RunSelf(params string[] args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(typeof(Bench).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, output.Trim().Split('\n').Last());
    }

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
    /// A batch of random size x size images, binary masks and one prompt, as the data loader hands it
    /// over; <paramref name="id"/> names its records, so a new id is a batch no feature cache has seen.
    /// </summary>
    public static Batch RandomTrainBatch(int id, int batch, int size, string prompt)
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

    /// <summary>
    /// Median seconds of <see cref="TrainingSession.TrainStep"/> on batches never seen (frozen towers
    /// computed), then on one batch again and again (their outputs served by the feature cache).
    /// </summary>
    public static (double Fresh, double Cached) TrainSteps(TrainingSession session, int batch, int size, string prompt, int repeats, bool warmUp)
    {
        session.Model.SetTraining(true);
        int fresh = 0;
        double seconds = Median(repeats, () =>
        {
            var b = RandomTrainBatch(fresh++, batch, size, prompt);
            return Time(() => session.TrainStep(b));
        }, warmUp);
        var cachedBatch = RandomTrainBatch(-1, batch, size, prompt);
        session.TrainStep(cachedBatch);
        double cached = Median(repeats, () => Time(() => session.TrainStep(cachedBatch)), warmUp);
        return (seconds, cached);
    }

    /// <summary>Seconds one timed call of <paramref name="work"/> takes.</summary>
    public static double Time(Action work)
    {
        var clock = Stopwatch.StartNew();
        work();
        return clock.Elapsed.TotalSeconds;
    }
}

/// <summary>Seconds of a step's named parts over many steps, reported as each part's median (in the order the parts were first added).</summary>
internal sealed class PartTimes
{
    private readonly Dictionary<string, List<double>> times = [];

    public void Add(string part, double seconds)
    {
        if (!times.TryGetValue(part, out var list)) times[part] = list = [];
        list.Add(seconds);
    }

    /// <summary>Each part's median, rounded to 0.1 ms, written into <paramref name="into"/>.</summary>
    public JsonObject Medians(JsonObject into)
    {
        foreach (var (part, list) in times) into[part] = Math.Round(list.Order().ElementAt(list.Count / 2), 4);
        return into;
    }
}
