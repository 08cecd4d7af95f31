using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Imaging;
using static TorchSharp.torch;

namespace Vlsm.Models.Smp;

/// <summary>
/// An smp model as training sees it: every parameter in full mode (medvlsm's recipe), or decoder
/// and head over a frozen encoder whose features are cached per image. BatchNorm trains with batch
/// statistics wherever the mode trains; a frozen encoder keeps its running statistics.
/// </summary>
internal sealed class SmpTraining : ITrainableModel
{
    private readonly SmpModel model;
    private readonly FineTuneMode mode;
    private readonly FeatureCache? encoderCache;

    public SmpTraining(SmpFamily family, ModelRequest request, TrainingSetup setup)
    {
        Family = family;
        mode = SmpCheckpointFile.CheckMode(setup.Spec.Mode, family.Name);
        if (request.Precision == ComputePrecision.Bf16 && mode == FineTuneMode.Full)
            throw new VlsmException($"bf16 runs a frozen encoder; {family.Name} full mode trains the encoder, so use --precision fp32 (or --mode decoder).");
        var input = family.Input(request);
        model = SmpLoader.Load(request.Directory, request.ImageSize);
        try
        {
            Preprocessor = SmpPredictor.PreprocessorFor(model.Config, input);
            if (request.Precision == ComputePrecision.Bf16) model.UseBf16Encoder();
        }
        catch
        {
            model.Dispose();
            throw;
        }
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = SmpCheckpointFile.IsTrained(mode, name);
        if (mode == FineTuneMode.Decoder && setup.FeatureCache && !setup.Augment)
            encoderCache = new FeatureCache(setup.FeatureCacheBytes, Path.Combine(setup.CacheDirectory, "encoder"));
        TotalParameterCount = model.parameters().Sum(p => p.numel());
    }

    public IModelFamily Family { get; }

    public string Description => $"{Family.Name} {model.Config.Encoder.Describe()} {FineTuneSpec.ModeName(mode)}";

    public long TrainableParameterCount => SmpCheckpointFile.TrainableParameterCount(model, mode);
    public long TotalParameterCount { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <summary>Encoder outputs served from the feature cache (decoder mode).</summary>
    internal long CacheHits => encoderCache?.Hits ?? 0;

    internal SmpModel Model => model;

    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() =>
        model.named_parameters().Where(p => SmpCheckpointFile.IsTrained(mode, p.name)).Select(p => (p.name, p.parameter));

    public void SetTraining(bool training)
    {
        model.train(training);
        // A frozen encoder keeps its BatchNorm statistics, and so its cached outputs, fixed.
        if (mode == FineTuneMode.Decoder) model.Encoder.eval();
    }

    public Tensor Forward(ModelBatch batch)
    {
        if (batch.Prompts is not null) throw new ArgumentException($"{Family.Name} models read no text; the batch must carry no prompts.", nameof(batch));
        using var scope = NewDisposeScope();
        var features = Encode(batch.Pixels, batch.SampleKeys);
        using var logits = model.Decode(features);
        return logits.select(1, model.ForegroundChannel).contiguous().MoveToOuterDisposeScope();
    }

    private Tensor[] Encode(Tensor pixels, IReadOnlyList<string> keys)
    {
        if (mode == FineTuneMode.Full) return model.Encode(pixels);
        using var _ = no_grad();
        if (encoderCache is null) return model.Encode(pixels);
        var perSample = keys.Select((key, i) => encoderCache.GetOrAdd(key, () =>
        {
            using var one = pixels.narrow(0, i, 1);
            var f = model.Encode(one);
            f[0].Dispose();
            return f.Skip(1).Select(t => t.squeeze(0)).ToArray();
        })).ToList();
        return [pixels.alias(), .. Enumerable.Range(0, 5).Select(k => stack(perSample.Select(s => s[k]).ToArray()))];
    }

    public void Save(string path, IReadOnlyDictionary<string, string>? metadata) => SmpCheckpointFile.Save(path, model, mode, metadata);

    public void LoadInto(string path) => SmpCheckpointFile.Apply(model, path, Family.Name);

    public void Dispose()
    {
        encoderCache?.Dispose();
        model.Dispose();
    }
}
