using System.Diagnostics;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Adapters;
using Vlsm.Models.ClipSeg;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Bench;

/// <summary>Peak resident memory (VmHWM) of this process, on Linux.</summary>
internal static class PeakRss
{
    public static long Megabytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
        return -1;
    }
}

/// <summary>
/// One training step (forward, reference loss, backward, clip at 0.5, AdamW) at batch 4, 352x352,
/// of random-weight clipseg-rd64-refined, in a child process of its own so its peak RSS is its own.
/// </summary>
internal static class TrainingMeasurement
{
    public const int Batch = 4;
    public static readonly string[] Keys = { "train_shallow_vlc_b4", "train_dense_vl_b4" };

    private static FineTuneSpec Spec(string key) => key switch
    {
        "train_shallow_vlc_b4" => FineTuneSpec.Create(FineTuneMode.Shallow, "vlc"),
        "train_dense_vl_b4" => FineTuneSpec.Create(FineTuneMode.Dense, "vl"),
        _ => throw new ArgumentException($"unknown measurement {key}"),
    };

    /// <summary>The measurement itself (in the child): median step time, peak RSS, and for shallow fp32 the step with the feature cache warm.</summary>
    public static JsonObject Run(string key, string precision, int repeats, bool warmUp)
    {
        var spec = Spec(key);
        using var adapted = new AdaptedClipSeg(new ClipSegModel(ClipSegConfig.Rd64Refined), spec);
        if (precision == TowerPrecision.Bf16) adapted.UseBf16Towers();
        adapted.train();
        using var optimizer = optim.AdamW(adapted.TrainableParameters(), lr: 1e-3, weight_decay: 1e-3);
        var result = new JsonObject
        {
            ["spec"] = $"{spec} {precision}",
            ["seconds"] = Math.Round(Bench.Median(repeats, () => TrainStep(adapted, optimizer), warmUp), 4),
            ["peak_rss_mb"] = PeakRss.Megabytes(),
        };
        if (spec.Mode == FineTuneMode.Shallow && precision == TowerPrecision.Fp32)
        {
            // With the feature cache warm only the head runs: adapters, decoder, loss, backward, AdamW.
            result["cached_seconds"] = Math.Round(Bench.Median(repeats, () => CachedTrainStep(adapted, optimizer), warmUp), 4);
        }
        return result;
    }

    /// <summary>Runs <see cref="Run"/> in a child process of this program and returns its result.</summary>
    public static JsonObject InChildProcess(string key, string precision, bool quick, int threads)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            psi.ArgumentList.Add(typeof(TrainingMeasurement).Assembly.Location);
        foreach (var a in new[] { "--child", key, "--precision", precision, "--threads", threads.ToString() }) psi.ArgumentList.Add(a);
        if (quick) psi.ArgumentList.Add("--quick");
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"measurement {key} {precision} failed with exit code {p.ExitCode}");
        return (JsonObject)JsonNode.Parse(output.Trim().Split('\n').Last())!;
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

    private static double CachedTrainStep(AdaptedClipSeg model, optim.Optimizer optimizer)
    {
        using var scope = NewDisposeScope();
        var (pixels, ids, mask, target) = Bench.RandomBatch(Batch);
        using var vision = model.EncodeImage(pixels);
        using var text = model.EncodeText(ids, mask);
        return Update(model, optimizer, () => model.Head(vision, text), target);
    }

    private static double TrainStep(AdaptedClipSeg model, optim.Optimizer optimizer)
    {
        using var scope = NewDisposeScope();
        var (pixels, ids, mask, target) = Bench.RandomBatch(Batch);
        return Update(model, optimizer, () => model.Forward(pixels, ids, mask), target);
    }
}
