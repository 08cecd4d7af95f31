using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vlsm.Models.Cris;

/// <summary>
/// The CLIP constructor arguments of CRIS's backbone (a ModifiedResNet and the text transformer).
/// Like CLIP's <c>build_model</c>, the sizes are read off the weights (<see cref="InferFrom"/>).
/// </summary>
public sealed record CrisClipConfig
{
    public int EmbedDim { get; init; }
    public int ImageResolution { get; init; }
    public IReadOnlyList<int> VisionLayers { get; init; } = [3, 4, 6, 3];
    public int VisionWidth { get; init; }
    public int ContextLength { get; init; } = 77;
    public int VocabSize { get; init; } = 49408;
    public int TransformerWidth { get; init; }
    public int TransformerHeads { get; init; }
    public int TransformerLayers { get; init; }

    /// <summary>Channels of the last ResNet stage, the attention pool's input.</summary>
    public int VisionEmbedDim => VisionWidth * 32;

    /// <summary>CLIP's rule: 64-wide heads in the attention pool.</summary>
    public int VisionHeads => VisionWidth * 32 / 64;

    /// <summary>The side of the attention pool's pretraining grid (image_resolution / 32).</summary>
    public int PoolGrid => ImageResolution / 32;

    /// <summary>CLIP RN50.</summary>
    public static CrisClipConfig Rn50 => new()
    {
        EmbedDim = 1024, ImageResolution = 224, VisionLayers = [3, 4, 6, 3], VisionWidth = 64,
        ContextLength = 77, VocabSize = 49408, TransformerWidth = 512, TransformerHeads = 8, TransformerLayers = 12,
    };

    /// <summary>
    /// The sizes as CLIP's <c>build_model</c> infers them from a ResNet CLIP state dict (keys under
    /// <paramref name="prefix"/>); <paramref name="shapeOf"/> gives a key's shape or null.
    /// </summary>
    /// <exception cref="FormatException">A tensor CLIP's sizes are read from is missing or malformed.</exception>
    public static CrisClipConfig InferFrom(IEnumerable<string> keys, Func<string, long[]?> shapeOf, string prefix = "backbone.")
    {
        var names = keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..]).ToList();
        long[] Shape(string key, int rank) =>
            shapeOf(prefix + key) is { } s && s.Length == rank
                ? s
                : throw new FormatException($"no {rank}-d tensor {prefix}{key}; the weights are not a CRIS (CLIP ResNet) state dict.");
        int Distinct(string start) =>
            names.Where(k => k.StartsWith(start, StringComparison.Ordinal)).Select(k => k.Split('.')[start.Count(c => c == '.')]).Distinct().Count();

        var layers = Enumerable.Range(1, 4).Select(b => Distinct($"visual.layer{b}.")).ToArray();
        if (layers.Any(n => n == 0)) throw new FormatException($"no {prefix}visual.layer1..4 blocks; the weights are not a CRIS (CLIP ResNet) state dict.");
        long pool = Shape("visual.attnpool.positional_embedding", 2)[0];
        int grid = (int)Math.Round(Math.Sqrt(pool - 1));
        if (grid * grid + 1 != pool) throw new FormatException($"{prefix}visual.attnpool.positional_embedding has {pool} rows, not a square grid plus one.");
        int width = (int)Shape("ln_final.weight", 1)[0];
        return new CrisClipConfig
        {
            EmbedDim = (int)Shape("text_projection", 2)[1],
            ImageResolution = grid * 32,
            VisionLayers = layers,
            VisionWidth = (int)Shape("visual.layer1.0.conv1.weight", 4)[0],
            ContextLength = (int)Shape("positional_embedding", 2)[0],
            VocabSize = (int)Shape("token_embedding.weight", 2)[0],
            TransformerWidth = width,
            TransformerHeads = width / 64,
            TransformerLayers = Distinct("transformer.resblocks."),
        };
    }
}

/// <summary>Whether the decoder's cross-attention masks padded words.</summary>
public enum CrisPadMask
{
    /// <summary>As the reference: positions whose id is 0 (padding is 49407, so nothing but "!" tokens is masked).</summary>
    Reference,

