using System.Globalization;
using TorchSharp;
using Vlsm.IO;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>
/// Trained BiomedCLIPSeg weights as safetensors: the decoder (<c>decoder.*</c>, the reference
/// experiments), adapters under VLSM-Adapter's module names with the decoder (shallow/dense), or
/// every used tensor (full). Metadata records the mode, parts, adapter widths, the trainable count and the base
/// architecture's fingerprint; a file without metadata is read off its keys and shapes.
/// </summary>
public static class BiomedClipSegWeightsFile
{
    public const string Format = "vlsm-biomedclipseg";

    public static void Save(string path, AdaptedBiomedClipSeg model, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var spec = model.Spec;
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["kind"] = FineTuneSpec.ModeName(spec.Mode),
            ["trainable_parameters"] = model.TrainableParameterCount.ToString(CultureInfo.InvariantCulture),
            ["base"] = model.Config.Fingerprint,
        };
        if (spec.HasAdapters)
        {
            metadata["parts"] = FineTuneSpec.PartsName(spec.Parts);
            metadata["adapter_dim"] = spec.AdapterDim.ToString(CultureInfo.InvariantCulture);
            metadata["cond_adapter_dim"] = spec.CondAdapterDim.ToString(CultureInfo.InvariantCulture);
        }
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) metadata[k] = v;
        SafetensorsWriter.Save(path, model.TrainableNamed().Select(p => new KeyValuePair<string, torch.Tensor>(p.Name, p.Parameter)), metadata);
    }

    /// <summary>The spec a file was trained with: from its metadata, else from its keys and shapes.</summary>
    public static FineTuneSpec ReadSpec(SafetensorsFile file)
    {
        var m = file.Metadata;
        var names = file.Names;
        FineTuneMode mode;
        if (m.TryGetValue("kind", out var kind))
        {
            try
            {
                mode = FineTuneSpec.ParseMode(kind);
            }
            catch (VlsmException e)
            {
                throw new VlsmException($"{file.Path}: metadata \"kind\": {e.Message}", e);
            }
        }
        else if (names.Any(n => n.StartsWith("v_attn_adapters.", StringComparison.Ordinal) || n.StartsWith("l_attn_adapters.", StringComparison.Ordinal))) mode = FineTuneMode.Dense;
        else if (names.Any(n => n.StartsWith("vision_extract_adapters.", StringComparison.Ordinal) || n.StartsWith("cond_adapter.", StringComparison.Ordinal))) mode = FineTuneMode.Shallow;
        else if (names.Count > 0 && names.All(n => n.StartsWith("decoder.", StringComparison.Ordinal))) mode = FineTuneMode.Decoder;
        else if (names.Any(n => n.StartsWith("biomedclip.", StringComparison.Ordinal))) mode = FineTuneMode.Full;
        else throw new VlsmException($"{file.Path}: neither metadata \"kind\" nor BiomedCLIPSeg keys (decoder.*, biomedclip.*, vision_extract_adapters.*, v_attn_adapters.*, cond_adapter.*); not a BiomedCLIPSeg weights file.");
        if (!mode.Equals(FineTuneMode.Shallow) && !mode.Equals(FineTuneMode.Dense)) return FineTuneSpec.Create(mode);
        string parts = m.TryGetValue("parts", out var p) ? p
            : (names.Any(n => n.StartsWith(mode == FineTuneMode.Dense ? "v_attn_adapters." : "vision_extract_adapters.", StringComparison.Ordinal)) ? "v" : "")
              + (names.Any(n => n.StartsWith("l_attn_adapters.", StringComparison.Ordinal)) ? "l" : "")
              + (names.Any(n => n.StartsWith("cond_adapter.", StringComparison.Ordinal)) ? "c" : "");
        var adapterKey = names.FirstOrDefault(k => k.EndsWith(".fc1.weight", StringComparison.Ordinal) && !k.StartsWith("cond_adapter.", StringComparison.Ordinal) && !k.StartsWith(AdaptedBiomedClipSeg.DecoderPrefix, StringComparison.Ordinal));
        int dim = m.TryGetValue("adapter_dim", out var r) ? Positive(file, "adapter_dim", r)
            : adapterKey is null ? FineTuneSpec.DefaultAdapterDim(mode) : (int)file.Entry(adapterKey).Shape[0];
        int cond = m.TryGetValue("cond_adapter_dim", out var c) ? Positive(file, "cond_adapter_dim", c)
            : file.Contains("cond_adapter.fc1.weight") ? (int)file.Entry("cond_adapter.fc1.weight").Shape[0] : FineTuneSpec.DefaultCondAdapterDim;
        return FineTuneSpec.Create(mode, parts, dim, cond);
    }

    /// <summary>The base model with the file's weights applied (the wrapper owns the base), in eval mode.</summary>
    public static AdaptedBiomedClipSeg Load(BiomedClipSegModel baseModel, string path)
    {
        using var file = SafetensorsFile.Open(path);
        CheckBase(file, baseModel.Config);
        var spec = ReadSpec(file);
        AdaptedBiomedClipSeg model;
        try
        {
            model = new AdaptedBiomedClipSeg(baseModel, spec);
        }
        catch (VlsmException e)
        {
            throw new VlsmException($"{path}: {e.Message}", e);
        }
        Copy(model, file);
        model.eval();
        return model;
    }

    /// <summary>Copies a file's tensors into a model built with the same spec (resuming a run).</summary>
    public static void LoadInto(AdaptedBiomedClipSeg model, string path)
    {
        using var file = SafetensorsFile.Open(path);
        CheckBase(file, model.Config);
        Copy(model, file);
    }

    private static void Copy(AdaptedBiomedClipSeg model, SafetensorsFile file)
    {
        static bool IsDecoder(string key) => key.StartsWith(AdaptedBiomedClipSeg.DecoderPrefix, StringComparison.Ordinal);
        var required = model.TrainableNamed().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        if (model.Spec.HasAdapters)
        {
            // Adapters strictly, then the decoder trained with them.
            StateDictLoader.LoadStrict(model.Adapters!, file, IsDecoder);
            required.RemoveWhere(k => !IsDecoder(k));
            StateDictLoader.LoadSubset(model.Base, file, k => !IsDecoder(k), required);
            return;
        }
        StateDictLoader.LoadSubset(model.Base, file, BiomedClipSegLoader.IsIgnoredKey, required);
    }

    private static void CheckBase(SafetensorsFile file, BiomedClipSegConfig config)
    {
        if (file.Metadata.TryGetValue("format", out var format) && format != Format)
            throw new VlsmException($"{file.Path}: a \"{format}\" file, not BiomedCLIPSeg weights ({Format}); train with a BiomedCLIPSeg model folder.");
        if (file.Metadata.TryGetValue("base", out var fingerprint) && fingerprint != config.Fingerprint)
            throw new VlsmException($"{file.Path}: trained for a BiomedCLIPSeg of another shape ({fingerprint}); this model is {config.Fingerprint}.");
    }

    private static int Positive(SafetensorsFile f, string key, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v
            : throw new VlsmException($"{f.Path}: metadata \"{key}\" is \"{value}\", expected a positive integer.");
}
