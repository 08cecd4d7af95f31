using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Adapters;
using Vlsm.Data;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.Models.ClipSeg;
using Vlsm.Models.Cris;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Training;

/// <summary>A model as <see cref="Trainer"/> trains it: CLIPSeg with a fine-tuning mode, or CRIS.</summary>
public interface ITrainableSegmenter : IDisposable
{
    /// <summary>What trains, for the run's first line (e.g. "dense vl (adapter dim 64, …)", "CRIS full").</summary>
    string Description { get; }

    long TrainableParameterCount { get; }
    long TotalParameterCount { get; }
    ImagePreprocessor Preprocessor { get; }

    /// <summary>The tensors the optimizer updates, under the names checkpoints hold them.</summary>
    IEnumerable<(string Name, Parameter Parameter)> TrainableNamed();

    /// <summary>Training mode (dropout, batch statistics where the mode trains them) or evaluation mode.</summary>
    void SetTraining(bool training);

    /// <summary>Logits for a batch and the target at the logits' resolution (frozen parts from caches where the mode allows).</summary>
    Tensor Forward(Batch batch, out Tensor target);

    /// <summary>Writes the trained weights (best.safetensors, epoch checkpoints).</summary>
    void Save(string path, IReadOnlyDictionary<string, string>? metadata);

    /// <summary>Reads weights <see cref="Save"/> wrote (resuming a run).</summary>
    void LoadInto(string path);
}

/// <summary>Opens the model a training config names: a CRIS folder, else an HF CLIPSeg folder.</summary>
public static class TrainableSegmenters
{
    public static ITrainableSegmenter Open(TrainConfig config, RunFolder run) =>
        CrisLoader.IsCrisFolder(config.Model) ? new CrisTraining(config, run) : new ClipSegTraining(config, run);

    /// <summary>Batch tensors (B, 3, H, W) of images and (B, H, W) of masks.</summary>
    internal static (Tensor Pixels, Tensor Masks) Tensors(Batch batch) =>
        (tensor(batch.Images, new long[] { batch.Count, 3, batch.Height, batch.Width }), tensor(batch.Masks, new long[] { batch.Count, batch.Height, batch.Width }));

    /// <summary>The feature-cache key of each record of a batch.</summary>
    internal static List<string> RecordKeys(Batch batch) => batch.Records.Select(r => $"{r.Dataset}/{r.Split}/{r.Index}").ToList();

    /// <summary>The mask at the logits' size: itself, or resized (nearest) when the head's output is coarser than the input.</summary>
    internal static Tensor TargetFor(Tensor logits, Tensor masks) =>
        logits.shape[1] == masks.shape[1] && logits.shape[2] == masks.shape[2]
            ? masks
            : nn.functional.interpolate(masks.unsqueeze(1), new[] { logits.shape[1], logits.shape[2] }, mode: InterpolationMode.Nearest).squeeze(1);
}

/// <summary>CLIPSeg with adapters, decoder or full fine-tuning, and the frozen towers' feature caches.</summary>
internal sealed class ClipSegTraining : ITrainableSegmenter
{
    private readonly AdaptedClipSeg model;
    private readonly ClipTokenizer tokenizer;
    private readonly FeatureCache? visionCache, textCache;
    private readonly CachedTowers towers;

    public ClipSegTraining(TrainConfig config, RunFolder run)
    {
        if (config.CrisPadMask != TrainConfig.DefaultCrisPadMask)
            throw new VlsmException($"cris_pad_mask applies to CRIS models; {config.Model} is a CLIPSeg model.");
        var baseModel = ClipSegLoader.Load(config.Model);
        tokenizer = ClipTokenizer.FromFolder(config.Model);
        Preprocessor = ImagePreprocessor.FromFolder(config.Model);
        var spec = config.Spec();
        model = new AdaptedClipSeg(baseModel, spec);
        if (config.Precision == "bf16") model.UseBf16Towers();
        visionCache = config.FeatureCache && !config.Augment && CachedTowers.VisionIsFrozen(spec)
            ? new FeatureCache((long)config.FeatureCacheMemoryMb << 20, Path.Combine(run.CacheDir, "vision")) : null;
        textCache = config.FeatureCache && CachedTowers.TextIsFrozen(spec)
            ? new FeatureCache(64L << 20, Path.Combine(run.CacheDir, "text")) : null;
        towers = new CachedTowers(model, visionCache, textCache);
        TotalParameterCount = baseModel.parameters().Sum(p => p.numel());
    }

    public string Description => model.Spec.ToString();
    public long TrainableParameterCount => model.TrainableParameterCount;
    public long TotalParameterCount { get; }
    public ImagePreprocessor Preprocessor { get; }

    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() => model.TrainableNamed();

    public void SetTraining(bool training) => model.train(training);

    public Tensor Forward(Batch batch, out Tensor target) => Trainer.Forward(model, towers, tokenizer, batch, out target);

    public void Save(string path, IReadOnlyDictionary<string, string>? metadata) => AdapterFile.Save(path, model, metadata);

    public void LoadInto(string path) => AdapterFile.LoadInto(model, path);

    public void Dispose()
    {
        visionCache?.Dispose();
        textCache?.Dispose();
        model.Dispose();
    }
}

