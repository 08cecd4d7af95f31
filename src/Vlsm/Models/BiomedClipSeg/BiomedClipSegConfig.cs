using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>timm <c>VisionTransformer</c> (0.9.2) as BiomedCLIP builds it: class token, learned position table covering it, pre-LN blocks.</summary>
public sealed record TimmVitConfig
{
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 16;
    public int InChannels { get; init; } = 3;
    public int Width { get; init; } = 768;
    public int Depth { get; init; } = 12;
    public int Heads { get; init; } = 12;
    public int MlpHidden { get; init; } = 3072;
    public bool QkvBias { get; init; } = true;
    public double LayerNormEps { get; init; } = 1e-6;

    public int Grid => ImageSize / PatchSize;

    /// <summary>timm's <c>vit_base_patch16_224</c>.</summary>
    public static TimmVitConfig Base16 => new();
}

/// <summary>HF <c>BertConfig</c>: the fields that decide the architecture (PubMedBERT is BERT-base, uncased).</summary>
public sealed record BertConfig
{
    public int HiddenSize { get; init; } = 768;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int IntermediateSize { get; init; } = 3072;
    public int VocabSize { get; init; } = 30522;
    public int MaxPositionEmbeddings { get; init; } = 512;
    public int TypeVocabSize { get; init; } = 2;
    public double LayerNormEps { get; init; } = 1e-12;
    public string HiddenAct { get; init; } = "gelu";
    public int PadTokenId { get; init; }

    /// <summary>microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract (PubMedBERT).</summary>
    public static BertConfig PubMedBert => new();

    public JsonObject ToJson() => new()
    {
        ["architectures"] = new JsonArray("BertForMaskedLM"),
        ["model_type"] = "bert",
        ["hidden_act"] = HiddenAct,
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["num_attention_heads"] = NumAttentionHeads,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["type_vocab_size"] = TypeVocabSize,
        ["vocab_size"] = VocabSize,
        ["layer_norm_eps"] = LayerNormEps,
        ["pad_token_id"] = PadTokenId,
        ["position_embedding_type"] = "absolute",
    };

    public static BertConfig Parse(JsonObject o, string where)
    {
        var d = new BertConfig();
        string act = o["hidden_act"]?.GetValue<string>() ?? d.HiddenAct;
        if (act != "gelu")
            throw new FormatException($"{where}.hidden_act is \"{act}\"; BiomedCLIP's BERT uses \"gelu\" (exact), the only one supported.");
        string position = o["position_embedding_type"]?.GetValue<string>() ?? "absolute";
        if (position != "absolute")
            throw new FormatException($"{where}.position_embedding_type is \"{position}\"; only \"absolute\" is supported.");
        var c = d with
        {
            HiddenSize = Int(o, "hidden_size", d.HiddenSize, where),
            NumHiddenLayers = Int(o, "num_hidden_layers", d.NumHiddenLayers, where),
            NumAttentionHeads = Int(o, "num_attention_heads", d.NumAttentionHeads, where),
            IntermediateSize = Int(o, "intermediate_size", d.IntermediateSize, where),
            VocabSize = Int(o, "vocab_size", d.VocabSize, where),
            MaxPositionEmbeddings = Int(o, "max_position_embeddings", d.MaxPositionEmbeddings, where),
            TypeVocabSize = Int(o, "type_vocab_size", d.TypeVocabSize, where),
            LayerNormEps = o["layer_norm_eps"]?.GetValue<double>() ?? d.LayerNormEps,
            HiddenAct = act,
            PadTokenId = Int(o, "pad_token_id", d.PadTokenId, where),
        };
        if (c.HiddenSize <= 0 || c.NumAttentionHeads <= 0 || c.HiddenSize % c.NumAttentionHeads != 0)
            throw new FormatException($"{where}: hidden_size {c.HiddenSize} must be a positive multiple of num_attention_heads {c.NumAttentionHeads}.");
        if (c.NumHiddenLayers <= 0 || c.IntermediateSize <= 0 || c.VocabSize <= 0 || c.MaxPositionEmbeddings <= 0 || c.TypeVocabSize <= 0)
            throw new FormatException($"{where}: num_hidden_layers, intermediate_size, vocab_size, max_position_embeddings and type_vocab_size must be positive.");
        return c;
    }

    internal static int Int(JsonObject o, string key, int fallback, string where) => ConfigJson.Int(o, key, fallback, $"{where}.{key}");
}