    /// <summary>Positions after the end token: the real padding.</summary>
    Fixed,
}

/// <summary>
/// A CRIS model: backbone sizes (<see cref="Clip"/>) and the neck, decoder and projector arguments
/// of the reference's <c>CRIS</c> constructor, plus the CLIP image normalisation. The folder format
/// is ours (<c>config.json</c> with <c>clip</c> and <c>cris</c> objects); CRIS has no HF format.
/// </summary>
public sealed record CrisConfig
{
    public static readonly double[] ClipMean = [0.48145466, 0.4578275, 0.40821073];
    public static readonly double[] ClipStd = [0.26862954, 0.26130258, 0.27577711];

    public required CrisClipConfig Clip { get; init; }
    public int WordLen { get; init; } = 77;
    public IReadOnlyList<int> FpnIn { get; init; } = [512, 1024, 1024];
    public IReadOnlyList<int> FpnOut { get; init; } = [256, 512, 1024];
    public int VisDim { get; init; } = 512;
    public int WordDim { get; init; } = 1024;
    public int NumLayers { get; init; } = 3;
    public int NumHead { get; init; } = 8;
    public int DimFfn { get; init; } = 2048;
    public double Dropout { get; init; } = 0.2;
    public int ImgSize { get; init; } = 416;
    public bool FreezeEncoder { get; init; }
    public IReadOnlyList<double> ImageMean { get; init; } = ClipMean;
    public IReadOnlyList<double> ImageStd { get; init; } = ClipStd;

    /// <summary>The benchmarks' CRIS (vlsm-adapter <c>configs/model/cris.yaml</c>): CLIP RN50 at 416 px.</summary>
    public static CrisConfig Rn50 => new() { Clip = CrisClipConfig.Rn50 };

    /// <summary>The input sides vlsm runs CRIS at: at least one stride-32 feature cell, and at most 2048 px (memory and activations stay within a CPU's reach).</summary>
    public const int MinImgSize = 32, MaxImgSize = 2048;

    /// <summary>Kernel size of the projector's dynamic convolution.</summary>
    public const int KernelSize = 3;

    /// <summary>The sizes trained weights depend on; checkpoint files record it.</summary>
    public string Fingerprint =>
        $"cris;clip=e{Clip.EmbedDim}r{Clip.ImageResolution}l{string.Join(",", Clip.VisionLayers)}w{Clip.VisionWidth}t{Clip.TransformerWidth}x{Clip.TransformerLayers}h{Clip.TransformerHeads};" +
        $"fpn={string.Join(",", FpnIn)}>{string.Join(",", FpnOut)};vis={VisDim};word={WordDim};dec={NumLayers}h{NumHead}f{DimFfn}";


    /// <summary>The sizes the <c>cris</c> object gives the neck, decoder and projector tensors, checked against the weights before building (the backbone's are read off the weights).</summary>
    public (IEnumerable<ShapeClaim> Shapes, IEnumerable<CountClaim> Counts) WeightClaims()
    {
        ShapeClaim[] shapes =
        [
            new("cris.fpn_in[2]", FpnIn[2], "neck.f1_v_proj.0.weight", [FpnOut[2], FpnIn[2], 1, 1]),
            new("cris.fpn_in[1]", FpnIn[1], "neck.f2_v_proj.0.weight", [FpnOut[1], FpnIn[1], 3, 3]),
            new("cris.fpn_in[0]", FpnIn[0], "neck.f3_v_proj.0.weight", [FpnOut[0], FpnIn[0], 3, 3]),
            new("cris.word_dim", WordDim, "neck.txt_proj.0.weight", [FpnOut[2], WordDim]),
            new("cris.vis_dim", VisDim, "decoder.norm.weight", [VisDim]),
            new("cris.dim_ffn", DimFfn, "decoder.layers.0.ffn.0.weight", [DimFfn, VisDim]),
            new("cris.vis_dim", VisDim, "proj.vis.4.weight", [VisDim / 2, VisDim / 2, 1, 1]),
        ];
        CountClaim[] counts = [new("cris.num_layers", NumLayers, "decoder.layers.")];
        return (shapes, counts);
    }

