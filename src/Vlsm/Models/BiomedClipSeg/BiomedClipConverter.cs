using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Models.ClipSeg;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>Where <c>vlsm convert biomedclip</c> takes each part from.</summary>
public sealed record BiomedClipSources
{
    /// <summary>BiomedCLIP as distributed: a folder with open_clip_config.json and open_clip_pytorch_model.bin (or open_clip_model.safetensors).</summary>
    public string? BiomedClip { get; init; }

    /// <summary>A medvlsm Lightning checkpoint (or any torch.save state dict) of a whole BiomedCLIPSeg, keys prefixed <c>net.</c>.</summary>
    public string? Checkpoint { get; init; }

    /// <summary>An HF CLIPSeg folder (config.json, model.safetensors) whose decoder starts the model (biomed_clipseg_d).</summary>
    public string? ClipSeg { get; init; }

    /// <summary>A vlsm-layout config.json giving every size (as the fixture's); default: BiomedCLIP's real architecture.</summary>
    public string? Config { get; init; }

    /// <summary>A PubMedBERT vocab.txt; default: the one in the BiomedCLIP folder, else the embedded copy.</summary>
    public string? Vocab { get; init; }

    /// <summary>Seed of the randomly initialised decoder (biomed_clipseg) when neither a checkpoint nor a CLIPSeg folder gives one.</summary>
    public long Seed { get; init; } = 42;
}

/// <summary>What <see cref="BiomedClipConverter.Convert"/> wrote.</summary>
public sealed record BiomedClipConversion(string OutDir, int Tensors, string TowersFrom, string DecoderFrom, BiomedClipSegConfig Config);

/// <summary>
/// <c>vlsm convert biomedclip</c>: BiomedCLIP's distributed weights (read with the restricted
/// unpickler, or safetensors) with a decoder (random, CLIPSeg's, or a medvlsm checkpoint's) into a
/// checked BiomedCLIPSeg model folder: config.json, model.safetensors and vocab.txt, written atomically.
/// </summary>
public static class BiomedClipConverter
{
    public const string OpenClipConfigFile = "open_clip_config.json";
    public static readonly IReadOnlyList<string> OpenClipWeightFiles = ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"];
    private const string Towers = "biomedclip.", Decoder = "decoder.", LightningPrefix = "net.";

    /// <summary>The names open_clip's BiomedCLIP config gives its text tower (PubMedBERT, BERT-base uncased).</summary>
    private static readonly string[] PubMedBertNames =
    [
        "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract", "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext",
        "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract", "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext",
    ];

