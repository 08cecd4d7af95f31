using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Imaging;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.San;

/// <summary>
/// SAN as the benchmark trains it: the parameters that receive a gradient under the chosen flow
/// (<see cref="SanTrainables"/>) train, everything else is fixed. CLIP's image features (when its
/// positional embedding does not train) and the text features are constants, so they are cached
/// per image and per prompt after first use.
/// </summary>
internal sealed class SanTraining : ITrainableModel
{
    private readonly SanModel model;
    private readonly ClipTokenizer tokenizer;
    private readonly SanGradients gradients;
    private readonly FeatureCache? clipCache, textCache;
    private readonly List<(string Name, Parameter Parameter)> trained;
    private readonly int[] clipIndices;

    public SanTraining(ModelRequest request, TrainingSetup setup)
    {
        SanFamily.Instance.CheckSpec(setup.Spec);
        gradients = SanFamily.Gradients(request);
        model = SanLoader.Load(request.Directory, request.ImageSize);
        model.OriginalGradients = gradients == SanGradients.Original;
        tokenizer = SanLoader.Tokenizer(request.Directory, model.Config);
        Preprocessor = SanPredictor.PreprocessorFor(model.Config);
        trained = SanWeightsFile.Trained(model, gradients).ToList();
        var names = trained.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = names.Contains(name);
        clipIndices = model.Config.NeededClipFeatures.Order().ToArray();
        bool clipFrozen = !trained.Any(p => SanTrainables.IsVisual(p.Name));
        if (setup.FeatureCache)
        {
            if (clipFrozen && !setup.Augment) clipCache = new FeatureCache(setup.FeatureCacheBytes, Path.Combine(setup.CacheDirectory, "clip"));
            textCache = new FeatureCache(64L << 20, Path.Combine(setup.CacheDirectory, "text"));
        }
        TotalParameterCount = model.parameters().Sum(p => p.numel());
        TrainableParameterCount = trained.Sum(p => p.Parameter.numel());
    }

    public IModelFamily Family => SanFamily.Instance;

    public string Description => $"SAN side adapter network ({SanTrainables.OptionKey} {SanTrainables.Name(gradients)})";

    public long TrainableParameterCount { get; }
    public long TotalParameterCount { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <summary>CLIP and text features served from the caches.</summary>
    internal long CacheHits => (clipCache?.Hits ?? 0) + (textCache?.Hits ?? 0);

    internal SanModel Model => model;

    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() => trained;

    public void SetTraining(bool training) => model.train(training);

    public Tensor Forward(ModelBatch batch)
    {
        if (batch.Prompts is null) throw new ArgumentException("SAN reads a prompt per sample.", nameof(batch));
        using var clip = Clip(batch.Pixels, batch.SampleKeys);
        using var proposals = model.Propose(batch.Pixels, clip);
        using var text = Text(batch.Prompts);
        return SanModel.Combine(proposals, text);
    }

    private SanClipFeatures Clip(Tensor pixels, IReadOnlyList<string> keys)
    {
        if (clipCache is null)
        {
            if (gradients == SanGradients.Original) return model.EncodeClip(pixels);
            using var _ = no_grad();
            return model.EncodeClip(pixels);
        }
        using var noGrad = no_grad();
        var perSample = keys.Select((key, i) => clipCache.GetOrAdd(key, () =>
        {
            using var one = pixels.narrow(0, i, 1);
            using var f = model.EncodeClip(one);
            return clipIndices.Select(k => f.Tokens[k].squeeze(0)).ToArray();
        })).ToList();
        var tokens = clipIndices.Select((k, j) => (k, stack(perSample.Select(s => s[j]).ToArray()))).ToDictionary(p => p.k, p => p.Item2);
        var (gridH, gridW) = model.ClipGrid(pixels.shape[2], pixels.shape[3]);
        return new SanClipFeatures(tokens, gridH, gridW);
    }

    private Tensor Text(IReadOnlyList<string> prompts)
    {
        using var _ = no_grad();
        if (textCache is null)
        {
            using var ids = SanLoader.InputIds(tokenizer, model.Config, prompts);
            return model.EncodeText(ids);
        }
        var perPrompt = prompts.Select(prompt => textCache.GetOrAdd(prompt, () =>
        {
            using var ids = SanLoader.InputIds(tokenizer, model.Config, [prompt]);
            using var features = model.EncodeText(ids);
            return [features.squeeze(0)];
        })).ToList();
        return stack(perPrompt.Select(t => t[0]).ToArray());
    }

    public void Save(string path, IReadOnlyDictionary<string, string>? metadata) => SanWeightsFile.Save(path, model, gradients, metadata);

    public void LoadInto(string path)
    {
        var flow = SanWeightsFile.Apply(model, path);
        if (flow != gradients)
            throw new VlsmException($"{path} was trained with {SanTrainables.OptionKey} {SanTrainables.Name(flow)}; this run trains with {SanTrainables.Name(gradients)}.");
    }

    public void Dispose()
    {
        clipCache?.Dispose();
        textCache?.Dispose();
        model.Dispose();
    }
}
