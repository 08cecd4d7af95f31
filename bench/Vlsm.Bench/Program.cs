using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Adapters;
using Vlsm.Bench;
using Vlsm.Models.ClipSeg;
using Vlsm.Training;
using static TorchSharp.torch;

// vlsm benchmarks: dotnet run -c Release --project bench/Vlsm.Bench -- [--quick] [--threads N] [--json FILE]
// Each figure is the median of timed runs after one warm-up run.
var argsList = args.ToList();
bool quick = argsList.Contains("--quick");
int threads = Value("--threads") is { } t ? int.Parse(t) : 2;
string? jsonPath = Value("--json");
int repeats = quick ? 3 : 5;

torch.set_num_threads(threads);
torch.set_num_interop_threads(1);
torch.manual_seed(0);

// A training measurement runs alone in a child process so its peak RSS is its own.
if (Value("--child") == MemoryGrowth.ChildKey)
{
    Console.WriteLine(MemoryGrowth.RunChild());
    return 0;
}
if (Value("--child") is { } child)
{
    Console.WriteLine(TrainingMeasurement.Run(child, quick ? 1 : 3).ToJsonString());
    return 0;
}

var results = new JsonObject();
double gemm = GemmGflops(ScalarType.Float32);
Console.WriteLine($"threads {threads}; 2048x2048 fp32 matmul: {gemm:0.0} GFLOP/s");

using (var model = new ClipSegModel(ClipSegConfig.Rd64Refined))
{
    model.eval();
    foreach (int batch in quick ? new[] { 1 } : new[] { 1, 8 })
    {
        double s = Median(repeats, () => Forward(model, batch));
        results[$"infer_b{batch}_fp32_s"] = Math.Round(s, 4);
        Console.WriteLine($"forward clipseg-rd64-refined 352x352 fp32 batch {batch}: {s:0.000} s ({s / batch:0.000} s/image)");
    }

}

foreach (var key in TrainingMeasurement.Keys)
{
    var measured = TrainingMeasurement.InChildProcess(key, quick, threads);
    results[$"{key}_s"] = measured["seconds"]!.GetValue<double>();
    results[$"{key}_peak_rss_mb"] = measured["peak_rss_mb"]!.GetValue<long>();
    Console.WriteLine($"train step {measured["spec"]} batch 4: {measured["seconds"]} s, peak RSS {measured["peak_rss_mb"]} MB");
    if (measured["cached_seconds"] is { } cachedSeconds)
    {
        results[$"{key}_cached_s"] = cachedSeconds.GetValue<double>();
        Console.WriteLine($"  with the feature cache warm: {cachedSeconds} s ({measured["seconds"]!.GetValue<double>() / cachedSeconds.GetValue<double>():0.0}x faster)");
    }
}

// The data loader must outpace training: one batch of 32 at 352x352 per optimizer step.
double loaderRate = Vlsm.Bench.LoaderBench.ImagesPerSecond(quick ? 64 : 256, workers: threads);
results["loader_images_per_s"] = Math.Round(loaderRate, 1);
Console.WriteLine($"loader 512x512 PNG/JPEG -> 352x352, batch 32, {threads} workers: {loaderRate:0.0} images/s");

if (MemoryGrowth.Measure() is { } growth)
{
    results["train_rss_growth_step20_to_200_pct"] = growth;
    Console.WriteLine($"resident memory growth of a training run from step 20 to step 200: {growth:0.00} %");
}

var root = new JsonObject
{
    ["machine"] = new JsonObject { ["threads"] = threads, ["gemm_gflops_fp32"] = Math.Round(gemm, 1) },
    ["results"] = results,
};
if (jsonPath is not null)
{
    Vlsm.IO.AtomicFile.WriteAllText(jsonPath, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"wrote {jsonPath}");
}
return 0;

string? Value(string name)
{
    int i = argsList.IndexOf(name);
    return i >= 0 && i + 1 < argsList.Count ? argsList[i + 1] : null;
}

static double Forward(ClipSegModel model, int batch)
{
    using var scope = NewDisposeScope();
    using var _ = inference_mode();
    var (pixels, ids, mask, _) = TrainingMeasurement.RandomBatch(batch);
    var clock = Stopwatch.StartNew();
    var logits = model.Forward(pixels, ids, mask);
    logits.sum().item<float>();
    return clock.Elapsed.TotalSeconds;
}

