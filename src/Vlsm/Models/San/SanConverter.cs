using TorchSharp;
using Vlsm.IO;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.San;

/// <summary>What <see cref="SanConverter"/> did.</summary>
/// <param name="Source">The file read.</param>
/// <param name="Tensors">Tensors written to model.safetensors.</param>
/// <param name="FromSource">Of those, the ones the source supplied (the rest: a side network initialised as the reference initialises it).</param>
/// <param name="AliasesChecked">The reference's aliased CLIP copies found, checked equal and left out.</param>
/// <param name="StrippedPrefix">The prefix removed from every key (<c>net.</c> of a Lightning checkpoint), if any.</param>
/// <param name="DroppedKeys">Keys the source has that a SAN state dict does not (OpenAI's input_resolution, context_length, vocab_size).</param>
/// <param name="SkippedObjects">Classes of objects pickled beside the state dict, read as inert placeholders.</param>
public sealed record SanConversion(string OutDir, string Source, int Tensors, int FromSource, int AliasesChecked, string? StrippedPrefix,
    IReadOnlyList<string> DroppedKeys, IReadOnlyList<string> SkippedObjects, SanConfig Config);

/// <summary>
/// <c>vlsm convert san</c>: SAN model folders from what PyTorch users have, read with the restricted
/// reader (nothing in the files is run), checked against the architecture, written atomically:
/// <list type="bullet">
/// <item>OpenAI's CLIP TorchScript archive (<c>ViT-B-16.pt</c>, the weights <c>open_clip.create_model_from_pretrained("ViT-B/16", "openai")</c>
/// loads), fp16 widened to float32, with a side network initialised as the reference does: the
/// starting point of a SAN training;</item>
/// <item>a trained SAN: a Lightning checkpoint of the benchmark (<c>.ckpt</c>, keys prefixed <c>net.</c>) or a torch.save state dict.</item>
/// </list>
/// </summary>
public static class SanConverter
{
    /// <summary>Entries of OpenAI's state dict that are not CLIP parameters; open_clip's loader deletes them.</summary>
    public static readonly IReadOnlyList<string> OpenAiMetadataKeys = ["input_resolution", "context_length", "vocab_size"];

    private const string LightningPrefix = "net.";

    /// <summary>The SAN settings: a SAN config.json, or the benchmark's architecture (san-vit-b16).</summary>
    private static SanConfig Config(string? configPath) => configPath is null ? SanConfig.VitB16 : SanConfig.Read(configPath);

    /// <param name="clipArchive">OpenAI's CLIP .pt (a TorchScript archive).</param>
    /// <param name="configPath">A SAN config.json; null: the benchmark's SAN (ViT-B/16, 640 px).</param>
    /// <param name="seed">Seeds the side network's initialisation.</param>
    public static SanConversion FromClip(string clipArchive, string? configPath, string outDir, long seed)
    {
        OutputFolder.CheckNew(outDir, "--out");
        var config = Config(configPath);
        // Everything is read and checked before anything is written: a refused file leaves no trace.
        var read = TorchCheckpoint.ReadTorchScript(clipArchive);
        var dropped = read.Where(t => OpenAiMetadataKeys.Contains(t.Name)).Select(t => t.Name).ToList();
        var clip = read.Where(t => !OpenAiMetadataKeys.Contains(t.Name)).ToList();
        manual_seed(seed);
        using var model = new SanModel(config);
        var targets = model.state_dict()
            .Where(kv => kv.Key.StartsWith(SanLoader.ClipPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[SanLoader.ClipPrefix.Length..], kv => kv.Value);
        var byName = clip.ToDictionary(t => t.Name, StringComparer.Ordinal);
        StateDictLoader.CheckStrict(clipArchive, clip.Select(t => t.Name).ToList(), k => byName[k].Shape, targets);
        using (no_grad())
        {
            foreach (var t in clip)
            {
                using var stored = t.ToTensor();
                targets[t.Name].copy_(stored);
            }
        }
        int written = Write(outDir, config, model.state_dict());
        return new SanConversion(outDir, clipArchive, written, clip.Count, 0, null, dropped, [], config);
    }

    /// <summary>A SAN folder with random weights, every tensor as <see cref="SanModel"/> initialises it: the real architecture's shapes and costs, nothing pretrained (benchmarks).</summary>
    public static SanConversion Random(SanConfig config, string outDir, long seed)
    {
        OutputFolder.CheckNew(outDir, "--out");
        manual_seed(seed);
        using var model = new SanModel(config);
        int written = Write(outDir, config, model.state_dict());
        return new SanConversion(outDir, "random weights", written, 0, 0, null, [], [], config);
    }

    /// <param name="checkpoint">A Lightning .ckpt (state dict under <c>state_dict</c>, keys <c>net.*</c>) or a torch.save SAN state dict.</param>
    /// <param name="configPath">The SAN config.json it was trained with; null: the benchmark's SAN.</param>
    public static SanConversion FromCheckpoint(string checkpoint, string? configPath, string outDir)
    {
        OutputFolder.CheckNew(outDir, "--out");
        var config = Config(configPath);
        var read = TorchCheckpoint.ReadStateDictBesideObjects(checkpoint, out var skipped);
        var tensors = TorchCheckpoint.StripPrefix(read, LightningPrefix);
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Tensor Load(string key)
        {
            using var stored = byName[key].ToTensor();
            return stored.to(ScalarType.Float32);
        }
        int aliases = SanLoader.CheckAliases(checkpoint, config, byName.Keys, k => byName[k].Shape, Load);
        var kept = tensors.Where(t => !SanLoader.IsAlias(t.Name)).ToList();
        using var model = new SanModel(config);
        var targets = model.state_dict();
        StateDictLoader.CheckStrict(checkpoint, kept.Select(t => t.Name).ToList(), k => byName[k].Shape, targets);
        using (no_grad())
        {
            foreach (var t in kept)
            {
                using var stored = t.ToTensor();
                targets[t.Name].copy_(stored);
            }
        }
        int written = Write(outDir, config, targets);
        return new SanConversion(outDir, checkpoint, written, kept.Count, aliases, ReferenceEquals(read, tensors) ? null : LightningPrefix, [], skipped, config);
    }

    /// <summary>The folder: model.safetensors (float32, no aliases), config.json, CLIP's vocab.json and merges.txt.</summary>
    private static int Write(string outDir, SanConfig config, IReadOnlyDictionary<string, Tensor> stateDict)
    {
        AtomicFolder.Write(outDir, staging =>
        {
            SafetensorsWriter.Save(Path.Combine(staging, SanLoader.WeightsFile), stateDict, new Dictionary<string, string> { ["format"] = "pt" });
            AtomicFile.WriteAllText(Path.Combine(staging, SanLoader.ConfigFile), config.ToJson());
            ClipTokenizer.WriteBuiltInVocabulary(staging);
        });
        return stateDict.Count;
    }
}
