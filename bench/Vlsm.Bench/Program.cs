using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Bench;
using Vlsm.Models.ClipSeg;
using Vlsm.Platform;
using static TorchSharp.torch;

// vlsm benchmarks: dotnet run -c Release --project bench/Vlsm.Bench -- [--quick] [--threads N] [--json FILE] [--biomedclipseg] [--smp] [--san] [--only serve|sweep|bigimage]
// --biomedclipseg measures CLIPSeg's forward passes and BiomedCLIPSeg's figures only (a full run includes them).
// --inference measures only CLIPSeg's forward passes (fp32 batch 1 and 8, bf16 batch 8) and the bf16 accuracy.
// --smp measures only the image-only baseline, UNet-r50, median of 3 for its forward passes too (a full run includes it; --quick leaves it out).
// --san measures CLIPSeg's forward passes, its dense-adapter training step (fp32) and SAN's figures
// only (a full run includes them; --quick leaves SAN out). SAN's figures are medians of 3 runs.
// --only serve|sweep|bigimage|hostile: just the load and soak of vlsm serve, the sweep runner's overhead per cell, or the peak RSS of predict and eval
// on three 12000x12000 images (3000x3000 with --quick) at batch 1 and 3, each in a child process; figures under "extra".
// --only hostile: peak RSS of `vlsm convert` (a child process; build src/Vlsm.Cli first) on hostile .pth files, target under 300 MB.
// Each figure is the median of timed runs (5 for inference, 3 for training steps) after one
// warm-up run. --quick (CI smoke test, under two minutes) measures every key of the JSON
// document from one run without warm-up, loads 64 images instead of 256 and leaves out the
// memory-growth run: its figures show that everything runs, not how fast.
var argsList = args.ToList();
bool quick = argsList.Contains("--quick");
int threads = Value("--threads") is { } t ? int.Parse(t, CultureInfo.InvariantCulture) : 2;
string? jsonPath = Value("--json");
int inferRepeats = quick ? 1 : 5;
int trainRepeats = quick ? 1 : 3;

torch.set_num_threads(threads);
torch.set_num_interop_threads(1);
torch.manual_seed(0);

// The probe runs at the process's first convolution; here it is the first libtorch work of all,
// so this figure includes libtorch's own first-use costs that any first convolution pays.
double firstProbeMs = Vlsm.Tensors.SafeConvolution.Probe.Milliseconds;