/// <summary>
/// medvlsm's BiomedCLIPSeg (<c>model_type: biomedclipseg</c>): BiomedCLIP's timm ViT and PubMedBERT
/// towers (open_clip's <c>CustomTextCLIP</c>: <c>timm_proj: linear</c>, <c>hf_proj_type: mlp</c>,
/// <c>hf_pooler_type: cls_last_hidden_state_pooler</c>) feeding HF CLIPSeg's decoder. The folder's
/// config.json is vlsm's own layout (the fixture's): <c>open_clip</c>, <c>timm_vit</c>,
/// <c>hf_text_config</c>, <c>clipseg</c>, <c>image</c>, <c>context_length</c>.
/// </summary>
public sealed record BiomedClipSegConfig
{
    public const string ModelType = "biomedclipseg";

    public required TimmVitConfig Vision { get; init; }
    public required BertConfig Text { get; init; }

    /// <summary>open_clip's <c>embed_dim</c>: the width of both projections and of the conditional embedding.</summary>
    public int EmbedDim { get; init; } = 512;

    /// <summary>The HF CLIPSeg config whose decoder fields (and vision_config hidden_size, patch_size, layer_norm_eps) build the decoder.</summary>
    public required ClipSegConfig Decoder { get; init; }

    /// <summary>The tokenizer's <c>max_length</c> (open_clip's <c>text_cfg.context_length</c>).</summary>
    public int ContextLength { get; init; } = 256;

    public IReadOnlyList<double> ImageMean { get; init; } = OpenAiMean;
    public IReadOnlyList<double> ImageStd { get; init; } = OpenAiStd;

    private static readonly double[] OpenAiMean = [0.48145466, 0.4578275, 0.40821073];
    private static readonly double[] OpenAiStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>open_clip's mlp projection hidden width, (d_model + embed_dim) // 2.</summary>
    public int ProjHidden => (Text.HiddenSize + EmbedDim) / 2;

    public IReadOnlyList<int> ExtractLayers => Decoder.ExtractLayers;

    /// <summary>The 0-based ViT blocks whose outputs the decoder reads: extract layer i reads block i + 1 as the reference does, block i when fixed.</summary>
    public IReadOnlyList<int> BlocksRead(ExtractIndexing indexing) =>
        ExtractLayers.Select(i => indexing == ExtractIndexing.Reference ? i + 1 : i).ToList();

    /// <summary>Dense adapters sit in ViT blocks and BERT layers 0 … max(extract_layers) (10 of 12 for [3, 6, 9]).</summary>
    public int DenseVisionBlocks => Math.Min(ExtractLayers.Max() + 1, Vision.Depth);
    public int DenseTextLayers => Math.Min(ExtractLayers.Max() + 1, Text.NumHiddenLayers);

    /// <summary>The real architecture: BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 with clipseg-rd64-refined's decoder.</summary>
    public static BiomedClipSegConfig Real => new()
    {
        Vision = TimmVitConfig.Base16,
        Text = BertConfig.PubMedBert,
        EmbedDim = 512,
        Decoder = DecoderFor(ClipSegConfig.Rd64Refined, TimmVitConfig.Base16),
        ContextLength = 256,
    };

    /// <summary>A CLIPSeg config whose vision width and patch are the ViT's (the decoder reads nothing else of it).</summary>
    public static ClipSegConfig DecoderFor(ClipSegConfig clipseg, TimmVitConfig vit) => clipseg with
    {
        Vision = clipseg.Vision with { HiddenSize = vit.Width, PatchSize = vit.PatchSize },
    };

