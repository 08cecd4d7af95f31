using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Tensors;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.San;

/// <summary>
/// SAN model folders: <c>config.json</c> (<c>model_type: san</c>, a <c>net</c> object),
/// <c>model.safetensors</c> (SAN's state dict: <c>clip_model.*</c> and <c>side_adapter_network.*</c>,
/// optionally with the reference's aliased copies), <c>vocab.json</c> and <c>merges.txt</c>.
/// </summary>
public static partial class SanLoader
{
    public const string WeightsFile = "model.safetensors";
    public const string ConfigFile = "config.json";

    /// <summary>The state-dict prefixes of the model proper; the other two hold copies of CLIP tensors.</summary>
    public const string ClipPrefix = "clip_model.", SidePrefix = "side_adapter_network.";

    public const string ExtractorAliasPrefix = "clip_visual_extractor.", RecHeadAliasPrefix = "clip_rec_head.";

    public static SanConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir))
            throw new VlsmException($"model folder {dir} does not exist; pass a SAN folder (config.json, model.safetensors), e.g. one written by vlsm convert san.");
        string path = Path.Combine(dir, ConfigFile);
        var config = SanConfig.Read(path);
        var (shapes, counts) = config.WeightClaims();
        WeightShapes.Check(path, Path.Combine(dir, WeightsFile), shapes, counts);
        return config;
    }

    /// <summary>Whether <paramref name="key"/> is under one of the reference's alias prefixes.</summary>
    public static bool IsAlias(string key) =>
        key.StartsWith(ExtractorAliasPrefix, StringComparison.Ordinal) || key.StartsWith(RecHeadAliasPrefix, StringComparison.Ordinal);

    [GeneratedRegex(@"^resblocks\.(\d+)\.(.+)$")]
    private static partial Regex Block();

    /// <summary>
    /// The <c>clip_model.visual.*</c> key an alias stands for, or null when it stands for nothing in
    /// this architecture: <c>clip_visual_extractor.{conv1, class_embedding, positional_embedding,
    /// ln_pre, resblocks.i (i &lt; last_layer_idx)}</c> and <c>clip_rec_head.{resblocks.j (visual block
    /// first_layer_idx + j), ln_post, proj}</c>.
    /// </summary>
    public static string? Canonical(SanConfig config, string alias)
    {
        const string visual = ClipPrefix + "visual.";
        if (alias.StartsWith(ExtractorAliasPrefix, StringComparison.Ordinal))
        {
            string rest = alias[ExtractorAliasPrefix.Length..];
            if (rest is "conv1.weight" or "class_embedding" or "positional_embedding" || rest.StartsWith("ln_pre.", StringComparison.Ordinal)) return visual + rest;
            var m = Block().Match(rest);
            return m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int i) && i < config.LastLayerIdx
                ? $"{visual}transformer.resblocks.{i}.{m.Groups[2].Value}" : null;
        }
        if (alias.StartsWith(RecHeadAliasPrefix, StringComparison.Ordinal))
        {
            string rest = alias[RecHeadAliasPrefix.Length..];
            if (rest == "proj" || rest.StartsWith("ln_post.", StringComparison.Ordinal)) return visual + rest;
            var m = Block().Match(rest);
            return m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int j) && j < config.RecHeadBlocks
                ? $"{visual}transformer.resblocks.{config.FirstLayerIdx + j}.{m.Groups[2].Value}" : null;
        }
        return null;
    }

    /// <summary>
    /// Checks the aliased copies a state dict holds: each must stand for a CLIP tensor of the model
    /// and equal it bit for bit. The reference stores them as separate copies of the same tensors.
    /// </summary>
    /// <param name="load">Loads a key of the source as float32.</param>
    /// <exception cref="VlsmException">An alias stands for nothing, or differs from its tensor in shape or value (named).</exception>
    public static int CheckAliases(string source, SanConfig config, IEnumerable<string> keys, Func<string, long[]> shapeOf, Func<string, Tensor> load)
    {
        var names = keys.ToHashSet(StringComparer.Ordinal);
        int count = 0;
        foreach (var alias in names.Where(IsAlias).Order(StringComparer.Ordinal))
        {
            string canonical = Canonical(config, alias)
                ?? throw new VlsmException($"{source}: unexpected key \"{alias}\": it is not a copy of any CLIP tensor of this architecture (last_layer_idx {config.LastLayerIdx}, first_layer_idx {config.FirstLayerIdx}).");
            if (!names.Contains(canonical))
                throw new VlsmException($"{source}: \"{alias}\" is a copy of \"{canonical}\", which the file lacks.");
            if (!shapeOf(alias).SequenceEqual(shapeOf(canonical)))
                throw new VlsmException($"{source}: \"{alias}\" has shape [{string.Join(", ", shapeOf(alias))}], but the tensor it copies, \"{canonical}\", has [{string.Join(", ", shapeOf(canonical))}].");
            using var a = load(alias);
            using var c = load(canonical);
            if (!SameValues(a, c))
                throw new VlsmException($"{source}: \"{alias}\" differs from \"{canonical}\"; in SAN they are the same tensor, so the file is inconsistent (edited or damaged).");
            count++;
        }
        return count;
    }

    /// <summary>Equal element for element, NaN matching NaN.</summary>
    internal static bool SameValues(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.eq(b).logical_or_(a.isnan().logical_and_(b.isnan())).all().item<bool>();
    }

    /// <summary>The model with the folder's weights, in float32 and eval mode.</summary>
    /// <param name="imageSize">The input side other than config.json's image_size (<see cref="ModelRequest.ImageSize"/>).</param>
    public static SanModel Load(string dir, int? imageSize = null)
    {
        var config = imageSize is int side ? ReadConfig(dir) with { ImageHeight = side, ImageWidth = side } : ReadConfig(dir);
        string weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights))
        {
            string hint = Directory.EnumerateFiles(dir).Any(f => f.EndsWith(".ckpt", StringComparison.Ordinal) || f.EndsWith(".pt", StringComparison.Ordinal))
                ? " The folder has a PyTorch checkpoint; convert it with vlsm convert san." : "";
            throw new VlsmException($"{weights} not found.{hint}");
        }
        var model = new SanModel(config);
        try
        {
            using var file = SafetensorsFile.Open(weights);
            StateDictLoader.LoadStrict(model, file, ignore: IsAlias);
            CheckAliases(file.Path, config, file.Names, k => file.Entry(k).Shape, k => file.Load(k, ScalarType.Float32));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>The folder's tokenizer: its vocab.json and merges.txt (CLIP's).</summary>
    public static ClipTokenizer Tokenizer(string dir, SanConfig config) => ClipTokenizer.FromFolder(dir).Within(config.Clip.VocabSize, "net.open_clip_cfg.text_cfg.vocab_size");

    /// <summary>The benchmark's tokenization: start, text, end, padded with the end id to the context length.</summary>
    public static TokenBatch Tokenize(ClipTokenizer tokenizer, SanConfig config, IReadOnlyList<string> prompts) =>
        tokenizer.EncodeBatch(prompts, padTo: config.Clip.ContextLength, maxLength: config.Clip.ContextLength);

    public static Tensor InputIds(ClipTokenizer tokenizer, SanConfig config, IReadOnlyList<string> prompts)
    {
        var tokens = Tokenize(tokenizer, config, prompts);
        return tokens.IdsTensor();
    }
}
