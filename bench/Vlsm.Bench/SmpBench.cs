using System.Text.Json.Nodes;
using Vlsm.Models.Smp;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Bench;

/// <summary>
/// The image-only baseline's figures: UNet with a ResNet-50 encoder (the real architecture,
/// <c>unet-resnet50</c>, smp's random initial weights) at 256x256, medvlsm's input size. Forward
/// passes at batch 8 with the fp32 encoder and the bf16 one, and one full-mode training step of
/// medvlsm's recipe (the <c>unet</c> preset: TunedDiceLoss, Adam 1e-3, clipping 0.5) at batch 16.
/// </summary>
internal static class SmpBench
{
    private const int Size = 256, InferBatch = 8, TrainBatch = 16;
    private const string Arch = "unet-resnet50";

    public static void Measure(JsonObject results, int repeats, bool warmUp)
    {
        var config = SmpFamily.Unet.BuiltIn(Arch)!;
        string scratch = Directory.CreateTempSubdirectory("vlsm-bench-smp-").FullName;
        try
        {
            string folder = Path.Combine(scratch, "model");
            SmpWeights.Initialize(config, folder, encoderWeights: null, seed: 0);
            Inference(folder, results, repeats, warmUp);
            TrainStep(folder, scratch, results, repeats, warmUp);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static void Inference(string folder, JsonObject results, int repeats, bool warmUp)
    {
        using var model = SmpLoader.Load(folder);
        foreach (var p in model.parameters()) p.requires_grad = false;
        using var scope = NewDisposeScope();
        manual_seed(0);
        var pixels = randn(InferBatch, 3, Size, Size);
        var logits = new Dictionary<string, Tensor>();

        void Run(string precision)
        {
            double s = Bench.Median(repeats, () => Bench.Time(() =>
            {
                using var _ = inference_mode();
                var output = model.Forward(pixels);
                output.sum().item<float>();
                if (logits.Remove(precision, out var previous)) previous.Dispose();
                logits[precision] = output;
            }), warmUp);
            results[$"unet_r50_infer_b{InferBatch}_{precision}_s"] = Math.Round(s, 4);
            Console.WriteLine($"forward {Arch} {Size}x{Size} {precision} encoder batch {InferBatch}: {s:0.000} s ({s / InferBatch:0.000} s/image)");
        }

        Run("fp32");
        if (Vlsm.Platform.Bf16Speed.IsSlow) return; // bf16 is left out where libtorch's bf16 products are slow (the main document says why)
        model.UseBf16Encoder();
        Run("bf16");
        double diff = logits["fp32"].sub(logits["bf16"]).abs().max().item<float>();
        double agreement = logits["fp32"].gt(0).eq(logits["bf16"].gt(0)).to(ScalarType.Float64).mean().item<double>();
        results["unet_r50_bf16_vs_fp32_logits_max_abs_diff"] = Math.Round(diff, 6);
        results["unet_r50_bf16_vs_fp32_mask_agreement"] = Math.Round(agreement, 6);
        Console.WriteLine($"  bf16 vs fp32 logits: max |diff| {diff:0.000000}, mask pixels equal {agreement:P3} (random weights, fp32 logits up to {logits["fp32"].abs().max().item<float>():0.000})");
    }

    private static void TrainStep(string folder, string scratch, JsonObject results, int repeats, bool warmUp)
    {
        var config = new TrainConfig();
        config.ApplyPreset(SmpFamily.Unet.ModelType);
        config.Model = folder;
        config.Data = [scratch]; // the plan names a dataset; the steps are given their batches
        config.BatchSize = TrainBatch;
        var plan = TrainingPlan.Resolve(config);
        var run = new RunFolder(Path.Combine(scratch, "run"));
        using var session = new TrainingSession(plan, TrainingSession.Open(plan, run), run, new TrainingMeasurement.Silent());
        session.Model.SetTraining(true);
        int id = 0;
        double seconds = Bench.Median(repeats, () =>
        {
            var batch = Bench.RandomTrainBatch(id++, TrainBatch, Size, "");
            return Bench.Time(() => session.TrainStep(batch));
        }, warmUp);
        results[$"unet_r50_train_full_b{TrainBatch}_s"] = Math.Round(seconds, 4);
        Console.WriteLine($"train step {Arch} full {Size}x{Size} batch {TrainBatch} ({config.Preset} preset: {config.Loss}, lr {config.Lr:g}, clip {config.GradClip}): "
            + $"{seconds:0.000} s ({TrainBatch / seconds:0.0} images/s)");
    }
}
