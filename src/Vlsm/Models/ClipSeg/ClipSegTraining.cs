using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Imaging;
using Vlsm.Tensors;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.ClipSeg;

/// <summary>CLIPSeg with adapters, decoder or full fine-tuning, and the frozen towers' feature caches.</summary>
internal sealed class ClipSegTraining : ITrainableModel
{
    private readonly AdaptedClipSeg model;
    private readonly ClipTokenizer tokenizer;
    private readonly FeatureCache? visionCache, textCache;
    private readonly CachedTowers towers;

    public ClipSegTraining(ModelRequest request, TrainingSetup setup)
        : this(ClipSegLoader.Load(request.Directory), request, setup)
    {
    }

    // The loaded model's config bounds the tokenizer's ids (no second read of config.json and the weights' header).
    private ClipSegTraining(ClipSegModel baseModel, ModelRequest request, TrainingSetup setup)
        : this(baseModel, () => ClipTokenizer.FromFolder(request.Directory).Within(baseModel.Config.Text.VocabSize, "text_config.vocab_size"), () => ImagePreprocessor.FromFolder(request.Directory).WithSide(request.ImageSize), request.Precision, setup)
    {
    }

    /// <summary>Trains <paramref name="baseModel"/> (owned from here on, disposed with this).</summary>
    public ClipSegTraining(ClipSegModel baseModel, Func<ClipTokenizer> tokenizer, Func<ImagePreprocessor> preprocessor, ComputePrecision precision, TrainingSetup setup)
    {
        try
        {
            this.tokenizer = tokenizer();
            Preprocessor = preprocessor();
            model = new AdaptedClipSeg(baseModel, setup.Spec);
        }
        catch
        {
            baseModel.Dispose();
            throw;
        }
        if (precision == ComputePrecision.Bf16) model.UseBf16Towers();
        var spec = setup.Spec;
        visionCache = setup.FeatureCache && !setup.Augment && CachedTowers.VisionIsFrozen(spec)
            ? new FeatureCache(setup.FeatureCacheBytes, Path.Combine(setup.CacheDirectory, "vision")) : null;
        textCache = setup.FeatureCache && CachedTowers.TextIsFrozen(spec)
            ? new FeatureCache(64L << 20, Path.Combine(setup.CacheDirectory, "text")) : null;
        towers = new CachedTowers(model, visionCache, textCache);
        TotalParameterCount = baseModel.parameters().Sum(p => p.numel());
    }

    public IModelFamily Family => ClipSegFamily.Instance;
    public string Description => model.Spec.ToString();
    public long TrainableParameterCount => model.TrainableParameterCount;
    public long TotalParameterCount { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <summary>The adapted model (tests and the bench look inside).</summary>
    internal AdaptedClipSeg Model => model;

    /// <summary>Tower outputs served from the feature caches.</summary>
    internal long CacheHits => (visionCache?.Hits ?? 0) + (textCache?.Hits ?? 0);

    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() => model.TrainableNamed();

    public void SetTraining(bool training) => model.train(training);

    public Tensor Forward(ModelBatch batch)
    {
        if (batch.Prompts is null) throw new ArgumentException("CLIPSeg reads a prompt per sample.", nameof(batch));
        var tokens = tokenizer.EncodeBatch(batch.Prompts);
        var ids = tokens.IdsTensor();
        var attention = tokens.MaskTensor();
        using var vision = towers.Vision(batch.Pixels, batch.SampleKeys);
        using var text = towers.Text(ids, attention, batch.Prompts, p =>
        {
            var one = tokenizer.EncodeBatch(new[] { p });
            return (one.IdsTensor(), one.MaskTensor());
        });
        return model.Head(vision, text);
    }

    public void Save(string path, IReadOnlyDictionary<string, string>? metadata) => AdapterFile.Save(path, model, metadata);

    public void LoadInto(string path) => AdapterFile.LoadInto(model, path);

    public void Dispose()
    {
        visionCache?.Dispose();
        textCache?.Dispose();
        model.Dispose();
    }
}
