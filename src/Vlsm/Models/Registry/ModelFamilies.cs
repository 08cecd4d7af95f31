using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Models.ClipSeg;
using Vlsm.Models.Cris;
using Vlsm.Models.San;
using Vlsm.Models.Smp;

namespace Vlsm.Models.Registry;

/// <summary>
/// Every model family vlsm knows, found by config.json's <c>model_type</c> as HF's auto classes find
/// theirs. This table is the only place that lists families: adding one means adding it here.
/// </summary>
public static class ModelFamilies
{
    public static IReadOnlyList<IModelFamily> All { get; } = [ClipSegFamily.Instance, CrisFamily.Instance, SanFamily.Instance, BiomedClipSegFamily.Instance, .. SmpFamily.All];

    /// <summary>The family registered for a <c>model_type</c>.</summary>
    /// <exception cref="VlsmException">No family has that model_type.</exception>
    public static IModelFamily ForType(string modelType) =>
        All.FirstOrDefault(f => f.ModelType == modelType)
        ?? throw new VlsmException($"model_type \"{modelType}\" is not a model family vlsm knows; known: {KnownTypes}.");

    private static string KnownTypes => string.Join(", ", All.Select(f => f.ModelType));

    /// <summary>The family of the model in <paramref name="dir"/>, from its config.json.</summary>
    /// <exception cref="VlsmException">The folder or its config.json is missing or unreadable, or names no known family.</exception>
    public static IModelFamily ForFolder(string dir)
    {
        if (File.Exists(dir))
            throw new VlsmException($"{dir} is a file; give the model's folder (config.json and weights), not a file in it.");
        if (!Directory.Exists(dir))
            throw new VlsmException($"model folder {dir} does not exist; pass a model folder (config.json and weights): an HF CLIPSeg checkpoint, or a folder written by vlsm convert.");
        string path = Path.Combine(dir, "config.json");
        if (!File.Exists(path))
            throw new VlsmException($"{path} not found: a model folder needs config.json (and its weights); is {dir} a model folder?");
        JsonObject config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new VlsmException($"{path}: expected a JSON object.");
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{path}: not valid JSON ({e.Message}).", e);
        }
        if (config["model_type"] is JsonValue value && value.TryGetValue<string>(out var type))
        {
            return All.FirstOrDefault(f => f.ModelType == type)
                ?? throw new VlsmException($"{path}: model_type \"{type}\" is not a model family vlsm knows; known: {KnownTypes}.");
        }
        return All.FirstOrDefault(f => f.RecognizesLegacy(config))
            ?? throw new VlsmException($"{path}: no model_type; say which family the folder holds (\"model_type\": one of {KnownTypes}).");
    }

    /// <summary>
    /// The family whose model a trained-weights file's shape fingerprint (its metadata "base") describes,
    /// or null when none does: every family's fingerprint begins with its model_type, then ';' or ' '.
    /// </summary>
    public static IModelFamily? ForFingerprint(string fingerprint) =>
        All.FirstOrDefault(f => fingerprint.Length > f.ModelType.Length
            && fingerprint.StartsWith(f.ModelType, StringComparison.Ordinal)
            && fingerprint[f.ModelType.Length] is ';' or ' ');

    /// <summary>The family that has a built-in architecture of that name.</summary>
    public static IModelFamily ForArchitecture(string name) =>
        All.FirstOrDefault(f => f.Architectures.Contains(name))
        ?? throw new VlsmException($"unknown --arch \"{name}\"; known: {string.Join(", ", ArchitectureNames)}.");

    public static IEnumerable<string> ArchitectureNames => All.SelectMany(f => f.Architectures);

    /// <summary>Every preset of every family, by name.</summary>
    public static IEnumerable<(string Name, IModelFamily Family, TrainingPreset Preset)> Presets =>
        All.SelectMany(f => f.Presets.Select(p => (p.Key, f, p.Value)));

    /// <summary>The preset of that name and its family.</summary>
    public static (IModelFamily Family, TrainingPreset Preset) Preset(string name)
    {
        foreach (var (n, family, preset) in Presets)
            if (n == name) return (family, preset);
        throw new VlsmException($"unknown preset \"{name}\"; known: {string.Join(", ", Presets.Select(p => p.Name))}.");
    }

    /// <summary>
    /// Checks family options for <paramref name="family"/>: a key another family declares is named
    /// with that family and the command-line flag that sets it.
    /// </summary>
    public static IReadOnlyDictionary<string, string> CheckOptions(IModelFamily family, string modelDir, IReadOnlyDictionary<string, string> options)
    {
        foreach (var key in options.Keys)
        {
            if (family.Options.Any(o => o.Key == key)) continue;
            var owner = All.FirstOrDefault(f => f.Options.Any(o => o.Key == key));
            if (owner is not null)
                throw new VlsmException($"{Flag(key)} applies to {owner.Name} models ({key} in config.yaml); {modelDir} is a {family.Name} model.");
        }
        return FamilyChecks.Options(family, options);
    }

    /// <summary>The command-line flag of a family option: cris_pad_mask is --cris-pad-mask.</summary>
    public static string Flag(string key) => "--" + key.Replace('_', '-');

    /// <summary>Opens a model folder for prediction, through its family, after checking precision, options and input size.</summary>
    public static ISegmenter OpenSegmenter(ModelRequest request)
    {
        var family = ForFolder(request.Directory);
        FamilyChecks.InferencePrecision(family, request.Directory, request.Precision);
        CheckOptions(family, request.Directory, request.Options);
        if (request.ImageSize is not null)
            request = request with { ImageSize = FamilyChecks.ImageSize(family, request.Directory, request.ImageSize).Resize };
        return family.OpenSegmenter(request);
    }
}
