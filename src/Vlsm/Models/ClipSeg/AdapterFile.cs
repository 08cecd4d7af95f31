using System.Globalization;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Models.ClipSeg;

/// <summary>
/// Trained weights as safetensors: adapter tensors under the reference's module names
/// (shallow/dense), or base tensors under their HF names (decoder/full). Metadata records kind,
/// parts, adapter dims, trainable parameter count and the base architecture's fingerprint.
/// Files trained with the Python reference (saved without their <c>net.</c> prefix and without
/// metadata) load too: kind, parts and dims are read off the keys and shapes.
/// </summary>
public static class AdapterFile
{
    /// <summary>Metadata <c>format</c> of these files.</summary>
    public const string Format = "vlsm-adapter";

    public static void Save(string path, AdaptedClipSeg model, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var spec = model.Spec;
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["kind"] = FineTuneSpec.ModeName(spec.Mode),
            ["trainable_parameters"] = model.TrainableParameterCount.ToString(CultureInfo.InvariantCulture),
            ["base"] = model.Config.Fingerprint,
        };
        if (spec.FreezeText) metadata["freeze_text"] = "true";
        if (spec.HasAdapters)
        {
            metadata["parts"] = FineTuneSpec.PartsName(spec.Parts);
            metadata["adapter_dim"] = spec.AdapterDim.ToString(CultureInfo.InvariantCulture);
            metadata["cond_adapter_dim"] = spec.CondAdapterDim.ToString(CultureInfo.InvariantCulture);
        }
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) metadata[k] = v;
        var tensors = model.TrainableNamed().Select(p => new KeyValuePair<string, torch.Tensor>(p.Name, p.Parameter));
        SafetensorsWriter.Save(path, tensors, metadata);
    }

    /// <summary>Reads the spec a file was trained with (from metadata, else from its keys and shapes).</summary>
    public static FineTuneSpec ReadSpec(SafetensorsFile file)
    {
        try
        {
            return ReadSpecOf(file);
        }
        catch (VlsmException e) when (!e.Message.StartsWith(file.Path, StringComparison.Ordinal))
        {
            throw new VlsmException($"{file.Path}: metadata: {e.Message}", e);
        }
    }

    private static FineTuneSpec ReadSpecOf(SafetensorsFile file)
    {
        var m = file.Metadata;
        if (m.TryGetValue("kind", out var kind))
        {
            var mode = FineTuneSpec.ParseMode(kind);
            if (mode is FineTuneMode.Decoder or FineTuneMode.Full)
                return FineTuneSpec.Create(mode, freezeText: m.TryGetValue("freeze_text", out var frozen) && frozen == "true");
            return FineTuneSpec.Create(mode,
                m.TryGetValue("parts", out var parts) ? parts : InferParts(file, mode),
                m.TryGetValue("adapter_dim", out var r) ? ParseInt(file, "adapter_dim", r) : InferAdapterDim(file, mode),
                m.TryGetValue("cond_adapter_dim", out var c) ? ParseInt(file, "cond_adapter_dim", c) : InferCondDim(file));
        }
        var names = file.Names;
        if (names.Any(n => n.StartsWith("vision_extract_adapters.") || n.StartsWith("text_extract_adapters.")))
            return FineTuneSpec.Create(FineTuneMode.Shallow, InferParts(file, FineTuneMode.Shallow), InferAdapterDim(file, FineTuneMode.Shallow), InferCondDim(file));
        if (names.Any(n => n.StartsWith("v_attn_adapters.") || n.StartsWith("l_attn_adapters.")))
            return FineTuneSpec.Create(FineTuneMode.Dense, InferParts(file, FineTuneMode.Dense), InferAdapterDim(file, FineTuneMode.Dense), InferCondDim(file));
        if (names.Count > 0 && names.All(n => n.StartsWith("decoder.")))
            return FineTuneSpec.Create(FineTuneMode.Decoder);
        if (names.Any(n => n.StartsWith("clip.")))
            return FineTuneSpec.Create(FineTuneMode.Full);
        throw new VlsmException($"{file.Path}: neither metadata \"kind\" nor recognisable keys (vision_extract_adapters.*, v_attn_adapters.*, decoder.*, clip.*); not an adapter or checkpoint file.");
    }

    /// <summary>The base model with the file's trained weights applied, in eval mode.</summary>
    public static AdaptedClipSeg Load(ClipSegModel baseModel, string path)
    {
        using var file = SafetensorsFile.Open(path);
        CheckBase(file, baseModel.Config);
        var spec = ReadSpec(file);
        AdaptedClipSeg model;
        try
        {
            model = new AdaptedClipSeg(baseModel, spec);
        }
        catch (VlsmException e)
        {
            throw new VlsmException($"{path}: {e.Message}", e);
        }
        CopyTensors(model, file);
        model.eval();
        return model;
    }

    /// <summary>Copies a file's trained tensors into a model built with the same spec (e.g. when resuming a run).</summary>
    public static void LoadInto(AdaptedClipSeg model, string path)
    {
        using var file = SafetensorsFile.Open(path);
        CheckBase(file, model.Config);
        CopyTensors(model, file);
    }

    private static void CopyTensors(AdaptedClipSeg model, SafetensorsFile file)
    {
        if (model.Spec.HasAdapters)
        {
            StateDictLoader.LoadStrict(model.Adapters!, file);
            return;
        }
        var expected = model.TrainableNamed().Select(p => p.Name).ToHashSet();
        StateDictLoader.LoadSubset(model.Base, file, model.Spec.Mode == FineTuneMode.Full ? ClipSegLoader.IsIgnoredKey : null, requireAll: expected);
    }

    private static void CheckBase(SafetensorsFile file, ClipSegConfig config)
    {
        if (file.Metadata.TryGetValue("base", out var fingerprint) && fingerprint != config.Fingerprint)
            throw new VlsmException($"{file.Path}: trained for a base model of another shape ({fingerprint}); this model is {config.Fingerprint}.");
    }

    private static string InferParts(SafetensorsFile f, FineTuneMode mode)
    {
        var n = f.Names;
        bool v = mode == FineTuneMode.Shallow ? n.Any(k => k.StartsWith("vision_extract_adapters.")) : n.Any(k => k.StartsWith("v_attn_adapters."));
        bool l = mode == FineTuneMode.Shallow ? n.Any(k => k.StartsWith("text_extract_adapters.")) : n.Any(k => k.StartsWith("l_attn_adapters."));
        bool c = n.Any(k => k.StartsWith("cond_adapter."));
        return (v ? "v" : "") + (l ? "l" : "") + (c ? "c" : "");
    }

    private static int InferAdapterDim(SafetensorsFile f, FineTuneMode mode)
    {
        var key = f.Names.FirstOrDefault(k => k.EndsWith(".fc1.weight") && !k.StartsWith("cond_adapter."));
        return key is null ? FineTuneSpec.DefaultAdapterDim(mode) : (int)f.Entry(key).Shape[0];
    }

    private static int InferCondDim(SafetensorsFile f) =>
        f.Contains("cond_adapter.fc1.weight") ? (int)f.Entry("cond_adapter.fc1.weight").Shape[0] : FineTuneSpec.DefaultCondAdapterDim;

    private static int ParseInt(SafetensorsFile f, string key, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v
            : throw new VlsmException($"{f.Path}: metadata \"{key}\" is \"{value}\", expected a positive integer.");
}
