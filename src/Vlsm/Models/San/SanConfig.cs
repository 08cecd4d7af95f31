using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vlsm.Models.San;

/// <summary>
/// open_clip's <c>CLIP</c> as SAN builds it (<c>open_clip_cfg</c>): a ViT image tower and a text
/// tower with OpenAI's key names. The real model is ViT-B/16 with the OpenAI weights.
/// </summary>
public sealed record SanClipConfig(
    int EmbedDim,
    int ImageSize,
    int PatchSize,
    int VisionWidth,
    int VisionLayers,
    int VisionHeadWidth,
    double VisionMlpRatio,
    int ContextLength,
    int VocabSize,
    int TextWidth,
    int TextHeads,
    int TextLayers,
    double TextMlpRatio,
    bool QuickGelu)
{
    public int VisionHeads => VisionWidth / VisionHeadWidth;

    /// <summary>The pretraining grid (image_size / patch_size) the positional embedding is stored at.</summary>
    public int Grid => ImageSize / PatchSize;

    public static SanClipConfig VitB16 { get; } = new(512, 224, 16, 768, 12, 64, 4.0, 77, 49408, 512, 8, 12, 4.0, true);
}

/// <summary>The side network's timm ViT (<c>vit_w240n6d8_patch16</c> in the real model) without its cls token and final norm.</summary>
public sealed record SanSideVitConfig(int PatchSize, int EmbedDim, int Depth, int NumHeads, double MlpRatio, bool QkvBias, double LayerNormEps, int ImgSize)
{
    public int Grid => ImgSize / PatchSize;
}

/// <summary>The side network's <c>MLPMaskDecoder</c>.</summary>
public sealed record SanMaskDecoderConfig(int InChannels, int TotalHeads, int TotalLayers, int EmbedChannels, int MlpChannels, int MlpNumLayers, bool RescaleAttnBias);