    /// <summary>The sizes this config gives the weights' tensors (ViT, BERT, projections), checked against the header before building.</summary>
    public (IEnumerable<ShapeClaim> Shapes, IEnumerable<CountClaim> Counts) WeightClaims()
    {
        const string V = "biomedclip.visual.trunk.", T = "biomedclip.text.transformer.";
        long w = Vision.Width, h = Text.HiddenSize, grid = Vision.Grid;
        ShapeClaim[] shapes =
        [
            new("timm_vit.embed_dim", w, V + "cls_token", [1, 1, w]),
            new("timm_vit.patch_size", Vision.PatchSize, V + "patch_embed.proj.weight", [w, Vision.InChannels, Vision.PatchSize, Vision.PatchSize]),
            new("timm_vit.img_size", Vision.ImageSize, V + "pos_embed", [1, grid * grid + 1, w]),
            new("timm_vit.mlp_hidden", Vision.MlpHidden, V + "blocks.0.mlp.fc1.weight", [Vision.MlpHidden, w]),
            new("hf_text_config.hidden_size", h, T + "embeddings.LayerNorm.weight", [h]),
            new("hf_text_config.vocab_size", Text.VocabSize, T + "embeddings.word_embeddings.weight", [Text.VocabSize, h]),
            new("hf_text_config.max_position_embeddings", Text.MaxPositionEmbeddings, T + "embeddings.position_embeddings.weight", [Text.MaxPositionEmbeddings, h]),
            new("hf_text_config.type_vocab_size", Text.TypeVocabSize, T + "embeddings.token_type_embeddings.weight", [Text.TypeVocabSize, h]),
            new("hf_text_config.intermediate_size", Text.IntermediateSize, T + "encoder.layer.0.intermediate.dense.weight", [Text.IntermediateSize, h]),
            new("open_clip.embed_dim", EmbedDim, "biomedclip.visual.head.proj.weight", [EmbedDim, w]),
            new("open_clip.embed_dim", EmbedDim, "biomedclip.text.proj.2.weight", [EmbedDim, ProjHidden]),
            new("clipseg.reduce_dim", Decoder.ReduceDim, "decoder.film_mul.weight", [Decoder.ReduceDim, EmbedDim]),
            new("clipseg.decoder_intermediate_size", Decoder.DecoderIntermediateSize, "decoder.layers.0.mlp.fc1.weight", [Decoder.DecoderIntermediateSize, Decoder.ReduceDim]),
        ];
        CountClaim[] counts =
        [
            new("timm_vit.depth", Vision.Depth, V + "blocks."),
            new("hf_text_config.num_hidden_layers", Text.NumHiddenLayers, T + "encoder.layer."),
            new("clipseg.extract_layers", Decoder.ExtractLayers.Count, "decoder.reduces."),
        ];
        return (shapes, counts);
    }

    /// <summary>The dimensions trained weights depend on; weight files record it so they are not applied to another shape.</summary>
    public string Fingerprint =>
        $"biomedclipseg;vit={Vision.Width}x{Vision.Depth}h{Vision.Heads}i{Vision.MlpHidden}p{Vision.PatchSize}s{Vision.ImageSize};" +
        $"bert={Text.HiddenSize}x{Text.NumHiddenLayers}h{Text.NumAttentionHeads}i{Text.IntermediateSize}v{Text.VocabSize};embed={EmbedDim};" +
        $"reduce={Decoder.ReduceDim};extract={string.Join(",", ExtractLayers)};decoder=h{Decoder.DecoderNumAttentionHeads}i{Decoder.DecoderIntermediateSize}c{Decoder.ConditionalLayer}{(Decoder.UseComplexTransposedConvolution ? "x" : "")}";

    public static BiomedClipSegConfig FromFile(string path) =>
        ConfigJson.ParseFile(path, "model config not found; a BiomedCLIPSeg folder needs config.json (write one with vlsm convert biomedclip).", Parse);

    public static BiomedClipSegConfig Parse(JsonObject root)
    {
        string? type = root["model_type"]?.GetValue<string>();
        if (type is not null && type != ModelType)
            throw new FormatException($"model_type is \"{type}\", expected \"{ModelType}\".");
        var openClip = root["open_clip"] as JsonObject ?? throw new FormatException("no \"open_clip\" object (open_clip's model config: embed_dim, vision_cfg, text_cfg).");
        int embed = BertConfig.Int(openClip, "embed_dim", 512, "open_clip");
        CheckOpenClip(openClip);
        var vit = ParseVit(root["timm_vit"] as JsonObject ?? throw new FormatException("no \"timm_vit\" object (the ViT's sizes: img_size, patch_size, embed_dim, depth, num_heads, mlp_hidden)."));
        var bert = BertConfig.Parse(root["hf_text_config"] as JsonObject ?? throw new FormatException("no \"hf_text_config\" object (the BERT config.json)."), "hf_text_config");
        var clipsegNode = root["clipseg"] as JsonObject ?? throw new FormatException("no \"clipseg\" object (the HF CLIPSeg config.json the decoder is built from).");
        ClipSegConfig clipseg;
        try
        {
            clipseg = ClipSegConfig.Parse(clipsegNode);
        }
        catch (FormatException e)
        {
            throw new FormatException($"clipseg: {e.Message}", e);
        }
        if (clipseg.ProjectionDim != embed)
            throw new FormatException($"clipseg.projection_dim {clipseg.ProjectionDim} differs from open_clip.embed_dim {embed}; the decoder's FiLM reads the {embed}-wide text embedding.");
        if (clipseg.Vision.HiddenSize != vit.Width)
            throw new FormatException($"clipseg.vision_config.hidden_size {clipseg.Vision.HiddenSize} differs from the ViT width timm_vit.embed_dim {vit.Width}; the decoder's reduces read ViT blocks.");
        if (clipseg.Vision.PatchSize != vit.PatchSize)
            throw new FormatException($"clipseg.vision_config.patch_size {clipseg.Vision.PatchSize} differs from timm_vit.patch_size {vit.PatchSize}.");
        var decoder = DecoderFor(clipseg, vit);
        int context = BertConfig.Int(root, "context_length", 256, "context_length");
        var image = root["image"] as JsonObject;
        var config = new BiomedClipSegConfig
        {
            Vision = vit,
            Text = bert,
            EmbedDim = embed,
            Decoder = decoder,
            ContextLength = context,
            ImageMean = Triple(image?["mean"], OpenAiMean, "image.mean"),
            ImageStd = Triple(image?["std"], OpenAiStd, "image.std"),
        };
        config.Validate();
        return config;
    }

