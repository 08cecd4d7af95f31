using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Imaging;
using Vlsm.Models.ClipSeg;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>
/// BiomedCLIPSeg as training sees it: decoder, adapters or full, frozen towers behind feature caches
/// (vision per image, the conditional embedding per prompt) where nothing inside them trains. The
/// towers run without dropout in every mode (see the README's BiomedCLIPSeg section).
/// </summary>
internal sealed class BiomedClipSegTraining : ITrainableModel
{
    private readonly AdaptedBiomedClipSeg model;
    private readonly WordPieceTokenizer tokenizer;
    private readonly FeatureCache? visionCache, textCache;

    public BiomedClipSegTraining(ModelRequest request, TrainingSetup setup)
        : this(BiomedClipSegLoader.Load(request.Directory), request, setup)
    {
    }

    private BiomedClipSegTraining(BiomedClipSegModel baseModel, ModelRequest request, TrainingSetup setup)
        : this(baseModel, () => BiomedClipSegLoader.Tokenizer(request.Directory, baseModel.Config), request, setup)
    {
    }

    /// <summary>Trains <paramref name="baseModel"/> (owned from here on).</summary>
    public BiomedClipSegTraining(BiomedClipSegModel baseModel, Func<WordPieceTokenizer> tokenizer, ModelRequest request, TrainingSetup setup)
    {
        try
        {
            BiomedClipSegFamily.ApplyOptions(baseModel, request);
            this.tokenizer = tokenizer();
            model = new AdaptedBiomedClipSeg(baseModel, setup.Spec);
        }
        catch
        {
            baseModel.Dispose();
            throw;
        }
        if (request.Precision == ComputePrecision.Bf16) model.UseBf16Towers();
        Preprocessor = BiomedClipSegLoader.Preprocessor(baseModel.Config);
        if (setup.FeatureCache && !setup.Augment && !model.VisionTrains)
            visionCache = new FeatureCache(setup.FeatureCacheBytes, Path.Combine(setup.CacheDirectory, "vision"));
        if (setup.FeatureCache && !model.TextTrains)
            textCache = new FeatureCache(64L << 20, Path.Combine(setup.CacheDirectory, "text"));
        TotalParameterCount = baseModel.parameters().Sum(p => p.numel());
    }

    public IModelFamily Family => BiomedClipSegFamily.Instance;
    public string Description => $"BiomedCLIPSeg {model.Spec}";
    public long TrainableParameterCount => model.TrainableParameterCount;
    public long TotalParameterCount { get; }
    public ImagePreprocessor Preprocessor { get; }

    internal AdaptedBiomedClipSeg Model => model;

    /// <summary>Tower outputs served from the feature caches.</summary>
    internal long CacheHits => (visionCache?.Hits ?? 0) + (textCache?.Hits ?? 0);

    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() => model.TrainableNamed();

    public void SetTraining(bool training) => model.train(training);

    public Tensor Forward(ModelBatch batch)
    {
        if (batch.Prompts is null) throw new ArgumentException("BiomedCLIPSeg reads a prompt per sample.", nameof(batch));
        using var vision = Vision(batch.Pixels, batch.SampleKeys);
        using var conditional = Text(batch.Prompts);
        return model.Head(vision, conditional);
    }

    private VisionFeatures Vision(Tensor pixels, IReadOnlyList<string> keys)
    {
        if (visionCache is null) return model.EncodeImage(pixels);
        var perSample = keys.Select((key, i) => visionCache.GetOrAdd(key, () =>
        {
            using var one = pixels.narrow(0, i, 1);
            using var f = model.EncodeImage(one);
            return f.Activations.Select(a => a.squeeze(0)).ToArray();
        })).ToList();
        var stacked = Enumerable.Range(0, perSample[0].Length).Select(l => stack(perSample.Select(s => s[l]).ToArray())).ToList();
        int grid = model.Config.Vision.Grid;
        return new VisionFeatures(stacked, grid, grid);
    }

    private Tensor Text(IReadOnlyList<string> prompts)
    {
        if (textCache is null)
        {
            var (ids, mask) = BiomedClipSegPredictor.Tokenize(tokenizer, model.Config, prompts);
            using (ids)
            using (mask)
                return model.EncodeText(ids, mask);
        }
        var perPrompt = prompts.Select(prompt => textCache.GetOrAdd(prompt, () =>
        {
            var (ids, mask) = BiomedClipSegPredictor.Tokenize(tokenizer, model.Config, [prompt]);
            using (ids)
            using (mask)
            using (var e = model.EncodeText(ids, mask))
                return [e.squeeze(0)];
        })).ToList();
        return stack(perPrompt.Select(t => t[0]).ToArray());
    }

    public void Save(string path, IReadOnlyDictionary<string, string>? metadata) => BiomedClipSegWeightsFile.Save(path, model, metadata);

    public void LoadInto(string path) => BiomedClipSegWeightsFile.LoadInto(model, path);

    public void Dispose()
    {
        visionCache?.Dispose();
        textCache?.Dispose();
        model.Dispose();
    }
}