/// <summary>
/// SAN as vlsm-adapter's <c>configs/model/san.yaml</c> builds it: <c>net:</c>'s constructor
/// arguments, plus the input size and normalisation of <c>configs/experiment/san.yaml</c>. The
/// folder format (config.json with <c>model_type: san</c> and a <c>net</c> object mirroring the yaml)
/// is the one of <c>shared/parity/san-tiny</c>.
/// </summary>
public sealed record SanConfig(
    SanClipConfig Clip,
    int LastLayerIdx,
    IReadOnlyList<string> ExtractorFrozenExclude,
    int FirstLayerIdx,
    IReadOnlyList<string> RecHeadFrozenExclude,
    int SosTokenNum,
    string DownsampleMethod,
    int NumQueries,
    SanSideVitConfig Side,
    IReadOnlyDictionary<int, (int In, int Out)> FusionLayers,
    IReadOnlyDictionary<int, int> FusionMap,
    IReadOnlyList<int> DeepSupervisionIdxs,
    SanMaskDecoderConfig MaskDecoder,
    int SizeDivisibility,
    double ClipResolution,
    int ImageHeight,
    int ImageWidth,
    IReadOnlyList<double> ImageMean,
    IReadOnlyList<double> ImageStd)
{
    public const string ModelType = "san";

    /// <summary>The sizes this config gives CLIP's and the side network's tensors, checked against the weights' header before building.</summary>
    public (IEnumerable<ShapeClaim> Shapes, IEnumerable<CountClaim> Counts) WeightClaims()
    {
        const string V = "net.open_clip_cfg.vision_cfg.", T = "net.open_clip_cfg.text_cfg.", S = "net.side_adapter_network.";
        var c = Clip;
        long w = c.VisionWidth, tw = c.TextWidth, grid = c.ImageSize / c.PatchSize;
        ShapeClaim[] shapes =
        [
            new(V + "width", w, "clip_model.visual.class_embedding", [w]),
            new(V + "patch_size", c.PatchSize, "clip_model.visual.conv1.weight", [w, 3, c.PatchSize, c.PatchSize]),
            new(V + "image_size", c.ImageSize, "clip_model.visual.positional_embedding", [grid * grid + 1, w]),
            new("net.open_clip_cfg.embed_dim", c.EmbedDim, "clip_model.visual.proj", [w, c.EmbedDim]),
            new(T + "width", tw, "clip_model.ln_final.weight", [tw]),
            new(T + "vocab_size", c.VocabSize, "clip_model.token_embedding.weight", [c.VocabSize, tw]),
            new(T + "context_length", c.ContextLength, "clip_model.positional_embedding", [c.ContextLength, tw]),
            new("net.open_clip_cfg.embed_dim", c.EmbedDim, "clip_model.text_projection", [tw, c.EmbedDim]),
            new(S + "vit_model.embed_dim", Side.EmbedDim, "side_adapter_network.vit_model.patch_embed.proj.weight", [Side.EmbedDim, 3, Side.PatchSize, Side.PatchSize]),
            new(S + "num_queries", NumQueries, "side_adapter_network.query_embed", [1, NumQueries, Side.EmbedDim]),
        ];
        CountClaim[] counts =
        [
            new(T + "layers", c.TextLayers, "clip_model.transformer.resblocks."),
            new(S + "vit_model.depth", Side.Depth, "side_adapter_network.vit_model.blocks."),
        ];
        return (shapes, counts);
    }

    public static readonly IReadOnlyList<string> DownsampleMethods = ["max", "avg", "bilinear", "bicubic", "nearest"];

    private static readonly double[] ClipMean = [0.48145466, 0.4578275, 0.40821073];
    private static readonly double[] ClipStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>configs/model/san.yaml with configs/experiment/san.yaml's 640-px input.</summary>
    public static SanConfig VitB16 { get; } = new(
        SanClipConfig.VitB16, 9, ["positional_embedding"], 9, [], 100, "max", 100,
        new SanSideVitConfig(16, 240, 8, 6, 4.0, true, 1e-6, 640),
        new Dictionary<int, (int, int)> { [0] = (768, 240), [3] = (768, 240), [6] = (768, 240), [9] = (768, 240) },
        new Dictionary<int, int> { [0] = 0, [3] = 1, [6] = 2, [9] = 3 },
        [7, 8],
        new SanMaskDecoderConfig(240, 12, 1, 256, 256, 3, true),
        32, 0.5, 640, 640, ClipMean, ClipStd);

    /// <summary>The side block whose output the mask decoder reads: the last deep-supervision index (the reference keeps <c>features[-1]</c>).</summary>
    public int DecodeIndex => DeepSupervisionIdxs.Where(i => i >= 1 && i <= Side.Depth).Max();

    /// <summary>The side indices whose fusion takes effect on the decoded features (0..DecodeIndex).</summary>
    public IEnumerable<int> ActiveFusions => FusionMap.Keys.Where(i => i <= DecodeIndex).Order();

    /// <summary>The CLIP features (0 = after ln_pre, k = after block k-1) the side network and the rec head read.</summary>
    public IReadOnlySet<int> NeededClipFeatures => ActiveFusions.Select(i => FusionMap[i]).Append(FirstLayerIdx).ToHashSet();

    /// <summary>CLIP visual blocks the rec head runs (first_layer_idx to the last).</summary>
    public int RecHeadBlocks => Clip.VisionLayers - FirstLayerIdx;

    /// <summary>The architecture in one line; trained-weights files record it so they are applied only to the same shapes.</summary>
    public string Fingerprint => string.Create(CultureInfo.InvariantCulture,
        $"san clip {Clip.VisionWidth}x{Clip.VisionLayers}/p{Clip.PatchSize}/i{Clip.ImageSize} text {Clip.TextWidth}x{Clip.TextLayers} embed {Clip.EmbedDim}; "
        + $"side {Side.EmbedDim}x{Side.Depth}/h{Side.NumHeads}/p{Side.PatchSize}/i{Side.ImgSize} q{NumQueries}; "
        + $"fusion {string.Join(",", FusionLayers.Keys.Order().Select(k => $"{k}:{FusionLayers[k].In}>{FusionLayers[k].Out}"))}; "
        + $"decoder {MaskDecoder.EmbedChannels}/{MaskDecoder.MlpChannels}x{MaskDecoder.MlpNumLayers} heads {MaskDecoder.TotalHeads} layers {MaskDecoder.TotalLayers}");

    /// <summary>Reads a SAN config.json.</summary>
    /// <exception cref="VlsmException">The file is missing or unreadable, or a field is absent, mistyped or one SAN cannot run with (named).</exception>
    public static SanConfig Read(string path) =>
        ConfigJson.ParseFile(path, "not found; a SAN folder needs config.json with a \"net\" object (see shared/parity/san-tiny).", Parse);

    internal static SanConfig Parse(JsonObject root)
    {
        var net = Obj(root, "net", "");
        var clipCfg = Obj(net, "open_clip_cfg", "net.");
        var vision = Obj(clipCfg, "vision_cfg", "net.open_clip_cfg.");
        var text = Obj(clipCfg, "text_cfg", "net.open_clip_cfg.");
        const string v = "net.open_clip_cfg.vision_cfg.", t = "net.open_clip_cfg.text_cfg.";
        var clip = new SanClipConfig(
            Int(clipCfg, "embed_dim", "net.open_clip_cfg."),
            Int(vision, "image_size", v), Int(vision, "patch_size", v), Int(vision, "width", v), Int(vision, "layers", v),
            IntOr(vision, "head_width", 64, v), Dbl(vision, "mlp_ratio", 4.0, v),
            IntOr(text, "context_length", 77, t), IntOr(text, "vocab_size", 49408, t), Int(text, "width", t), Int(text, "heads", t), Int(text, "layers", t),
            Dbl(text, "mlp_ratio", 4.0, t), Bool(clipCfg, "quick_gelu", false, "net.open_clip_cfg."));

        var extractor = Obj(net, "clip_visual_extractor_cfg", "net.");
        var rec = Obj(net, "clip_rec_head_cfg", "net.");
        const string e = "net.clip_visual_extractor_cfg.", r = "net.clip_rec_head_cfg.";
        string sosFormat = Str(rec, "sos_token_format", "cls_token", r);
        if (sosFormat != "cls_token")
            throw new FormatException($"{r}sos_token_format \"{sosFormat}\" is not supported; the benchmark's SAN uses cls_token (learnable sos tokens are not implemented).");
        if (Bool(rec, "cross_attn", true, r))
            throw new FormatException($"{r}cross_attn true is not supported; the benchmark's SAN runs the rec head with cross_attn false.");

        var sideCfg = Obj(net, "side_adapter_network", "net.");
        const string s = "net.side_adapter_network.", sv = "net.side_adapter_network.vit_model.", md = "net.side_adapter_network.mask_decoder.";
        var vit = Obj(sideCfg, "vit_model", s);
        var side = new SanSideVitConfig(Int(vit, "patch_size", sv), Int(vit, "embed_dim", sv), Int(vit, "depth", sv), Int(vit, "num_heads", sv),
            Dbl(vit, "mlp_ratio", 4.0, sv), Bool(vit, "qkv_bias", true, sv), Dbl(vit, "layer_norm_eps", 1e-6, sv), Int(vit, "img_size", sv));

        var fusionLayers = new Dictionary<int, (int, int)>();
        foreach (var (name, node) in Obj(sideCfg, "fusion_layers", s))
        {
            string label = $"{s}fusion_layers.{name}.";
            if (!name.StartsWith("layer_", StringComparison.Ordinal) || !int.TryParse(name.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
                throw new FormatException($"{s}fusion_layers: key \"{name}\" is not layer_N.");
            var layer = node as JsonObject ?? throw new FormatException($"{label[..^1]} must be an object.");
            string type = Str(layer, "fusion_type", "add", label);
            if (type != "add") throw new FormatException($"{label}fusion_type \"{type}\" is not supported; SAN's fusion layers are \"add\".");
            fusionLayers[index] = (Int(layer, "in_channels", label), Int(layer, "out_channels", label));
        }
        var fusionMap = new Dictionary<int, int>();
        foreach (var (key, node) in Obj(sideCfg, "fusion_map", s))
        {
            if (!int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out int sideIndex))
                throw new FormatException($"{s}fusion_map: key \"{key}\" is not a side block index.");
            fusionMap[sideIndex] = IntValue(node, $"{s}fusion_map.{key}");
        }
        var decoder = Obj(sideCfg, "mask_decoder", s);
        var maskDecoder = new SanMaskDecoderConfig(Int(decoder, "in_channels", md), IntOr(decoder, "total_heads", 1, md), IntOr(decoder, "total_layers", 1, md),
            IntOr(decoder, "embed_channels", 256, md), IntOr(decoder, "mlp_channels", 256, md), IntOr(decoder, "mlp_num_layers", 3, md),
            Bool(decoder, "rescale_attn_bias", false, md));

        if (!Bool(net, "asymetric_input", true, "net."))
            throw new FormatException("net.asymetric_input false is not supported: the reference then never defines the CLIP input and fails (NameError); SAN runs with true.");
        var size = root["image_size"] is JsonArray sizes ? sizes.Select((n, i) => IntValue(n, $"image_size[{i}]")).ToArray() : [side.ImgSize, side.ImgSize];
        if (size.Length != 2) throw new FormatException($"image_size must be [height, width], got {size.Length} values.");

        var config = new SanConfig(clip,
            Int(extractor, "last_layer_idx", e), Strings(extractor, "frozen_exclude", e),
            Int(rec, "first_layer_idx", r), Strings(rec, "frozen_exclude", r), Int(rec, "sos_token_num", r), Str(rec, "downsample_method", "bilinear", r),
            Int(sideCfg, "num_queries", s), side, fusionLayers, fusionMap, Ints(sideCfg, "deep_supervision_idxs", s), maskDecoder,
            IntOr(net, "size_divisibility", 32, "net."), Dbl(net, "clip_resolution", 0.5, "net."), size[0], size[1],
            Doubles(root, "image_mean", ClipMean), Doubles(root, "image_std", ClipStd));
        config.Check();
        return config;
    }

    /// <summary>The combinations the reference cannot run (or runs in a way not implemented here), named.</summary>
    /// <exception cref="FormatException">A value is out of range or inconsistent with another.</exception>
    public void Check()
    {
        void Require(bool ok, string message)
        {
            if (!ok) throw new FormatException(message);
        }
        var c = Clip;
        Require(c.EmbedDim > 0 && c.VisionWidth > 0 && c.TextWidth > 0 && c.VisionLayers > 0 && c.TextLayers > 0 && c.PatchSize > 0,
            "net.open_clip_cfg: widths, layers and patch_size must be positive.");
        Require(c.VisionHeadWidth > 0 && c.VisionWidth % c.VisionHeadWidth == 0, $"net.open_clip_cfg.vision_cfg: width {c.VisionWidth} is not a multiple of head_width {c.VisionHeadWidth}.");
        Require(c.TextHeads > 0 && c.TextWidth % c.TextHeads == 0, $"net.open_clip_cfg.text_cfg: width {c.TextWidth} is not a multiple of heads {c.TextHeads}.");
        Require(c.ImageSize % c.PatchSize == 0, $"net.open_clip_cfg.vision_cfg: image_size {c.ImageSize} is not a multiple of patch_size {c.PatchSize}.");
        Require(c.ContextLength > 0 && c.VocabSize > 0, "net.open_clip_cfg.text_cfg: context_length and vocab_size must be positive.");
        Require(LastLayerIdx >= 0 && LastLayerIdx <= c.VisionLayers, $"net.clip_visual_extractor_cfg.last_layer_idx {LastLayerIdx} must be within 0..{c.VisionLayers} (the CLIP layers).");
        Require(FirstLayerIdx >= 0 && FirstLayerIdx < c.VisionLayers, $"net.clip_rec_head_cfg.first_layer_idx {FirstLayerIdx} must be within 0..{c.VisionLayers - 1}.");
        Require(FirstLayerIdx <= LastLayerIdx, $"net.clip_rec_head_cfg.first_layer_idx {FirstLayerIdx} reads CLIP feature {FirstLayerIdx}, which the extractor (last_layer_idx {LastLayerIdx}) does not produce.");
        Require(SosTokenNum == NumQueries, $"net.clip_rec_head_cfg.sos_token_num {SosTokenNum} must equal net.side_adapter_network.num_queries {NumQueries}.");
        Require(NumQueries > 0, "net.side_adapter_network.num_queries must be positive.");
        Require(DownsampleMethods.Contains(DownsampleMethod), $"net.clip_rec_head_cfg.downsample_method \"{DownsampleMethod}\" is not one of {string.Join(", ", DownsampleMethods)}.");
        var sv = Side;
        Require(sv.EmbedDim > 0 && sv.Depth > 0 && sv.NumHeads > 0 && sv.EmbedDim % sv.NumHeads == 0,
            $"net.side_adapter_network.vit_model: embed_dim {sv.EmbedDim} must be a positive multiple of num_heads {sv.NumHeads}, depth positive.");
        Require(sv.PatchSize > 0 && sv.ImgSize % sv.PatchSize == 0, $"net.side_adapter_network.vit_model: img_size {sv.ImgSize} is not a multiple of patch_size {sv.PatchSize}.");
        Require(DeepSupervisionIdxs.Any(i => i >= 1 && i <= sv.Depth),
            $"net.side_adapter_network.deep_supervision_idxs [{string.Join(", ", DeepSupervisionIdxs)}] names no side block 1..{sv.Depth}; the decoder would have no features.");
        foreach (var (index, source) in FusionMap)
        {
            if (index > sv.Depth) continue; // never reached, as in the reference
            Require(FusionLayers.ContainsKey(index), $"net.side_adapter_network.fusion_map fuses into side block {index}, but fusion_layers has no layer_{index}.");
            Require(source >= 0 && source <= LastLayerIdx, $"net.side_adapter_network.fusion_map.{index} reads CLIP feature {source}; the extractor gives 0..{LastLayerIdx}.");
            Require(FusionLayers[index].In == c.VisionWidth && FusionLayers[index].Out == sv.EmbedDim,
                $"net.side_adapter_network.fusion_layers.layer_{index} maps {FusionLayers[index].In} -> {FusionLayers[index].Out} channels; CLIP width is {c.VisionWidth}, side width {sv.EmbedDim}.");
        }
        foreach (var (index, (inC, outC)) in FusionLayers)
            Require(inC > 0 && outC > 0, $"net.side_adapter_network.fusion_layers.layer_{index}: channels must be positive.");
        var m = MaskDecoder;
        Require(m.InChannels == sv.EmbedDim, $"net.side_adapter_network.mask_decoder.in_channels {m.InChannels} must equal the side width {sv.EmbedDim}.");
        Require(m.TotalHeads == 1 || m.TotalHeads == c.VisionHeads, $"net.side_adapter_network.mask_decoder.total_heads {m.TotalHeads} must be 1 or the CLIP heads ({c.VisionHeads}).");
        Require(m.TotalLayers == 1 || m.TotalLayers == RecHeadBlocks,
            $"net.side_adapter_network.mask_decoder.total_layers {m.TotalLayers} must be 1 or the rec head's blocks ({RecHeadBlocks}).");
        Require(m.EmbedChannels > 0 && m.MlpChannels > 0 && m.MlpNumLayers >= 1, "net.side_adapter_network.mask_decoder: channels and mlp_num_layers must be positive.");
        Require(ClipResolution > 0 && double.IsFinite(ClipResolution), $"net.clip_resolution must be positive, got {ClipResolution}.");
        Require(ImageHeight > 0 && ImageWidth > 0, "image_size must be positive.");
        Require(ImageMean.Count == 3 && ImageStd.Count == 3 && ImageStd.All(x => x > 0), "image_mean and image_std need 3 values each, std positive.");
    }

    /// <summary>config.json as vlsm writes it: the fixture's layout, every value this port reads.</summary>
    public string ToJson()
    {
        var c = Clip;
        var fusion = new JsonObject();
        foreach (var k in FusionLayers.Keys.Order())
            fusion[$"layer_{k}"] = new JsonObject { ["fusion_type"] = "add", ["in_channels"] = FusionLayers[k].In, ["out_channels"] = FusionLayers[k].Out };
        var map = new JsonObject();
        foreach (var k in FusionMap.Keys.Order()) map[k.ToString(CultureInfo.InvariantCulture)] = FusionMap[k];
        var root = new JsonObject
        {
            ["model_type"] = ModelType,
            ["net"] = new JsonObject
            {
                ["open_clip_cfg"] = new JsonObject
                {
                    ["embed_dim"] = c.EmbedDim,
                    ["vision_cfg"] = new JsonObject
                    {
                        ["image_size"] = c.ImageSize, ["patch_size"] = c.PatchSize, ["width"] = c.VisionWidth, ["layers"] = c.VisionLayers,
                        ["head_width"] = c.VisionHeadWidth, ["mlp_ratio"] = c.VisionMlpRatio,
                    },
                    ["text_cfg"] = new JsonObject
                    {
                        ["context_length"] = c.ContextLength, ["vocab_size"] = c.VocabSize, ["width"] = c.TextWidth, ["heads"] = c.TextHeads,
                        ["layers"] = c.TextLayers, ["mlp_ratio"] = c.TextMlpRatio,
                    },
                    ["quick_gelu"] = c.QuickGelu,
                },
                ["clip_visual_extractor_cfg"] = new JsonObject { ["last_layer_idx"] = LastLayerIdx, ["frozen_exclude"] = Array(ExtractorFrozenExclude) },
                ["clip_rec_head_cfg"] = new JsonObject
                {
                    ["first_layer_idx"] = FirstLayerIdx, ["frozen_exclude"] = Array(RecHeadFrozenExclude), ["sos_token_format"] = "cls_token",
                    ["sos_token_num"] = SosTokenNum, ["cross_attn"] = false, ["downsample_method"] = DownsampleMethod,
                },
                ["side_adapter_network"] = new JsonObject
                {
                    ["num_queries"] = NumQueries,
                    ["vit_model"] = new JsonObject
                    {
                        ["patch_size"] = Side.PatchSize, ["embed_dim"] = Side.EmbedDim, ["depth"] = Side.Depth, ["num_heads"] = Side.NumHeads,
                        ["mlp_ratio"] = Side.MlpRatio, ["qkv_bias"] = Side.QkvBias, ["layer_norm_eps"] = Side.LayerNormEps, ["img_size"] = Side.ImgSize,
                    },
                    ["fusion_layers"] = fusion,
                    ["mask_decoder"] = new JsonObject
                    {
                        ["in_channels"] = MaskDecoder.InChannels, ["total_heads"] = MaskDecoder.TotalHeads, ["total_layers"] = MaskDecoder.TotalLayers,
                        ["embed_channels"] = MaskDecoder.EmbedChannels, ["mlp_channels"] = MaskDecoder.MlpChannels, ["mlp_num_layers"] = MaskDecoder.MlpNumLayers,
                        ["rescale_attn_bias"] = MaskDecoder.RescaleAttnBias,
                    },
                    ["fusion_map"] = map,
                    ["deep_supervision_idxs"] = new JsonArray(DeepSupervisionIdxs.Select(i => (JsonNode)i).ToArray()),
                },
                ["size_divisibility"] = SizeDivisibility,
                ["asymetric_input"] = true,
                ["clip_resolution"] = ClipResolution,
            },
            ["image_size"] = new JsonArray(ImageHeight, ImageWidth),
            ["image_mean"] = new JsonArray(ImageMean.Select(x => (JsonNode)x).ToArray()),
            ["image_std"] = new JsonArray(ImageStd.Select(x => (JsonNode)x).ToArray()),
            ["context_length"] = c.ContextLength,
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonArray Array(IEnumerable<string> values) => new(values.Select(x => (JsonNode)x).ToArray());

    private static JsonObject Obj(JsonObject o, string key, string prefix) =>
        o[key] as JsonObject ?? throw new FormatException(o[key] is null ? $"{prefix}{key} is missing." : $"{prefix}{key} must be an object.");

    private static int IntValue(JsonNode? node, string label)
    {
        try
        {
            return ConfigJson.Bounded(node?.GetValue<int>() ?? throw new FormatException($"{label} is missing."), label);
        }
        catch (Exception e) when (e is InvalidOperationException or JsonException)
        {
            throw new FormatException($"{label} must be an integer, got {node!.ToJsonString()}.", e);
        }
    }

    private static int Int(JsonObject o, string key, string prefix) => IntValue(o[key], prefix + key);

    private static int IntOr(JsonObject o, string key, int fallback, string prefix) => ConfigJson.Int(o, key, fallback, prefix + key);

    private static double Dbl(JsonObject o, string key, double fallback, string prefix)
    {
        var node = o[key];
        if (node is null) return fallback;
        try
        {
            return node.GetValue<double>();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new FormatException($"{prefix}{key} must be a number, got {node.ToJsonString()}.", e);
        }
    }

    private static bool Bool(JsonObject o, string key, bool fallback, string prefix)
    {
        var node = o[key];
        if (node is null) return fallback;
        return node is JsonValue value && value.TryGetValue<bool>(out var b) ? b : throw new FormatException($"{prefix}{key} must be true or false, got {node.ToJsonString()}.");
    }

    private static string Str(JsonObject o, string key, string fallback, string prefix)
    {
        var node = o[key];
        if (node is null) return fallback;
        return node is JsonValue value && value.TryGetValue<string>(out var text) ? text : throw new FormatException($"{prefix}{key} must be a string, got {node.ToJsonString()}.");
    }

    private static string[] Strings(JsonObject o, string key, string prefix)
    {
        var node = o[key];
        if (node is null) return [];
        if (node is not JsonArray array) throw new FormatException($"{prefix}{key} must be a list of strings.");
        return array.Select((n, i) => n is JsonValue value && value.TryGetValue<string>(out var text) ? text : throw new FormatException($"{prefix}{key}[{i}] must be a string.")).ToArray();
    }

    private static int[] Ints(JsonObject o, string key, string prefix) =>
        o[key] is JsonArray array ? array.Select((n, i) => IntValue(n, $"{prefix}{key}[{i}]")).ToArray()
        : throw new FormatException(o[key] is null ? $"{prefix}{key} is missing." : $"{prefix}{key} must be a list of integers.");

    private static double[] Doubles(JsonObject o, string key, double[] fallback)
    {
        var node = o[key];
        if (node is null) return fallback;
        if (node is not JsonArray array) throw new FormatException($"{key} must be a list of numbers.");
        return array.Select((n, i) =>
        {
            try
            {
                return n?.GetValue<double>() ?? throw new FormatException($"{key}[{i}] is missing.");
            }
            catch (InvalidOperationException ex)
            {
                throw new FormatException($"{key}[{i}] must be a number.", ex);
            }
        }).ToArray();
    }
}
