using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Models;
using Vlsm.Models.San;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Bench;

/// <summary>
/// SAN's figures (san-vit-b16 with random weights: CLIP ViT-B/16 at 320 px, the side ViT at
/// 640x640): the forward pass at batch 8, and one training step of the <c>san</c> preset (its
/// trainables, loss, AdamW and clipping) at batch 4, CLIP computed, then served by the feature cache.
/// </summary>
internal static class SanBench
{
    private const int InferBatch = 8, TrainBatch = 4;
    private const string Prompt = "one medium round polyp at the top left of the colonoscopy image";

    public static void Measure(JsonObject results, int repeats, bool warmUp)
    {
        var config = SanConfig.VitB16;
        int size = config.Side.ImgSize;
        string scratch = Directory.CreateTempSubdirectory("vlsm-bench-san-").FullName;
        try
        {
            string modelDir = Path.Combine(scratch, "model");
            SanConverter.Random(config, modelDir, seed: 0);
            Inference(modelDir, size, results, repeats, warmUp);
            TrainStep(modelDir, size, scratch, results, repeats, warmUp);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static void Inference(string modelDir, int size, JsonObject results, int repeats, bool warmUp)
    {
        using var model = SanLoader.Load(modelDir);
        model.eval();
        foreach (var p in model.parameters()) p.requires_grad = false;
        using var scope = NewDisposeScope();
        manual_seed(0);
        var pixels = randn(InferBatch, 3, size, size);
        var ids = SanLoader.InputIds(SanLoader.Tokenizer(modelDir, model.Config), model.Config, Enumerable.Repeat(Prompt, InferBatch).ToList());
        double s = Bench.Median(repeats, () => Bench.Time(() =>
        {
            using var _ = inference_mode();
            using var logits = model.Forward(pixels, ids);
            logits.sum().item<float>();
        }), warmUp);
        results[$"san_infer_b{InferBatch}_fp32_s"] = Math.Round(s, 4);
        Console.WriteLine($"forward san-vit-b16 {size}x{size} fp32 batch {InferBatch}: {s:0.000} s ({s / InferBatch:0.000} s/image)");
    }

    private static void TrainStep(string modelDir, int size, string scratch, JsonObject results, int repeats, bool warmUp)
    {
        var preset = SanFamily.Instance.Presets["san"];
        var spec = FineTuneSpec.Create(preset.Mode);
        var run = new RunFolder(Path.Combine(scratch, "run"));
        var section = new ModelSection(modelDir, SanFamily.Instance, spec, ComputePrecision.Fp32, new Dictionary<string, string>());
        var model = SanFamily.Instance.OpenTrainable(section.Request, new TrainingSetup { Spec = spec, CacheDirectory = run.CacheDir, FeatureCache = true });
        var plan = new TrainingPlan(
            section,
            new DataSection([], "train", "val", PromptChoice.Literal(""), MaskMode.Binary, 127, false, OnError.Fail),
            new OptimizationSection(TrainBatch, preset.LearningRate, 0.9, 0.999, 1e-8, preset.WeightDecay!.Value, preset.GradClip!.Value),
            new ScheduleSection(1, 1, true, preset.PlateauFactor!.Value, preset.PlateauPatience!.Value, 1e-4, 20, 1e-4),
            SegmentationLosses.Create(preset.Loss!), 0, new CacheSection(true, 2048L << 20));
        using var session = new TrainingSession(plan, model, run, new TrainingMeasurement.Silent());
        var (seconds, cached) = Bench.TrainSteps(session, TrainBatch, size, Prompt, repeats, warmUp);
        string name = $"san_train_b{TrainBatch}_fp32";
        results[$"{name}_s"] = Math.Round(seconds, 4);
        results[$"{name}_cached_s"] = Math.Round(cached, 4);
        Console.WriteLine($"train step san-vit-b16 {size}x{size} preset san ({model.TrainableParameterCount:N0} trainable) batch {TrainBatch}: {seconds:0.000} s; "
            + $"with CLIP's features cached {cached:0.000} s");
    }
}
