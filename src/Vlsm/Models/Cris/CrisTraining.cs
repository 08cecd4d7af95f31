using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Imaging;
using Vlsm.Tensors;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.Cris;

internal sealed class CrisTraining : ITrainableModel
{
    private readonly CrisModel model;
    private readonly ClipTokenizer tokenizer;
    private readonly FineTuneMode mode;
    private readonly FeatureCache? visionCache, textCache;

    public CrisTraining(ModelRequest request, TrainingSetup setup)
    {
        mode = CrisCheckpointFile.CheckMode(setup.Spec.Mode);
        var padMask = CrisFamily.PadMask(request);
        model = CrisLoader.Load(request.Directory, request.ImageSize);
        model.PadMask = padMask;
        tokenizer = CrisLoader.Tokenizer(request.Directory, model.Config);
        Preprocessor = CrisPredictor.PreprocessorFor(model.Config);
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = CrisCheckpointFile.IsTrained(mode, name);
        if (mode == FineTuneMode.Decoder && setup.FeatureCache)
        {
            if (!setup.Augment) visionCache = new FeatureCache(setup.FeatureCacheBytes, Path.Combine(setup.CacheDirectory, "vision"));
            textCache = new FeatureCache(64L << 20, Path.Combine(setup.CacheDirectory, "text"));
        }
        TotalParameterCount = model.parameters().Sum(p => p.numel());
    }

    public IModelFamily Family => CrisFamily.Instance;

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

    public Tensor Forward(ModelBatch batch)
    {
        if (batch.Prompts is null) throw new ArgumentException("CRIS reads a prompt per sample.", nameof(batch));
        var tokens = CrisPredictor.Tokenize(tokenizer, model.Config, batch.Prompts);
        var ids = tokens.IdsTensor();
        using var vision = Vision(batch.Pixels, batch.SampleKeys);
        using var text = Text(ids, batch.Prompts);
        return model.Head(vision, text);
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
            using var oneIds = one.IdsTensor();
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