    /// <exception cref="VlsmException">The file is missing, not JSON, or has a malformed or inconsistent field (named).</exception>
    public static CrisConfig FromFile(string path) => Read(path).Config;

    /// <summary>The config, and whether the file gives the backbone sizes (a <c>clip</c> object) for the weights to be checked against.</summary>
    public static (CrisConfig Config, bool HasClip) Read(string path) =>
        ConfigJson.ParseFile(path, "CRIS config not found; a CRIS folder needs config.json with \"clip\" and \"cris\" objects (see vlsm convert cris).",
            obj => obj["cris"] is JsonObject
                ? (Parse(obj), obj["clip"] is JsonObject)
                : throw new FormatException("no \"cris\" object; not a CRIS config."));

    /// <summary>Parses the config; a missing <c>clip</c> object gives RN50 sizes (the weights' sizes replace them on loading).</summary>
    public static CrisConfig Parse(JsonObject obj)
    {
        var c = (JsonObject)obj["cris"]!;
        var clip = obj["clip"] switch
        {
            null => CrisClipConfig.Rn50,
            JsonObject o => ParseClip(o),
            var other => throw new FormatException($"clip must be an object of the CLIP backbone's sizes (embed_dim, vision_width, vision_layers, …), not {Vlsm.IO.Printable.Clip(other.ToJsonString())}; fix it, or leave it out to take the sizes from the weights."),
        };
        var d = new CrisConfig { Clip = clip };
        if (c["intermediate"]?.GetValue<bool>() == true)
            throw new FormatException("cris.intermediate is true; the reference segmenter only runs with intermediate false.");
        var config = d with
        {
            WordLen = Int(c, "word_len", d.WordLen, "cris"),
            FpnIn = Ints(c, "fpn_in", 3, d.FpnIn, "cris"),
            FpnOut = Ints(c, "fpn_out", 3, d.FpnOut, "cris"),
            VisDim = Int(c, "vis_dim", d.VisDim, "cris"),
            WordDim = Int(c, "word_dim", d.WordDim, "cris"),
            NumLayers = Int(c, "num_layers", d.NumLayers, "cris"),
            NumHead = Int(c, "num_head", d.NumHead, "cris"),
            DimFfn = Int(c, "dim_ffn", d.DimFfn, "cris"),
            Dropout = c["dropout"]?.GetValue<double>() ?? d.Dropout,
            ImgSize = Int(c, "img_size", d.ImgSize, "cris"),
            FreezeEncoder = c["freeze_encoder"]?.GetValue<bool>() ?? d.FreezeEncoder,
            ImageMean = Floats(obj, "image_mean", d.ImageMean),
            ImageStd = Floats(obj, "image_std", d.ImageStd),
        };
        config.Validate();
        return config;
    }

    private static CrisClipConfig ParseClip(JsonObject o)
    {
        var d = CrisClipConfig.Rn50;
        int width = Int(o, "transformer_width", d.TransformerWidth, "clip");
        return new CrisClipConfig
        {
            EmbedDim = Int(o, "embed_dim", d.EmbedDim, "clip"),
            ImageResolution = Int(o, "image_resolution", d.ImageResolution, "clip"),
            VisionLayers = o["vision_layers"] is JsonArray ? Ints(o, "vision_layers", 4, d.VisionLayers, "clip")
                : throw new FormatException("clip.vision_layers must be a list of 4 block counts (a ResNet backbone); ViT CLIP backbones are not CRIS's."),
            VisionWidth = Int(o, "vision_width", d.VisionWidth, "clip"),
            ContextLength = Int(o, "context_length", d.ContextLength, "clip"),
            VocabSize = Int(o, "vocab_size", d.VocabSize, "clip"),
            TransformerWidth = width,
            TransformerHeads = Int(o, "transformer_heads", width / 64, "clip"),
            TransformerLayers = Int(o, "transformer_layers", d.TransformerLayers, "clip"),
        };
    }

