using System.Globalization;
using TorchSharp;
using Vlsm.IO;

namespace Vlsm.Models.Cris;

/// <summary>
/// Trained CRIS weights as safetensors, under the reference's state-dict names: in full mode the
/// whole state dict, in decoder mode the <c>neck.*</c>, <c>decoder.*</c> and <c>proj.*</c> entries.
/// BatchNorm running statistics are included, since training changes them. Metadata records the
/// mode, the trainable parameter count and the architecture's fingerprint.
/// </summary>
public static class CrisCheckpointFile
{
    public const string Format = "vlsm-cris";

    /// <summary>
    /// Whether <paramref name="key"/> is a tensor that <paramref name="mode"/> trains (parameters and
    /// BatchNorm buffers): everything but CLIP's unused <c>logit_scale</c> in full mode, neck, decoder
    /// and projector in decoder mode.
    /// </summary>
    public static bool IsTrained(FineTuneMode mode, string key) => mode == FineTuneMode.Full
        ? key != CrisModel.UnusedParameter
        : CrisModel.HeadPrefixes.Any(p => key.StartsWith(p, StringComparison.Ordinal));

    /// <summary>The modes CRIS trains in; others are an error that says so.</summary>
    public static FineTuneMode CheckMode(FineTuneMode mode) => mode is FineTuneMode.Full or FineTuneMode.Decoder
        ? mode
        : throw new VlsmException($"CRIS trains in full or decoder mode (the benchmarks train all of it: --mode full or --preset cris); {FineTuneSpec.ModeName(mode)} adapters are CLIPSeg's.");

    public static long TrainableParameterCount(CrisModel model, FineTuneMode mode) =>
        model.named_parameters().Where(p => IsTrained(mode, p.name)).Sum(p => p.parameter.numel());

    public static void Save(string path, CrisModel model, FineTuneMode mode, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        long trainable = TrainableParameterCount(model, mode);
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["kind"] = FineTuneSpec.ModeName(mode),
            ["trainable_parameters"] = trainable.ToString(CultureInfo.InvariantCulture),
            ["base"] = model.Config.Fingerprint,
        };
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) metadata[k] = v;
        var tensors = model.state_dict().Where(kv => IsTrained(mode, kv.Key)).Select(kv => new KeyValuePair<string, torch.Tensor>(kv.Key, kv.Value));
        SafetensorsWriter.Save(path, tensors, metadata);
    }

    /// <summary>Copies a checkpoint's tensors into <paramref name="model"/>; returns the mode it was trained in.</summary>
    /// <exception cref="VlsmException">The file was trained for another architecture, or lacks or adds tensors (named).</exception>
    public static FineTuneMode Apply(CrisModel model, string path)
    {
        using var file = SafetensorsFile.Open(path);
        if (file.Metadata.TryGetValue("base", out var fingerprint) && fingerprint != model.Config.Fingerprint)
            throw new VlsmException($"{path}: trained for a CRIS of another shape ({fingerprint}); this model is {model.Config.Fingerprint}.");
        FineTuneMode mode;
        if (file.Metadata.TryGetValue("kind", out var kind))
        {
            try
            {
                mode = CheckMode(FineTuneSpec.ParseMode(kind));
            }
            catch (VlsmException e)
            {
                throw new VlsmException($"{path}: metadata \"kind\": {e.Message}", e);
            }
        }
        else if (file.Names.Count > 0 && file.Names.All(n => IsTrained(FineTuneMode.Decoder, n)))
        {
            mode = FineTuneMode.Decoder;
        }
        else if (file.Names.Any(n => n.StartsWith("backbone.", StringComparison.Ordinal)))
        {
            mode = FineTuneMode.Full;
        }
        else
        {
            throw new VlsmException($"{path}: neither metadata \"kind\" nor CRIS keys (backbone.*, neck.*, decoder.*, proj.*); not a CRIS checkpoint.");
        }
        var required = model.state_dict().Keys.Where(k => IsTrained(mode, k) && !CrisLoader.IsStepCounter(k)).ToHashSet(StringComparer.Ordinal);
        StateDictLoader.LoadSubset(model, file, null, required);
        return mode;
    }
}
