using System.Diagnostics;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.Tensors;
using Vlsm.Text;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Bench;

/// <summary>
/// Where a dense-adapter training step's time goes, per encoder layer, forward and backward:
/// the step of <see cref="TrainingMeasurement"/> (dense VL, batch 4, 352x352, random weights) built
/// from the model's public seams, with timing marks at the adapters' seams. A mark is the
/// identity in the forward pass; its backward records when the gradient reached it, so the
/// time between two marks in the backward pass is the backward of what lies between them.
/// </summary>
internal static class StepProfile
{
    public const string ChildKey = "profile_dense_vl_b4";
    public const string CachedShallowKey = "profile_shallow_vlc_b4_cached";

    private static readonly Stopwatch Clock = new();
    private static readonly List<(string Label, double Seconds)> BackwardMarks = [];

    private sealed class Mark : autograd.SingleTensorFunction<Mark>
    {
        public override string Name => "VlsmBenchMark";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("label", vars[1]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            BackwardMarks.Add(((string)ctx.get_data("label"), Clock.Elapsed.TotalSeconds));
            return [grad_output.alias(), null!];
        }
    }

    /// <summary>
    /// A shallow VLC fp32 step with the feature cache warm (the cached step of <see cref="TrainingMeasurement"/>),
    /// built from the same public seams the library's step uses: the cache read (the batch's tower outputs
    /// looked up and stacked), the V adapters, the conditional embedding (C and L adapters), the decoder,
    /// the loss, the backward pass split at the V adapters' outputs (decoder, then adapters), clipping
    /// and the optimizer, each the median over <paramref name="steps"/> steps after a warm-up.
    /// </summary>
    public static JsonObject RunCachedShallow(int steps)
    {
        string scratch = Directory.CreateTempSubdirectory("vlsm-bench-profile-").FullName;
        try
        {
            ClipTokenizer.WriteBuiltInVocabulary(scratch);
            var tokenizer = ClipTokenizer.FromFolder(scratch);
            var spec = FineTuneSpec.Create(FineTuneMode.Shallow, "vlc");
            using var model = new AdaptedClipSeg(new ClipSegModel(ClipSegConfig.Rd64Refined), spec);
            model.train();
            var shallow = (ShallowAdapterSet)model.Adapters!;
            using var visionCache = new FeatureCache(2048L << 20, Path.Combine(scratch, "vision"));
            using var textCache = new FeatureCache(64L << 20, Path.Combine(scratch, "text"));
            var towers = new CachedTowers(model, visionCache, textCache);
            using var optimizer = new AdamW(model.TrainableNamed(), 1e-3, weightDecay: 1e-3);
            var (pixels, _, _, target) = Bench.RandomBatch(TrainingMeasurement.Batch);
            var prompts = Enumerable.Repeat(TrainingMeasurement.Prompt, TrainingMeasurement.Batch).ToList();
            var keys = Enumerable.Range(0, TrainingMeasurement.Batch).Select(i => $"bench/train/{i}").ToList();
            (Tensor, Tensor) Tokens(IReadOnlyList<string> texts)
            {
                var t = tokenizer.EncodeBatch(texts);
                return (t.IdsTensor(), t.MaskTensor());
            }
            var loss = new DiceBceLoss(BceInput.Reference);
            var parts = new PartTimes();
            // Step -1 fills the caches (the towers run); the warm-up steps after it are not counted either.
            for (int step = -3; step < steps; step++)
            {
                var scope = NewDisposeScope();
                BackwardMarks.Clear();
                Clock.Restart();
                double last = 0;
                void Lap(string part) { double now = Clock.Elapsed.TotalSeconds; if (step >= 0) parts.Add(part, now - last); last = now; }
                var (ids, mask) = Tokens(prompts);
                var vision = towers.Vision(pixels, keys);
                var text = towers.Text(ids, mask, prompts, p => Tokens([p]));
                Lap("cache_read");
                var adapted = vision.Activations.Select((a, i) => Mark.apply(shallow.VisionExtract![i].forward(a), "adapters")).ToList();
                Lap("v_adapters_forward");
                var conditional = model.ConditionalEmbedding(text);
                Lap("cl_adapters_forward");
                var logits = model.Base.Decoder.Forward(adapted, conditional, vision.GridHeight, vision.GridWidth);
                Lap("decoder_forward");
                var l = loss.Compute(logits, target);
                l.item<float>();
                Lap("loss");
                optimizer.ZeroGrad();
                double backwardStart = Clock.Elapsed.TotalSeconds;
                l.backward();
                if (step >= 0)
                {
                    // The first adapter mark's time ends the decoder's backward; the rest is the adapters'.
                    double reached = BackwardMarks.Min(m => m.Seconds);
                    parts.Add("decoder_backward", reached - backwardStart);
                    parts.Add("adapters_backward", Clock.Elapsed.TotalSeconds - reached);
                }
                last = Clock.Elapsed.TotalSeconds;
                nn.utils.clip_grad_norm_(optimizer.Parameters, 0.5);
                Lap("clip");
                optimizer.StepOnce();
                Lap("optimizer");
                scope.Dispose();
                Lap("release");
                if (step >= 0) parts.Add("step", last);
            }
            return parts.Medians(new JsonObject { ["spec"] = $"{spec} fp32, feature cache warm", ["steps"] = steps, ["unit"] = "seconds" });
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    public static JsonObject Run(string precisionName, int steps)
    {
        var spec = FineTuneSpec.Create(FineTuneMode.Dense, "vl");
        using var model = new AdaptedClipSeg(new ClipSegModel(ClipSegConfig.Rd64Refined), spec);
        if (precisionName == TowerPrecision.Bf16) model.UseBf16Towers();
        model.train();
        var dense = (DenseAdapterSet)model.Adapters!;
        long setupPeak = PeakRss.Megabytes();
        using var optimizer = new AdamW(model.TrainableNamed(), 1e-3, weightDecay: 1e-3);
        var (pixels, ids, mask, target) = Bench.RandomBatch(TrainingMeasurement.Batch);
        var loss = new DiceBceLoss(BceInput.Reference);
        var forwardMarks = new List<(string Label, double Seconds)>();

        Func<int, EncoderLayerHooks> Marked(string tower, Func<int, EncoderLayerHooks> hooks) => i =>
        {
            var h = hooks(i);
            Tensor Wrap(Tensor x, Func<Tensor, Tensor>? adapter, string part)
            {
                forwardMarks.Add(($"{tower}{i} {part}", Clock.Elapsed.TotalSeconds));
                using var marked = Mark.apply(x, $"{tower}{i} {part}");
                return adapter is null ? marked.alias() : adapter(marked);
            }
            return new EncoderLayerHooks(x => Wrap(x, h.AfterAttention, "attention"), x => Wrap(x, h.AfterMlp, "mlp"));
        };

        var parts = new PartTimes();
        for (int step = -1; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            forwardMarks.Clear();
            BackwardMarks.Clear();
            Clock.Restart();
            var vision = model.Base.EncodeImage(pixels, Marked("v", dense.VisionHooks!));
            forwardMarks.Add(("vision end", Clock.Elapsed.TotalSeconds));
            var text = model.Base.EncodeText(ids, mask, Marked("t", dense.LanguageHooks!));
            forwardMarks.Add(("text end", Clock.Elapsed.TotalSeconds));
            var logits = model.Head(vision, new TextFeatures(text, null));
            forwardMarks.Add(("head end", Clock.Elapsed.TotalSeconds));
            var l = loss.Compute(logits, target);
            l.item<float>();
            double forwardEnd = Clock.Elapsed.TotalSeconds;
            optimizer.ZeroGrad();
            l.backward();
            double backwardEnd = Clock.Elapsed.TotalSeconds;
            nn.utils.clip_grad_norm_(optimizer.Parameters, 0.5);
            optimizer.StepOnce();
            double stepEnd = Clock.Elapsed.TotalSeconds;
            if (step < 0) continue;
            parts.Add("step", stepEnd);
            parts.Add("forward", forwardEnd);
            parts.Add("backward", backwardEnd - forwardEnd);
            parts.Add("clip+optimizer", stepEnd - backwardEnd);
            double previous = 0;
            foreach (var (label, s) in forwardMarks) { parts.Add($"fwd {label}", s - previous); previous = s; }
            previous = forwardEnd;
            foreach (var (label, s) in BackwardMarks) { parts.Add($"bwd {label}", s - previous); previous = s; }
            parts.Add("bwd rest", backwardEnd - previous);
        }
        return parts.Medians(new JsonObject { ["precision"] = precisionName, ["steps"] = steps, ["setup_peak_rss_mb"] = setupPeak, ["peak_rss_mb"] = PeakRss.Megabytes() });
    }
}