    /// <summary>
    /// This config with the backbone sizes the weights have (CLIP's <c>build_model</c> rule). A
    /// <c>clip</c> size of the file that disagrees with the weights is an error naming it.
    /// </summary>
    public CrisConfig WithClipOf(CrisClipConfig inferred, bool configHasClip, string configPath)
    {
        if (configHasClip)
        {
            // Each value is read off one tensor (or a group of keys); the message names it.
            void Same(string field, object ours, object theirs, string source)
            {
                if (!Equals(ours, theirs))
                    throw new VlsmException($"{configPath}: clip.{field} is {ours}, but the weights have {theirs} (from {source}).");
            }
            Same("embed_dim", Clip.EmbedDim, inferred.EmbedDim, "backbone.text_projection");
            Same("image_resolution", Clip.ImageResolution, inferred.ImageResolution, "backbone.visual.attnpool.positional_embedding");
            Same("vision_layers", string.Join(",", Clip.VisionLayers), string.Join(",", inferred.VisionLayers), "the backbone.visual.layer1..4 blocks");
            Same("vision_width", Clip.VisionWidth, inferred.VisionWidth, "backbone.visual.layer1.0.conv1.weight");
            Same("context_length", Clip.ContextLength, inferred.ContextLength, "backbone.positional_embedding");
            Same("vocab_size", Clip.VocabSize, inferred.VocabSize, "backbone.token_embedding.weight");
            Same("transformer_width", Clip.TransformerWidth, inferred.TransformerWidth, "backbone.ln_final.weight");
            Same("transformer_heads", Clip.TransformerHeads, inferred.TransformerHeads, "backbone.ln_final.weight");
            Same("transformer_layers", Clip.TransformerLayers, inferred.TransformerLayers, "the backbone.transformer.resblocks blocks");
        }
        var config = this with { Clip = inferred };
        try
        {
            config.Validate();
        }
        catch (FormatException e)
        {
            throw new VlsmException($"{configPath}: {e.Message}", e);
        }
        return config;
    }

    private static int Int(JsonObject o, string key, int fallback, string section) => ConfigJson.Int(o, key, fallback, $"{section}.{key}");

    private static int[] Ints(JsonObject o, string key, int count, IReadOnlyList<int> fallback, string section)
    {
        var node = o[key];
        if (node is null) return fallback.ToArray();
        if (node is not JsonArray a || a.Count != count || a.Any(n => n is not JsonValue v || !v.TryGetValue<int>(out int i) || Math.Abs((long)i) > ConfigJson.MaxMagnitude))
            throw new FormatException($"{section}.{key} must be a list of {count} integers (each at most {ConfigJson.MaxMagnitude:N0}), got {Vlsm.IO.Printable.Clip(node.ToJsonString())}.");
        return a.Select(n => n!.GetValue<int>()).ToArray();
    }

    private static double[] Floats(JsonObject o, string key, IReadOnlyList<double> fallback)
    {
        var node = o[key];
        if (node is null) return fallback.ToArray();
        if (node is not JsonArray a || a.Count != 3 || a.Any(n => n is not JsonValue v || !v.TryGetValue<double>(out _)))
            throw new FormatException($"{key} must be a list of 3 numbers (R, G, B), got {node.ToJsonString()}.");
        return a.Select(n => n!.GetValue<double>()).ToArray();
    }

