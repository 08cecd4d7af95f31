using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Models;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Tensors;
using Vlsm.Text;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Bench;

/// <summary>
/// BiomedCLIPSeg's figures (random-weight real architecture, 224x224): forward passes at batch 8
/// with fp32 and bf16 towers, and one decoder-mode training step of medvlsm's recipe (DiceCE,
/// AdamW, clipping) at batch 4, towers computed, then served by the feature cache.
/// </summary>
internal static class BiomedClipSegBench
{
    private const int Size = 224, TrainBatch = 4;
    private const string Prompt = "one medium round polyp at the top left of the colonoscopy image";

    public static void Measure(JsonObject results, int repeats, bool warmUp)
    {
        var config = BiomedClipSegConfig.Real;
        string scratch = Directory.CreateTempSubdirectory("vlsm-bench-biomed-").FullName;
        try
        {
            WordPieceTokenizer.WriteBuiltInVocabulary(scratch);
            var tokenizer = WordPieceTokenizer.FromVocabFile(Path.Combine(scratch, WordPieceTokenizer.VocabFileName));
            Inference(config, tokenizer, results, repeats, warmUp);
            // bf16 is left out where libtorch's bf16 products are slow (the main document says why).
            foreach (var precision in Vlsm.Platform.Bf16Speed.IsSlow ? [ComputePrecision.Fp32] : new[] { ComputePrecision.Fp32, ComputePrecision.Bf16 })
                TrainStep(config, tokenizer, precision, scratch, results, repeats, warmUp);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static void Inference(BiomedClipSegConfig config, WordPieceTokenizer tokenizer, JsonObject results, int repeats, bool warmUp)
    {
        using var model = new BiomedClipSegModel(config);
        model.eval();
        foreach (var p in model.parameters()) p.requires_grad = false;
        using var scope = NewDisposeScope();
        manual_seed(0);
        var pixels = randn(8, 3, Size, Size);
        var (ids, mask) = BiomedClipSegPredictor.Tokenize(tokenizer, config, Enumerable.Repeat(Prompt, 8).ToList());
        var padded = tokenizer.EncodeBatch(Enumerable.Repeat(Prompt, 8).ToList(), config.ContextLength, padTo: config.ContextLength);
        var ids256 = padded.IdsTensor();
        var mask256 = padded.MaskTensor();
        var logits = new Dictionary<string, Tensor>();

        void Run(string name, Tensor i, Tensor m)
        {
            double s = Bench.Median(repeats, () => Bench.Time(() =>
            {
                using var _ = inference_mode();
                var output = model.Forward(pixels, i, m);
                output.sum().item<float>();
                if (logits.Remove(name, out var previous)) previous.Dispose();
                logits[name] = output;
            }), warmUp);
            results[$"biomedclipseg_{name}_s"] = Math.Round(s, 4);
            Console.WriteLine($"forward biomedclipseg 224x224 {name}: {s:0.000} s ({s / 8:0.000} s/image)");
        }

        Run("infer_b8_fp32", ids, mask);
        Run("infer_b8_fp32_context256", ids256, mask256);
        if (Vlsm.Platform.Bf16Speed.IsSlow) return;
        model.SetTowerDtype(ScalarType.BFloat16);
        Run("infer_b8_bf16", ids, mask);
        double diff = logits["infer_b8_fp32"].sub(logits["infer_b8_bf16"]).abs().max().item<float>();
        results["biomedclipseg_bf16_vs_fp32_logits_max_abs_diff"] = Math.Round(diff, 6);
        Console.WriteLine($"  bf16 vs fp32 logits: max |diff| {diff:0.000000} (random weights, fp32 logits up to {logits["infer_b8_fp32"].abs().max().item<float>():0.000})");
    }

    private static void TrainStep(BiomedClipSegConfig config, WordPieceTokenizer tokenizer, ComputePrecision precision, string scratch, JsonObject results, int repeats, bool warmUp)
    {
        var spec = FineTuneSpec.Create(FineTuneMode.Decoder);
        var run = new RunFolder(Path.Combine(scratch, "run-" + ComputePrecisions.Name(precision)));
        var request = new ModelRequest { Directory = scratch, Precision = precision };
        var model = BiomedClipSegFamily.Instance.Trainable(new BiomedClipSegModel(config), tokenizer, request,
            new TrainingSetup { Spec = spec, CacheDirectory = run.CacheDir, FeatureCache = true });
        var plan = new TrainingPlan(
            new ModelSection("random biomedclipseg", BiomedClipSegFamily.Instance, spec, precision, new Dictionary<string, string>()),
            new DataSection([], "train", "val", PromptChoice.Literal(""), MaskMode.Binary, 127, false, OnError.Fail),
            new OptimizationSection(TrainBatch, 2e-4, 0.9, 0.999, 1e-8, 1e-3, 0.5),
            new ScheduleSection(1, 1, true, 0.1, 5, 1e-4, 20, 1e-4),
            new DiceCeLoss(), 0, new CacheSection(true, 2048L << 20));
        using var session = new TrainingSession(plan, model, run, new TrainingMeasurement.Silent());
        string name = $"biomedclipseg_train_decoder_b{TrainBatch}_{ComputePrecisions.Name(precision)}";
        var (seconds, cached) = Bench.TrainSteps(session, TrainBatch, Size, Prompt, repeats, warmUp);
        results[$"{name}_s"] = Math.Round(seconds, 4);
        results[$"{name}_cached_s"] = Math.Round(cached, 4);
        Console.WriteLine($"train step biomedclipseg decoder {ComputePrecisions.Name(precision)} batch {TrainBatch}: {seconds:0.000} s; with the feature cache warm {cached:0.000} s");
    }
}