    public static BiomedClipConversion Convert(BiomedClipSources sources, string outDir)
    {
        OutputFolder.CheckNew(outDir, "--out");
        if ((sources.BiomedClip is null) == (sources.Checkpoint is null))
            throw new VlsmException("give --biomedclip DIR (BiomedCLIP as distributed) or --checkpoint FILE (a medvlsm BiomedCLIPSeg checkpoint), one of them.");
        if (sources.BiomedClip is { } dir && !Directory.Exists(dir))
            throw new VlsmException($"--biomedclip {dir}: no such folder; give the folder holding {OpenClipConfigFile} and {OpenClipWeightFiles[0]}.");

        // Everything is read and checked before anything is written: a refused input leaves no trace.
        var clipseg = sources.ClipSeg is { } clipsegDir ? ClipSegLoader.ReadConfig(clipsegDir) : null;
        var config = ReadConfig(sources, clipseg);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        string towersFrom, decoderFrom;
        try
        {
            if (sources.Checkpoint is { } checkpoint)
            {
                foreach (var t in StripLightning(TorchCheckpoint.ReadStateDict(checkpoint))) tensors[t.Name] = t.ToTensor();
                towersFrom = checkpoint;
                decoderFrom = checkpoint;
                if (sources.ClipSeg is { } d)
                {
                    ReplaceDecoder(tensors, d);
                    decoderFrom = d;
                }
            }
            else
            {
                string weights = OpenClipWeights(sources.BiomedClip!);
                foreach (var (name, t) in ReadAny(weights)) tensors[Towers + name] = t;
                towersFrom = weights;
                if (sources.ClipSeg is { } d)
                {
                    ReplaceDecoder(tensors, d);
                    decoderFrom = d;
                }
                else
                {
                    decoderFrom = $"random (HF CLIPSeg initialisation, seed {sources.Seed})";
                }
            }
            foreach (var key in tensors.Keys.Where(BiomedClipSegLoader.IsIgnoredKey).ToList())
            {
                tensors[key].Dispose();
                tensors.Remove(key);
            }
            using (var model = new BiomedClipSegModel(config))
            {
                if (sources.Checkpoint is null && sources.ClipSeg is null)
                {
                    manual_seed(sources.Seed);
                    using var fresh = new ClipSegDecoder(config.Decoder);
                    ClipSegInitializer.InitializeDecoder(fresh, config.Decoder, sources.Seed);
                    foreach (var (name, p) in fresh.state_dict()) tensors[Decoder + name] = p.detach().clone();
                }
                StateDictLoader.CheckStrict(towersFrom, tensors.Keys.ToList(), k => tensors[k].shape, model.state_dict());
            }
            string? vocab = sources.Vocab ?? (sources.BiomedClip is { } b && File.Exists(Path.Combine(b, WordPieceTokenizer.VocabFileName)) ? Path.Combine(b, WordPieceTokenizer.VocabFileName) : null);
            if (vocab is not null) WordPieceTokenizer.FromVocabFile(vocab); // refuse a broken vocabulary before writing

            AtomicFolder.Write(outDir, staging =>
            {
                SafetensorsWriter.Save(Path.Combine(staging, BiomedClipSegLoader.WeightsFile),
                    tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.to(ScalarType.Float32))),
                    new Dictionary<string, string> { ["format"] = "pt", ["towers_from"] = Path.GetFileName(towersFrom), ["decoder_from"] = decoderFrom });
                AtomicFile.WriteAllText(Path.Combine(staging, BiomedClipSegLoader.ConfigFile), config.ToJson());
                if (vocab is not null) AtomicFile.WriteAllBytes(Path.Combine(staging, WordPieceTokenizer.VocabFileName), File.ReadAllBytes(vocab));
                else WordPieceTokenizer.WriteBuiltInVocabulary(staging);
            });
            return new BiomedClipConversion(outDir, tensors.Count, towersFrom, decoderFrom, config);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>The sizes: a vlsm-layout config when given, else BiomedCLIP's real architecture checked against open_clip_config.json; the decoder's from the CLIPSeg folder when given.</summary>
    private static BiomedClipSegConfig ReadConfig(BiomedClipSources sources, ClipSegConfig? clipseg)
    {
        var config = sources.Config is { } path ? BiomedClipSegConfig.FromFile(path) : BiomedClipSegConfig.Real;
        if (sources.BiomedClip is { } dir)
        {
            string openClip = Path.Combine(dir, OpenClipConfigFile);
            config = ConfigJson.ParseFile(openClip, $"not found; BiomedCLIP's folder holds {OpenClipConfigFile} beside its weights.", root => ApplyOpenClip(root, config, sources.Config is not null));
        }
        if (clipseg is not null)
        {
            if (clipseg.ProjectionDim != config.EmbedDim || clipseg.Vision.HiddenSize != config.Vision.Width || clipseg.Vision.PatchSize != config.Vision.PatchSize)
                throw new VlsmException($"--clipseg {sources.ClipSeg}: its decoder reads {clipseg.Vision.HiddenSize}-wide patch-{clipseg.Vision.PatchSize} states and a {clipseg.ProjectionDim}-wide embedding; this BiomedCLIP has width {config.Vision.Width}, patch {config.Vision.PatchSize}, embed_dim {config.EmbedDim}.");
            config = config with { Decoder = BiomedClipSegConfig.DecoderFor(clipseg, config.Vision) };
        }
        return config;
    }