    /// <summary>The consistency the forward pass needs, so a bad config fails here with the field named, not inside a convolution.</summary>
    private void Validate()
    {
        void Check(bool ok, string message)
        {
            if (!ok) throw new FormatException(message);
        }
        var c = Clip;
        Check(c.VisionLayers.Count == 4 && c.VisionLayers.All(n => n > 0), $"clip.vision_layers [{string.Join(", ", c.VisionLayers)}] must be 4 positive block counts.");
        Check(c.VisionWidth > 0 && c.VisionWidth % 2 == 0, $"clip.vision_width {c.VisionWidth} must be a positive even number.");
        Check(c.ImageResolution >= 32 && c.ImageResolution % 32 == 0, $"clip.image_resolution {c.ImageResolution} must be a positive multiple of 32.");
        Check(c.TransformerWidth > 0 && c.TransformerHeads > 0 && c.TransformerWidth % c.TransformerHeads == 0,
            $"clip.transformer_width {c.TransformerWidth} must be a positive multiple of clip.transformer_heads {c.TransformerHeads}.");
        Check(c.TransformerLayers > 0 && c.EmbedDim > 0 && c.VocabSize > 0, "clip.transformer_layers, clip.embed_dim and clip.vocab_size must be positive.");
        Check(WordLen > 0 && WordLen <= c.ContextLength, $"cris.word_len {WordLen} must be within 1..clip.context_length ({c.ContextLength}).");
        Check(FpnIn[0] == c.VisionWidth * 8, $"cris.fpn_in[0] {FpnIn[0]} must equal the stride-8 channels of the backbone (8 x vision_width = {c.VisionWidth * 8}).");
        Check(FpnIn[1] == c.VisionWidth * 16, $"cris.fpn_in[1] {FpnIn[1]} must equal the stride-16 channels of the backbone (16 x vision_width = {c.VisionWidth * 16}).");
        Check(FpnIn[2] == c.EmbedDim, $"cris.fpn_in[2] {FpnIn[2]} must equal the attention pool's output, clip.embed_dim {c.EmbedDim}.");
        Check(FpnOut.All(n => n > 0), $"cris.fpn_out [{string.Join(", ", FpnOut)}] must be positive.");
        Check(FpnOut[1] == VisDim, $"cris.fpn_out[1] {FpnOut[1]} must equal cris.vis_dim {VisDim} (the neck's output is the decoder's input).");
        Check(WordDim == c.EmbedDim, $"cris.word_dim {WordDim} must equal clip.embed_dim {c.EmbedDim} (the projected sentence state).");
        Check(c.TransformerWidth == VisDim, $"clip.transformer_width {c.TransformerWidth} must equal cris.vis_dim {VisDim} (words are the decoder's keys).");
        Check(VisDim % 4 == 0 && NumHead > 0 && VisDim % NumHead == 0, $"cris.vis_dim {VisDim} must be a multiple of 4 and of cris.num_head {NumHead}.");
        Check(NumLayers > 0 && DimFfn > 0, "cris.num_layers and cris.dim_ffn must be positive.");
        Check(Dropout is >= 0 and < 1, $"cris.dropout {Dropout} must be within [0, 1).");
        Check(ImgSize is >= MinImgSize and <= MaxImgSize, $"cris.img_size {ImgSize} must be within {MinImgSize}..{MaxImgSize} pixels (the reference trains at 416).");
        Check(ImageStd.All(s => s > 0), "image_std must be positive.");
    }

    /// <summary>The folder's <c>config.json</c> text (the format of <c>shared/parity/cris-*/config.json</c>).</summary>
    public string ToJson()
    {
        static JsonArray Array<T>(IEnumerable<T> items) => new(items.Select(i => JsonValue.Create(i)).ToArray<JsonNode?>());
        var root = new JsonObject
        {
            ["model_type"] = "cris",
            ["clip"] = new JsonObject
            {
                ["embed_dim"] = Clip.EmbedDim, ["image_resolution"] = Clip.ImageResolution, ["vision_layers"] = Array(Clip.VisionLayers),
                ["vision_width"] = Clip.VisionWidth, ["vision_patch_size"] = null, ["context_length"] = Clip.ContextLength, ["txt_length"] = WordLen,
                ["vocab_size"] = Clip.VocabSize, ["transformer_width"] = Clip.TransformerWidth, ["transformer_heads"] = Clip.TransformerHeads,
                ["transformer_layers"] = Clip.TransformerLayers,
            },
            ["cris"] = new JsonObject
            {
                ["word_len"] = WordLen, ["fpn_in"] = Array(FpnIn), ["fpn_out"] = Array(FpnOut), ["vis_dim"] = VisDim, ["word_dim"] = WordDim,
                ["num_layers"] = NumLayers, ["num_head"] = NumHead, ["dim_ffn"] = DimFfn, ["dropout"] = Dropout, ["intermediate"] = false,
                ["img_size"] = ImgSize, ["freeze_encoder"] = FreezeEncoder,
            },
            ["image_mean"] = Array(ImageMean),
            ["image_std"] = Array(ImageStd),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