    private static void CheckOpenClip(JsonObject openClip)
    {
        var vision = openClip["vision_cfg"] as JsonObject;
        var text = openClip["text_cfg"] as JsonObject;
        void Expect(JsonObject? o, string key, string expected, string where)
        {
            string? value = o?[key]?.GetValue<string>();
            if (value is not null && value != expected)
                throw new FormatException($"open_clip.{where}.{key} is \"{value}\"; vlsm's BiomedCLIPSeg is BiomedCLIP's \"{expected}\" only.");
        }
        Expect(vision, "timm_pool", "", "vision_cfg");
        Expect(vision, "timm_proj", "linear", "vision_cfg");
        Expect(text, "hf_proj_type", "mlp", "text_cfg");
        Expect(text, "hf_pooler_type", "cls_last_hidden_state_pooler", "text_cfg");
    }

    private static TimmVitConfig ParseVit(JsonObject o)
    {
        static int Square(JsonNode? node, int fallback, string key)
        {
            if (node is null) return fallback;
            if (node is JsonArray a)
            {
                if (a.Count != 2 || a[0]!.GetValue<int>() != a[1]!.GetValue<int>())
                    throw new FormatException($"timm_vit.{key} {a.ToJsonString()} is not square; only square images and patches are supported.");
                return a[0]!.GetValue<int>();
            }
            return node.GetValue<int>();
        }
        var d = new TimmVitConfig();
        int width = BertConfig.Int(o, "embed_dim", d.Width, "timm_vit");
        var c = d with
        {
            ImageSize = Square(o["img_size"], d.ImageSize, "img_size"),
            PatchSize = Square(o["patch_size"], d.PatchSize, "patch_size"),
            InChannels = BertConfig.Int(o, "in_chans", d.InChannels, "timm_vit"),
            Width = width,
            Depth = BertConfig.Int(o, "depth", d.Depth, "timm_vit"),
            Heads = BertConfig.Int(o, "num_heads", d.Heads, "timm_vit"),
            MlpHidden = BertConfig.Int(o, "mlp_hidden", width * 4, "timm_vit"),
            QkvBias = o["qkv_bias"]?.GetValue<bool>() ?? true,
            LayerNormEps = o["layer_norm_eps"]?.GetValue<double>() ?? d.LayerNormEps,
        };
        void Refuse(string key, bool unsupported, string what)
        {
            if (unsupported) throw new FormatException($"timm_vit.{key}: {what} is not supported (BiomedCLIP's ViT has a class token, pos_embed covering it, no pre-norm, no layer scale and token pooling).");
        }
        Refuse("class_token", o["class_token"] is { } ct && !ct.GetValue<bool>(), "a ViT without a class token");
        Refuse("no_embed_class", o["no_embed_class"] is { } ne && ne.GetValue<bool>(), "no_embed_class");
        Refuse("pre_norm", o["pre_norm"] is { } pn && pn.GetValue<bool>(), "pre_norm");
        Refuse("qk_norm", o["qk_norm"] is { } qn && qn.GetValue<bool>(), "qk_norm");
        Refuse("init_values", o["init_values"] is { } iv && iv.GetValueKind() != JsonValueKind.Null, "layer scale (init_values)");
        Refuse("global_pool", o["global_pool"] is { } gp && gp.GetValue<string>() != "token", "a global pool other than \"token\"");
        if (c.Width <= 0 || c.Heads <= 0 || c.Width % c.Heads != 0)
            throw new FormatException($"timm_vit: embed_dim {c.Width} must be a positive multiple of num_heads {c.Heads}.");
        if (c.PatchSize <= 0 || c.ImageSize % c.PatchSize != 0)
            throw new FormatException($"timm_vit: img_size {c.ImageSize} must be a multiple of patch_size {c.PatchSize}.");
        if (c.Depth <= 0 || c.MlpHidden <= 0 || c.InChannels <= 0)
            throw new FormatException("timm_vit: depth, mlp_hidden and in_chans must be positive.");
        return c;
    }