static double Median(int n, Func<double> run)
{
    run(); // warm-up: first-call allocations, interpolation cache
    var times = Enumerable.Range(0, n).Select(_ => run()).Order().ToArray();
    return times[n / 2];
}

static double GemmGflops(ScalarType dtype)
{
    using var scope = NewDisposeScope();
    var a = randn(2048, 2048).to(dtype);
    var b = randn(2048, 2048).to(dtype);
    double s = Median(5, () =>
    {
        var clock = Stopwatch.StartNew();
        using var c = a.matmul(b);
        c.sum().item<float>();
        return clock.Elapsed.TotalSeconds;
    });
    return 2.0 * 2048 * 2048 * 2048 / s / 1e9;
}

/// <summary>Peak resident memory (VmHWM), resettable through /proc/self/clear_refs on Linux.</summary>
static class PeakRss
{
    public static void Reset()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public static long Megabytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:"))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
        return -1;
    }
}

/// <summary>One training step (forward, reference loss, backward, clip at 0.5, AdamW) at batch 4, 352x352.</summary>
static class TrainingMeasurement
{
    public static readonly string[] Keys = { "train_shallow_vlc_b4", "train_dense_vl_b4" };

    private static FineTuneSpec Spec(string key) => key switch
    {
        "train_shallow_vlc_b4" => FineTuneSpec.Create(FineTuneMode.Shallow, "vlc"),
        "train_dense_vl_b4" => FineTuneSpec.Create(FineTuneMode.Dense, "vl"),
        _ => throw new ArgumentException($"unknown measurement {key}"),
    };

    public static JsonObject Run(string key, int repeats)
    {
        var spec = Spec(key);
        using var adapted = new AdaptedClipSeg(new ClipSegModel(ClipSegConfig.Rd64Refined), spec);
        adapted.train();
        using var optimizer = optim.AdamW(adapted.TrainableParameters(), lr: 1e-3, weight_decay: 1e-3);
        TrainStep(adapted, optimizer, 4); // warm-up
        var times = Enumerable.Range(0, repeats).Select(_ => TrainStep(adapted, optimizer, 4)).Order().ToArray();
        var result = new JsonObject
        {
            ["spec"] = spec.ToString(),
            ["seconds"] = Math.Round(times[times.Length / 2], 4),
            ["peak_rss_mb"] = PeakRss.Megabytes(),
        };
        if (key == "train_shallow_vlc_b4")
        {
            // With the feature cache warm only the head runs: adapters, decoder, loss, backward, AdamW.
            var cached = Enumerable.Range(0, repeats + 1).Select(_ => CachedTrainStep(adapted, optimizer, 4)).Skip(1).Order().ToArray();
            result["cached_seconds"] = Math.Round(cached[cached.Length / 2], 4);
        }
        return result;
    }

    public static JsonObject InChildProcess(string key, bool quick, int threads)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            psi.ArgumentList.Add(typeof(TrainingMeasurement).Assembly.Location);
        foreach (var a in new[] { "--child", key, "--threads", threads.ToString() }) psi.ArgumentList.Add(a);
        if (quick) psi.ArgumentList.Add("--quick");
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"measurement {key} failed with exit code {p.ExitCode}");
        return (JsonObject)JsonNode.Parse(output.Trim().Split('\n').Last())!;
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

    /// <summary>Loss, backward, clipping and the optimizer step, timed from the point the logits are asked for.</summary>
    private static double Update(AdaptedClipSeg model, optim.Optimizer optimizer, Func<Tensor> logits, Tensor target)
    {
        var clock = Stopwatch.StartNew();
        optimizer.zero_grad();
        var loss = new DiceBceLoss().Compute(logits(), target);
        loss.backward();
        nn.utils.clip_grad_norm_(model.TrainableParameters(), 0.5);
        optimizer.step();
        return clock.Elapsed.TotalSeconds;
    }

    public static double CachedTrainStep(AdaptedClipSeg model, optim.Optimizer optimizer, int batch)
    {
        using var scope = NewDisposeScope();
        var (pixels, ids, mask, target) = RandomBatch(batch);
        using var vision = model.EncodeImage(pixels);
        using var text = model.EncodeText(ids, mask);
        return Update(model, optimizer, () => model.Head(vision, text), target);
    }

    public static double TrainStep(AdaptedClipSeg model, optim.Optimizer optimizer, int batch)
    {
        using var scope = NewDisposeScope();
        var (pixels, ids, mask, target) = RandomBatch(batch);
        return Update(model, optimizer, () => model.Forward(pixels, ids, mask), target);
    }
}
