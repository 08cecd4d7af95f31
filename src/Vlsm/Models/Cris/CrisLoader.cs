using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Text;

namespace Vlsm.Models.Cris;

/// <summary>
/// CRIS model folders: <c>config.json</c> (with <c>clip</c> and <c>cris</c> objects),
/// <c>model.safetensors</c> (the reference's state dict), <c>vocab.json</c> and <c>merges.txt</c>.
/// </summary>
public static class CrisLoader
{
    public const string WeightsFile = "model.safetensors";
    public const string ConfigFile = "config.json";

    /// <summary>BatchNorm's step counter, which older checkpoints lack and inference never reads.</summary>
    public static bool IsStepCounter(string key) => StateDictLoader.IsStepCounter(key);

    /// <summary>The folder's config with the backbone sizes its weights have (when it has weights).</summary>
    public static CrisConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir))
            throw new VlsmException($"model folder {dir} does not exist; pass a CRIS folder (config.json, model.safetensors), e.g. one written by vlsm convert cris.");
        string configPath = Path.Combine(dir, ConfigFile);
        var (config, hasClip) = CrisConfig.Read(configPath);
        string weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights)) return config;
        using var file = SafetensorsFile.Open(weights);
        config = config.WithClipOf(InferClip(file.Path, file.Names, k => file.Contains(k) ? file.Entry(k).Shape : null), hasClip, configPath);
        var (shapes, counts) = config.WeightClaims();
        WeightShapes.Check(configPath, file.Path, k => file.Contains(k) ? file.Entry(k).Shape : null, file.Names, shapes, counts);
        return config;
    }

    /// <summary>CLIP's <c>build_model</c> inference on <c>backbone.*</c> tensors; errors name <paramref name="source"/>.</summary>
    public static CrisClipConfig InferClip(string source, IEnumerable<string> keys, Func<string, long[]?> shapeOf)
    {
        try
        {
            return CrisClipConfig.InferFrom(keys, shapeOf);
        }
        catch (FormatException e)
        {
            throw new VlsmException($"{source}: {e.Message}", e);
        }
    }

    /// <summary>The model with the folder's weights, in float32 and eval mode.</summary>
    /// <param name="imageSize">The input side other than config.json's img_size (<see cref="ModelRequest.ImageSize"/>): the head upsamples its logits to it.</param>
    public static CrisModel Load(string dir, int? imageSize = null)
    {
        var config = imageSize is int side ? ReadConfig(dir) with { ImgSize = side } : ReadConfig(dir);
        string weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights))
        {
            string hint = Directory.EnumerateFiles(dir, "*.pth").Any() ? " The folder has a .pth checkpoint; convert it with vlsm convert cris --checkpoint FILE --out DIR." : "";
            throw new VlsmException($"{weights} not found.{hint}");
        }
        var model = new CrisModel(config);
        try
        {
            using var file = SafetensorsFile.Open(weights);
            StateDictLoader.LoadStrict(model, file, optional: IsStepCounter);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>The folder's tokenizer: its vocab.json and merges.txt (CLIP's, which vlsm convert writes).</summary>
    public static ClipTokenizer Tokenizer(string dir, CrisConfig config) => ClipTokenizer.FromFolder(dir).Within(config.Clip.VocabSize, "the weights' backbone.token_embedding.weight");
}

/// <summary>What <see cref="CrisConverter.Convert"/> did.</summary>
public sealed record CrisConversion(string OutDir, string ConfigSource, int Tensors, bool StrippedPrefix, int AddedStepCounters, CrisConfig Config);

/// <summary>
/// <c>vlsm convert cris</c>: a CRIS checkpoint as PyTorch distributes it (a <c>torch.save</c>
/// pickle, keys often prefixed <c>module.</c>) into a CRIS folder, read with the restricted
/// unpickler, checked against the architecture, written atomically.
/// </summary>
public static class CrisConverter
{
    private const string DataParallelPrefix = "module.";

    /// <param name="checkpoint">The .pth/.bin file.</param>
    /// <param name="configPath">The CRIS config; null means config.json beside the checkpoint.</param>
    /// <param name="outDir">The folder to write (created; must be new or empty).</param>
    public static CrisConversion Convert(string checkpoint, string? configPath, string outDir)
    {
        OutputFolder.CheckNew(outDir, "--out");
        configPath ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(checkpoint))!, CrisLoader.ConfigFile);
        if (!File.Exists(configPath))
            throw new VlsmException($"{configPath} not found: give the CRIS settings with --config FILE (a config.json with a \"cris\" object, as in shared/parity/cris-tiny).");
        var (config, hasClip) = CrisConfig.Read(configPath);

        // Everything is read and checked before anything is written: a refused file leaves no trace.
        var read = TorchCheckpoint.ReadStateDict(checkpoint);
        var tensors = TorchCheckpoint.StripPrefix(read, DataParallelPrefix);
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var clip = CrisLoader.InferClip(checkpoint, byName.Keys, k => byName.TryGetValue(k, out var t) ? t.Shape : null);
        config = config.WithClipOf(clip, hasClip, configPath);
        var (shapes, counts) = config.WeightClaims();
        WeightShapes.Check(configPath, checkpoint, k => byName.TryGetValue(k, out var t) ? t.Shape : null, byName.Keys, shapes, counts);

        var output = tensors.ToList();
        using (var model = new CrisModel(config))
        {
            var targets = model.state_dict();
            StateDictLoader.CheckStrict(checkpoint, output.Select(t => t.Name).ToList(), k => byName[k].Shape, targets, CrisLoader.IsStepCounter);
            foreach (var (name, target) in targets)
            {
                if (byName.ContainsKey(name)) continue;
                // A checkpoint from before BatchNorm counted its steps: the counter starts at 0, as PyTorch loads it.
                output.Add(new TorchTensor(name, SafetensorsDtype.I64, [], new byte[8]));
            }
        }

        WriteFolder(outDir, config, output);
        return new CrisConversion(outDir, configPath, output.Count, !ReferenceEquals(read, tensors), output.Count - tensors.Count, config);
    }

    /// <summary>Writes the folder in a sibling staging folder, then moves it (or its files) into place (<see cref="AtomicFolder"/>).</summary>
    private static void WriteFolder(string outDir, CrisConfig config, IReadOnlyList<TorchTensor> tensors) => AtomicFolder.Write(outDir, staging =>
    {
        SafetensorsWriter.Save(Path.Combine(staging, CrisLoader.WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(staging, CrisLoader.ConfigFile), config.ToJson());
        ClipTokenizer.WriteBuiltInVocabulary(staging);
    });
}