    /// <summary>Checks open_clip's config (model_cfg, preprocess_cfg) against what vlsm builds and takes its embed_dim, context length, mean and std.</summary>
    private static BiomedClipSegConfig ApplyOpenClip(JsonObject root, BiomedClipSegConfig config, bool sizesGiven)
    {
        var model = root["model_cfg"] as JsonObject ?? root;
        var vision = model["vision_cfg"] as JsonObject ?? throw new FormatException("no model_cfg.vision_cfg; not an open_clip config.");
        var text = model["text_cfg"] as JsonObject ?? throw new FormatException("no model_cfg.text_cfg; not an open_clip config.");
        void Expect(JsonObject o, string[] keys, string expected, string where)
        {
            foreach (var key in keys)
                if (o[key]?.GetValue<string>() is { } value && value != expected)
                    throw new FormatException($"{where}.{key} is \"{value}\"; BiomedCLIPSeg is built for \"{expected}\".");
        }
        Expect(vision, ["timm_pool"], "", "vision_cfg");
        Expect(vision, ["timm_proj"], "linear", "vision_cfg");
        Expect(text, ["hf_proj_type", "proj"], "mlp", "text_cfg");
        Expect(text, ["hf_pooler_type", "pooler_type"], "cls_last_hidden_state_pooler", "text_cfg");
        if (!sizesGiven)
        {
            string timm = vision["timm_model_name"]?.GetValue<string>() ?? "";
            if (timm != "vit_base_patch16_224")
                throw new FormatException($"vision_cfg.timm_model_name \"{timm}\": vlsm knows the sizes of vit_base_patch16_224 (BiomedCLIP's); give the sizes with --config FILE (a BiomedCLIPSeg config.json).");
            string hf = text["hf_model_name"]?.GetValue<string>() ?? "";
            if (!PubMedBertNames.Contains(hf))
                throw new FormatException($"text_cfg.hf_model_name \"{hf}\": vlsm knows PubMedBERT's sizes ({PubMedBertNames[0]}); give the sizes with --config FILE (a BiomedCLIPSeg config.json).");
        }
        int embed = BertConfig.Int(model, "embed_dim", config.EmbedDim, "model_cfg");
        if (embed != config.EmbedDim)
            throw new FormatException($"model_cfg.embed_dim {embed} differs from the config's {config.EmbedDim}.");
        var pre = root["preprocess_cfg"] as JsonObject;
        double[]? Triple(string key) => pre?[key] is JsonArray a && a.Count == 3 ? a.Select(v => v!.GetValue<double>()).ToArray() : null;
        return config with
        {
            ContextLength = BertConfig.Int(text, "context_length", config.ContextLength, "text_cfg"),
            ImageMean = Triple("mean") ?? config.ImageMean,
            ImageStd = Triple("std") ?? config.ImageStd,
        };
    }

    private static string OpenClipWeights(string dir) =>
        OpenClipWeightFiles.Select(f => Path.Combine(dir, f)).FirstOrDefault(File.Exists)
        ?? throw new VlsmException($"{dir}: neither {string.Join(" nor ", OpenClipWeightFiles)}; give the folder BiomedCLIP is distributed in.");

    /// <summary>A torch.save state dict (restricted unpickler) or a safetensors file, as tensors by name.</summary>
    private static IEnumerable<(string Name, Tensor Tensor)> ReadAny(string path)
    {
        if (path.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            using var file = SafetensorsFile.Open(path);
            return file.LoadAll().Select(kv => (kv.Key, kv.Value)).ToList();
        }
        return TorchCheckpoint.ReadStateDict(path).Select(t => (t.Name, t.ToTensor())).ToList();
    }

    /// <summary>A medvlsm checkpoint's keys without Lightning's <c>net.</c> (the module's attribute name).</summary>
    private static IReadOnlyList<TorchTensor> StripLightning(IReadOnlyList<TorchTensor> tensors) => TorchCheckpoint.StripPrefix(tensors, LightningPrefix);

    /// <summary>The decoder of an HF CLIPSeg folder's weights (its keys are the same, <c>decoder.*</c>); the rest of CLIPSeg is not used.</summary>
    private static void ReplaceDecoder(Dictionary<string, Tensor> tensors, string clipsegDir)
    {
        foreach (var key in tensors.Keys.Where(k => k.StartsWith(Decoder, StringComparison.Ordinal)).ToList())
        {
            tensors[key].Dispose();
            tensors.Remove(key);
        }
        string path = Path.Combine(clipsegDir, ClipSegLoader.WeightsFile);
        if (!File.Exists(path)) throw new VlsmException($"{path} not found; --clipseg takes an HF CLIPSeg folder (config.json, model.safetensors), e.g. CIDAS/clipseg-rd64-refined.");
        using var file = SafetensorsFile.Open(path);
        var decoderKeys = file.Names.Where(n => n.StartsWith(Decoder, StringComparison.Ordinal)).ToList();
        if (decoderKeys.Count == 0) throw new VlsmException($"{path}: no decoder.* tensors; not a CLIPSegForImageSegmentation checkpoint.");
        foreach (var key in decoderKeys) tensors[key] = file.Load(key, ScalarType.Float32);
    }
}