/// <summary>
/// CRIS trained in full mode (everything, BatchNorm in batch statistics) or decoder mode (neck,
/// decoder and projector; the backbone frozen in eval mode, its outputs cached per image and prompt).
/// </summary>
internal sealed class CrisTraining : ITrainableSegmenter
{
    private readonly CrisModel model;
    private readonly ClipTokenizer tokenizer;
    private readonly FineTuneMode mode;
    private readonly FeatureCache? visionCache, textCache;

    public CrisTraining(TrainConfig config, RunFolder run)
    {
        mode = CrisCheckpointFile.CheckMode(config.Spec().Mode);
        if (config.Precision != "fp32") throw new VlsmException($"precision {config.Precision} is for CLIPSeg's frozen towers; CRIS trains in fp32.");
        model = CrisLoader.Load(config.Model);
        model.PadMask = Segmenters.ParsePadMask(config.CrisPadMask)!.Value;
        tokenizer = CrisLoader.Tokenizer(config.Model);
        Preprocessor = CrisPredictor.PreprocessorFor(model.Config);
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = CrisCheckpointFile.IsTrained(mode, name);
        if (mode == FineTuneMode.Decoder && config.FeatureCache)
        {
            if (!config.Augment) visionCache = new FeatureCache((long)config.FeatureCacheMemoryMb << 20, Path.Combine(run.CacheDir, "vision"));
            textCache = new FeatureCache(64L << 20, Path.Combine(run.CacheDir, "text"));
        }
        TotalParameterCount = model.parameters().Sum(p => p.numel());
    }

    public string Description => $"CRIS {FineTuneSpec.ModeName(mode)}";

    /// <summary>Backbone outputs served from the feature caches (decoder mode).</summary>
    internal long CacheHits => (visionCache?.Hits ?? 0) + (textCache?.Hits ?? 0);
    public long TrainableParameterCount => CrisCheckpointFile.TrainableParameterCount(model, mode);
    public long TotalParameterCount { get; }
    public ImagePreprocessor Preprocessor { get; }

    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() =>
        model.named_parameters().Where(p => CrisCheckpointFile.IsTrained(mode, p.name)).Select(p => (p.name, p.parameter));

    public void SetTraining(bool training)
    {
        model.train(training);
        // A frozen backbone keeps its BatchNorm statistics (and so its cached outputs) fixed.
        if (mode == FineTuneMode.Decoder) model.Backbone.eval();
    }

    public Tensor Forward(Batch batch, out Tensor target)
    {
        var (pixels, masks) = TrainableSegmenters.Tensors(batch);
        var tokens = CrisPredictor.Tokenize(tokenizer, model.Config, batch.Prompts);
        var ids = tensor(tokens.InputIds, new long[] { tokens.BatchSize, tokens.Length });
        using var vision = Vision(pixels, TrainableSegmenters.RecordKeys(batch));
        using var text = Text(ids, batch.Prompts);
        var logits = model.Head(vision, text);
        target = TrainableSegmenters.TargetFor(logits, masks);
        return logits;
    }

    private CrisVisionFeatures Vision(Tensor pixels, IReadOnlyList<string> keys)
    {
        if (mode == FineTuneMode.Full) return model.EncodeImage(pixels);
        using var _ = no_grad();
        if (visionCache is null) return model.EncodeImage(pixels);
        var perSample = keys.Select((key, i) => visionCache.GetOrAdd(key, () =>
        {
            using var one = pixels.narrow(0, i, 1);
            using var f = model.EncodeImage(one);
            return new[] { f.C3.squeeze(0), f.C4.squeeze(0), f.C5.squeeze(0) };
        })).ToList();
        Tensor Stack(int part) => stack(perSample.Select(s => s[part]).ToArray());
        return new CrisVisionFeatures(Stack(0), Stack(1), Stack(2));
    }

    private CrisTextFeatures Text(Tensor ids, IReadOnlyList<string> prompts)
    {
        if (mode == FineTuneMode.Full) return model.EncodeText(ids);
        using var _ = no_grad();
        if (textCache is null) return model.EncodeText(ids);
        var perPrompt = prompts.Select(prompt => textCache.GetOrAdd(prompt, () =>
        {
            var one = CrisPredictor.Tokenize(tokenizer, model.Config, [prompt]);
            using var oneIds = tensor(one.InputIds, new long[] { 1, one.Length });
            var (words, state) = model.Backbone.EncodeText(oneIds);
            return new[] { words.squeeze(0), state.squeeze(0) };
        })).ToList();
        var wordsBatch = stack(perPrompt.Select(t => t[0]).ToArray());
        var stateBatch = stack(perPrompt.Select(t => t[1]).ToArray());
        return new CrisTextFeatures(wordsBatch, stateBatch, CrisModel.PaddingMask(ids, model.PadMask, wordsBatch.dtype));
    }

    public void Save(string path, IReadOnlyDictionary<string, string>? metadata) => CrisCheckpointFile.Save(path, model, mode, metadata);

    public void LoadInto(string path) => CrisCheckpointFile.Apply(model, path);

    public void Dispose()
    {
        visionCache?.Dispose();
        textCache?.Dispose();
        model.Dispose();
    }
}
