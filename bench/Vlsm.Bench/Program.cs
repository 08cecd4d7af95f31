using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Models.ClipSeg;
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

// The data loader must outpace training: one batch of 32 at 352x352 per optimizer step.
double loaderRate = Vlsm.Bench.LoaderBench.ImagesPerSecond(quick ? 64 : 256, workers: threads);
results["loader_images_per_s"] = Math.Round(loaderRate, 1);
Console.WriteLine($"loader 512x512 PNG/JPEG -> 352x352, batch 32, {threads} workers: {loaderRate:0.0} images/s");

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
    var pixels = randn(batch, 3, 352, 352);
    var ids = full(batch, 12, 320L, ScalarType.Int64);
    ids[TensorIndex.Colon, 0] = tensor(49406L);
    ids[TensorIndex.Colon, 11] = tensor(49407L);
    var mask = ones(batch, 12, ScalarType.Int64);
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