// A training measurement runs alone in a child process so its peak RSS is its own.
if (Value("--child") == MemoryGrowth.ChildKey)
{
    Console.WriteLine(MemoryGrowth.RunChild());
    return 0;
}
if (Value("--child") == BigImageBench.ChildKey)
{
    Console.WriteLine(BigImageBench.RunChild(Value("--command")!, Value("--model")!, Value("--data")!, int.Parse(Value("--batch")!, CultureInfo.InvariantCulture)));
    return 0;
}
if (Value("--child") == LayerMicro.ChildKey)
{
    Console.WriteLine(LayerMicro.Run(Value("--precision") ?? "fp32").ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    return 0;
}
if (Value("--child") == StepProfile.CachedShallowKey)
{
    Console.WriteLine(StepProfile.RunCachedShallow(quick ? 1 : int.Parse(Value("--steps") ?? "15")).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    return 0;
}
if (Value("--child") == StepProfile.ChildKey)
{
    Console.WriteLine(StepProfile.Run(Value("--precision") ?? "fp32", quick ? 1 : int.Parse(Value("--steps") ?? "3")).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    return 0;
}
if (Value("--child") is { } child)
{
    Console.WriteLine(TrainingMeasurement.Run(child, Value("--precision") ?? "fp32", trainRepeats, warmUp: !quick, cachedRepeats: Value("--steps") is { } steps ? int.Parse(steps, CultureInfo.InvariantCulture) : quick ? 1 : null).ToJsonString());
    return 0;
}

if (Value("--only") is { } only)
{
    var alone = new JsonObject();
    switch (only)
    {
        case "serve":
            ServeLoad.Measure(alone, quick);
            break;
        case "sweep":
            SweepOverhead.Measure(alone, MemoryGrowth.TinyModel() ?? throw new ArgumentException("--only sweep needs ../shared/parity/clipseg-tiny beside the checkout."));
            break;
        case "hostile":
            HostileFiles.Measure(alone);
            break;
        case "bigimage":
            BigImageBench.Measure(alone, quick);
            break;
        default:
            throw new ArgumentException($"--only {only}: the parts that run alone are 'serve', 'sweep', 'hostile' and 'bigimage'.");
    }
    Write(new JsonObject { ["extra"] = alone });
    return 0;
}

if (argsList.Contains("--smp"))
{
    var smpOnly = new JsonObject();
    SmpBench.Measure(smpOnly, trainRepeats, warmUp: !quick);
    Write(new JsonObject { ["results"] = smpOnly });
    return 0;
}

var results = new JsonObject();
var extra = new JsonObject();
// The ceiling: the fastest of 15 2048x2048 products after a warm-up.
double gemmFp32 = MatrixProductRate.Gflops(ScalarType.Float32, 2048, runs: 15);
// Where libtorch's bf16 products run on its reference kernel (AVX2-only CPUs such as AMD Zen 3:
// about 70x below fp32), a bf16 figure would take hours and say only that; the document names the
// reason instead, its bf16 keys null, and the ceiling is the small product that found it.
string? bf16NotMeasured = Bf16Speed.IsSlow
    ? $"bf16 products are slow on this CPU: {Bf16Speed.MeasuredRates.Bf16:0.0} GFLOP/s against {Bf16Speed.MeasuredRates.Fp32:0.0} in fp32 (256x256 matmul), so the bf16 figures are not measured"
    : null;
double gemmBf16 = bf16NotMeasured is null ? MatrixProductRate.Gflops(ScalarType.BFloat16, 2048, runs: 15) : Bf16Speed.MeasuredRates.Bf16;
if (bf16NotMeasured is not null) Console.WriteLine(bf16NotMeasured);
Console.WriteLine($"native allocator: {Vlsm.Tensors.NativeHeap.Setting}; OMP_WAIT_POLICY {Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "libgomp default"}");
Console.WriteLine($"threads {threads}; 2048x2048 matmul: fp32 {gemmFp32:0.0} GFLOP/s, bf16 {gemmBf16:0.0} GFLOP/s{(bf16NotMeasured is null ? "" : " (256x256)")}");

MeasureInference();
if (argsList.Contains("--inference"))
{
    Write(new JsonObject { ["results"] = results, ["extra"] = extra });
    return 0;
}
bool biomedOnly = argsList.Contains("--biomedclipseg"), sanOnly = argsList.Contains("--san");
if ((!quick && !sanOnly) || biomedOnly) BiomedClipSegBench.Measure(results, inferRepeats, warmUp: !quick);
if ((!quick && !biomedOnly) || sanOnly) SanBench.Measure(results, trainRepeats, warmUp: !quick);
if (sanOnly) MeasureTraining("train_dense_vl_b4", TowerPrecision.Fp32); // CLIPSeg's dense adapters, beside SAN's step
if (biomedOnly || sanOnly)
{
    Write(new JsonObject { ["results"] = results, ["extra"] = extra });
    return 0;
}
ConvolutionBench.Measure(extra, inferRepeats, warmUp: !quick);
if (!quick) SmpBench.Measure(results, trainRepeats, warmUp: true);

foreach (var key in TrainingMeasurement.Keys)
{
    MeasureTraining(key, TowerPrecision.Fp32);
    if (bf16NotMeasured is null) MeasureTraining(key, TowerPrecision.Bf16);
    else
    {
        results[$"{key}_bf16_s"] = null;
        if (key == "train_dense_vl_b4") results[$"{key}_bf16_peak_rss_mb"] = null;
    }
}

void MeasureTraining(string key, string precision)
{
    var measured = TrainingMeasurement.InChildProcess(key, precision, quick, threads);
    string name = precision == TowerPrecision.Fp32 ? key : $"{key}_{precision}";
    results[$"{name}_s"] = measured["seconds"]!.GetValue<double>();
    // The required document has the dense runs' peak RSS; the shallow runs' goes with the extra figures.
    (key == "train_dense_vl_b4" ? results : extra)[$"{name}_peak_rss_mb"] = measured["peak_rss_mb"]!.GetValue<long>();
    Console.WriteLine($"train step {measured["spec"]} batch {TrainingMeasurement.Batch}: {measured["seconds"]} s, peak RSS {measured["peak_rss_mb"]} MB");
    if (measured["cached_seconds"] is { } cachedSeconds)
    {
        results[$"{key}_cached_s"] = cachedSeconds.GetValue<double>();
        Console.WriteLine($"  with the feature cache warm: {cachedSeconds} s ({measured["seconds"]!.GetValue<double>() / cachedSeconds.GetValue<double>():0.0}x faster)");
        if (measured["cached_parts_s"] is JsonObject parts)
        {
            extra[$"{key}_cached_parts_s"] = parts.DeepClone();
            Console.WriteLine($"  its parts: {string.Join(", ", parts.Select(kv => $"{kv.Key} {kv.Value} s"))}");
        }
    }
}

// The data loader must outpace training: one batch of 32 at 352x352 per optimizer step.
double loaderRate = LoaderBench.ImagesPerSecond(quick ? 64 : 256, workers: threads);
results["loader_images_per_s"] = Math.Round(loaderRate, 1);
Console.WriteLine($"loader 512x512 PNG/JPEG -> 352x352, batch 32, {threads} workers: {loaderRate:0.0} images/s");
double fastestStep = results.Where(kv => kv.Key.StartsWith("train_", StringComparison.Ordinal) && kv.Key.EndsWith("_s", StringComparison.Ordinal) && kv.Value is not null)
    .Min(kv => kv.Value!.GetValue<double>());
double consumed = TrainingMeasurement.Batch / fastestStep;
extra["loader_vs_fastest_training"] = Math.Round(loaderRate / consumed, 2);
Console.WriteLine($"  {loaderRate / consumed:0.0}x the {consumed:0.0} images/s the fastest training step measured consumes");

if (MemoryGrowth.TinyModel() is { } tiny) SweepOverhead.Measure(extra, tiny);

ServeLoad.Measure(extra, quick);

if (!quick && MemoryGrowth.Measure() is { } growth)
{
    extra["train_rss_growth_step20_to_200_pct"] = growth;
    Console.WriteLine($"resident memory growth of a training run from step 20 to step 200: {growth:0.00} %");
}

var machine = new JsonObject { ["threads"] = threads, ["gemm_gflops_fp32"] = Math.Round(gemmFp32, 1), ["gemm_gflops_bf16"] = Math.Round(gemmBf16, 1) };
if (bf16NotMeasured is not null) machine["bf16_not_measured"] = bf16NotMeasured;
ConvolutionBench.DescribeMachine(machine, firstProbeMs);
Write(new JsonObject
{
    ["machine"] = machine,
    ["results"] = results,
    ["extra"] = extra,
});
return 0;

// Every document says which machine and build produced it, so figures from different machines are never compared blind.
void Write(JsonObject root)
{
    if (jsonPath is null) return;
    if (root["machine"] is null)
    {
        var described = new JsonObject { ["threads"] = threads };
        ConvolutionBench.DescribeMachine(described, firstProbeMs);
        root["machine"] = described;
    }
    Vlsm.IO.AtomicFile.WriteAllText(jsonPath, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"wrote {jsonPath}");
}

string? Value(string name)
{
    int i = argsList.IndexOf(name);
    return i >= 0 && i + 1 < argsList.Count ? argsList[i + 1] : null;
}

// Forward passes of one random-weight model, frozen as the predictor freezes it: fp32 at batch 1
// and 8, then bf16 towers at batch 8 on the same input, whose logits are compared with fp32's.
void MeasureInference()
{
    var config = ClipSegConfig.Rd64Refined;
    double hfFlops = ModelFlops.PerImage(config, 352, 12, config.Vision.NumHiddenLayers);
    double executedFlops = ModelFlops.PerImage(config, 352, 12, config.VisionLayersNeeded);
    Console.WriteLine($"forward pass per 352x352 image: {hfFlops / 1e9:0.0} GFLOP as HF computes it (all {config.Vision.NumHiddenLayers} vision layers), "
        + $"{executedFlops / 1e9:0.0} GFLOP executed (layers after the deepest extract layer skipped)");
    extra["forward_gflop_per_image_hf"] = Math.Round(hfFlops / 1e9, 1);
    extra["forward_gflop_per_image_executed"] = Math.Round(executedFlops / 1e9, 1);

    using var model = new ClipSegModel(config);
    model.eval();
    foreach (var p in model.parameters()) p.requires_grad = false;
    using var scope = NewDisposeScope();
    var inputs = new Dictionary<int, (Tensor Pixels, Tensor Ids, Tensor Mask, Tensor Target)> { [1] = Bench.RandomBatch(1), [8] = Bench.RandomBatch(8) };
    var logits = new Dictionary<string, Tensor>();

    void Measure(int batch, string precision, double gemm)
    {
        var (pixels, ids, mask, _) = inputs[batch];
        double s = Bench.Median(inferRepeats, () => Bench.Time(() =>
        {
            // As the predictor runs a batch: in a dispose scope of its own, which frees what the pass leaves.
            using var passScope = NewDisposeScope();
            using var _ = inference_mode();
            var output = model.Forward(pixels, ids, mask).MoveToOuterDisposeScope();
            output.sum().item<float>();
            if (logits.Remove($"{precision}{batch}", out var previous)) previous.Dispose();
            logits[$"{precision}{batch}"] = output;
        }), warmUp: !quick);
        results[$"infer_b{batch}_{precision}_s"] = Math.Round(s, 4);
        double hfRate = hfFlops * batch / s / 1e9, executedRate = executedFlops * batch / s / 1e9;
        extra[$"infer_b{batch}_{precision}_gemm_fraction_hf_flops"] = Math.Round(hfRate / gemm, 3);
        extra[$"infer_b{batch}_{precision}_gemm_fraction_executed_flops"] = Math.Round(executedRate / gemm, 3);
        Console.WriteLine($"forward clipseg-rd64-refined 352x352 {precision} batch {batch}: {s:0.000} s ({s / batch:0.000} s/image); "
            + $"{hfRate:0.0} GFLOP/s HF-equivalent = {hfRate / gemm:P0} of the {precision} GEMM ceiling ({executedRate:0.0} GFLOP/s executed = {executedRate / gemm:P0})");
    }

    Measure(1, TowerPrecision.Fp32, gemmFp32);
    Measure(8, TowerPrecision.Fp32, gemmFp32);
    if (bf16NotMeasured is not null)
    {
        foreach (var key in new[] { "infer_b8_bf16_s", "bf16_vs_fp32_logits_max_abs_diff", "bf16_vs_fp32_mask_agreement" }) results[key] = null;
        return;
    }
    model.SetTowerDtype(ScalarType.BFloat16);
    Measure(8, TowerPrecision.Bf16, gemmBf16);

    var (fp32, bf16) = (logits["fp328"], logits["bf168"]);
    double diff = (fp32 - bf16).abs().max().item<float>();
    double agreement = fp32.gt(0).eq(bf16.gt(0)).to(ScalarType.Float64).mean().item<double>();
    results["bf16_vs_fp32_logits_max_abs_diff"] = Math.Round(diff, 6);
    results["bf16_vs_fp32_mask_agreement"] = Math.Round(agreement, 6);
    Console.WriteLine($"bf16 vs fp32 logits, batch 8: max |diff| {diff:0.000000}, thresholded-at-0 mask pixels equal {agreement:P3} "
        + $"(random weights: fp32 logits in [{fp32.min().item<float>():0.000}, {fp32.max().item<float>():0.000}], std {fp32.std().item<float>():0.000})");
}