    private static double[] Triple(JsonNode? node, double[] fallback, string where)
    {
        if (node is null) return fallback;
        if (node is not JsonArray a || a.Count != 3)
            throw new FormatException($"{where} must be three numbers (R, G, B), got {node.ToJsonString()}.");
        return a.Select(v => v!.GetValue<double>()).ToArray();
    }

    private void Validate()
    {
        if (ExtractLayers.Max() + 1 >= Vision.Depth)
            throw new FormatException($"clipseg.extract_layers [{string.Join(", ", ExtractLayers)}]: the reference reads ViT block i + 1 for extract layer i (quirk 1), so every extract layer must be below depth − 1 = {Vision.Depth - 1}.");
        if (ContextLength < 2 || ContextLength > Text.MaxPositionEmbeddings)
            throw new FormatException($"context_length {ContextLength} must be within 2..max_position_embeddings ({Text.MaxPositionEmbeddings}).");
    }

    /// <summary>config.json text in the layout <see cref="Parse"/> reads (and the fixture uses).</summary>
    public string ToJson()
    {
        var decoderJson = JsonNode.Parse(Decoder.ToJson())!.AsObject();
        var root = new JsonObject
        {
            ["model_type"] = ModelType,
            ["format"] = "vlsm BiomedCLIPSeg model folder, v1",
            ["open_clip"] = new JsonObject
            {
                ["embed_dim"] = EmbedDim,
                ["vision_cfg"] = new JsonObject { ["timm_model_name"] = "vit_base_patch16_224", ["timm_model_pretrained"] = false, ["timm_pool"] = "", ["timm_proj"] = "linear", ["image_size"] = Vision.ImageSize },
                ["text_cfg"] = new JsonObject { ["hf_proj_type"] = "mlp", ["hf_pooler_type"] = "cls_last_hidden_state_pooler", ["context_length"] = ContextLength },
            },
            ["timm_vit"] = new JsonObject
            {
                ["img_size"] = new JsonArray(Vision.ImageSize, Vision.ImageSize),
                ["patch_size"] = new JsonArray(Vision.PatchSize, Vision.PatchSize),
                ["in_chans"] = Vision.InChannels,
                ["embed_dim"] = Vision.Width,
                ["depth"] = Vision.Depth,
                ["num_heads"] = Vision.Heads,
                ["mlp_hidden"] = Vision.MlpHidden,
                ["qkv_bias"] = Vision.QkvBias,
                ["layer_norm_eps"] = Vision.LayerNormEps,
                ["class_token"] = true,
                ["global_pool"] = "token",
            },
            ["hf_text_config"] = Text.ToJson(),
            ["clipseg"] = decoderJson,
            ["image"] = new JsonObject
            {
                ["size"] = new JsonArray(Vision.ImageSize, Vision.ImageSize),
                ["mean"] = new JsonArray(ImageMean.Select(v => (JsonNode)v).ToArray()),
                ["std"] = new JsonArray(ImageStd.Select(v => (JsonNode)v).ToArray()),
                ["transform"] = "PIL bilinear resize (antialiased, aspect ratio not kept) -> /255 -> normalize(mean, std)",
            },
            ["context_length"] = ContextLength,
            ["tokenizer"] = new JsonObject { ["kind"] = "bert-wordpiece-uncased", ["vocab_file"] = "vocab.txt", ["max_length"] = ContextLength },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"BiomedCLIPSeg {Fingerprint}");
}

/// <summary>Which ViT block an extract layer reads.</summary>
public enum ExtractIndexing
{
    /// <summary>As medvlsm: block i + 1 (its list of block outputs has no embedding entry, yet it indexes as if it had).</summary>
    Reference,

    /// <summary>Block i, as HF CLIPSeg reads its hidden_states[i + 1].</summary>
    Fixed,
}

/// <summary>The attention mask the text tower uses.</summary>
public enum TextMask
{
    /// <summary>As medvlsm: the tokenizer's mask, so a literal "[PAD]" typed in a prompt (id 0, mask 1) is attended.</summary>
    Reference,

    /// <summary>ids ≠ pad id, as open_clip's own encode_text builds it: a literal "[PAD]" is masked like padding.</summary>
    Fixed,
}
