using System.Globalization;
using TorchSharp;
using Vlsm.IO;

namespace Vlsm.Models.Smp;

/// <summary>
/// Trained smp weights as safetensors under smp's state-dict names: in full mode the whole state
/// dict, in decoder mode the <c>decoder.*</c> and <c>segmentation_head.*</c> entries. BatchNorm
/// running statistics are included, since training changes them. Metadata records the format, the
/// mode, the trainable parameter count and the architecture's fingerprint.
/// </summary>
public static class SmpCheckpointFile
{
    public const string Format = "vlsm-smp";

    /// <summary>Whether <paramref name="key"/> is a tensor <paramref name="mode"/> trains (parameters and BatchNorm buffers).</summary>
    public static bool IsTrained(FineTuneMode mode, string key) =>
        mode == FineTuneMode.Full || !key.StartsWith(SmpModel.EncoderPrefix, StringComparison.Ordinal);

    /// <summary>The modes smp models train in; others are an error that says so.</summary>
    public static FineTuneMode CheckMode(FineTuneMode mode, string familyName) => mode is FineTuneMode.Full or FineTuneMode.Decoder
        ? mode
        : throw new VlsmException($"{familyName} trains in full mode (medvlsm's recipe: --preset or --mode full) or decoder mode (a frozen encoder); {FineTuneSpec.ModeName(mode)} adapters are CLIPSeg's.");

    public static long TrainableParameterCount(SmpModel model, FineTuneMode mode) =>
        model.named_parameters().Where(p => IsTrained(mode, p.name)).Sum(p => p.parameter.numel());

    public static void Save(string path, SmpModel model, FineTuneMode mode, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["model_type"] = model.Config.ModelType,
            ["kind"] = FineTuneSpec.ModeName(mode),
            ["trainable_parameters"] = TrainableParameterCount(model, mode).ToString(CultureInfo.InvariantCulture),
            ["base"] = model.Config.Fingerprint,
        };
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) metadata[k] = v;
        var tensors = model.state_dict().Where(kv => IsTrained(mode, kv.Key)).Select(kv => new KeyValuePair<string, torch.Tensor>(kv.Key, kv.Value));
        SafetensorsWriter.Save(path, tensors, metadata);
    }

    /// <summary>Copies a checkpoint's tensors into <paramref name="model"/>; returns the mode it was trained in.</summary>
    /// <exception cref="VlsmException">The file was trained for another architecture, or lacks or adds tensors (named).</exception>
    public static FineTuneMode Apply(SmpModel model, string path, string familyName)
    {
        using var file = SafetensorsFile.Open(path);
        if (file.Metadata.TryGetValue("base", out var fingerprint) && fingerprint != model.Config.Fingerprint)
            throw new VlsmException($"{path}: trained for another model ({fingerprint}); this model is {model.Config.Fingerprint}.");
        FineTuneMode mode;
        if (file.Metadata.TryGetValue("kind", out var kind))
        {
            try
            {
                mode = CheckMode(FineTuneSpec.ParseMode(kind), familyName);
            }
            catch (VlsmException e)
            {
                throw new VlsmException($"{path}: metadata \"kind\": {e.Message}", e);
            }
        }
        else if (file.Names.Any(n => n.StartsWith(SmpModel.EncoderPrefix, StringComparison.Ordinal)))
        {
            mode = FineTuneMode.Full;
        }
        else if (file.Names.Any(n => n.StartsWith("decoder.", StringComparison.Ordinal)))
        {
            mode = FineTuneMode.Decoder;
        }
        else
        {
            throw new VlsmException($"{path}: neither metadata \"kind\" nor smp keys (encoder.*, decoder.*, segmentation_head.*); not an smp checkpoint.");
        }
        var required = model.state_dict().Keys.Where(k => IsTrained(mode, k) && !StateDictLoader.IsStepCounter(k)).ToHashSet(StringComparer.Ordinal);
        StateDictLoader.LoadSubset(model, file, null, required);
        return mode;
    }
}
