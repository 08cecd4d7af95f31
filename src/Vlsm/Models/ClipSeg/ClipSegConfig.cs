using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vlsm.Models.ClipSeg;

/// <summary>One CLIP tower's shape, with HF <c>CLIPSeg{Text,Vision}Config</c> defaults.</summary>
public sealed record ClipTowerConfig
{
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    // Text only.
    public int VocabSize { get; init; } = 49408;
    public int MaxPositionEmbeddings { get; init; } = 77;
    // Vision only.
    public int NumChannels { get; init; } = 3;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 32;

    public static ClipTowerConfig TextDefaults => new()
    {
        HiddenSize = 512, IntermediateSize = 2048, NumHiddenLayers = 12, NumAttentionHeads = 8,
    };

    public static ClipTowerConfig VisionDefaults => new()
    {
        HiddenSize = 768, IntermediateSize = 3072, NumHiddenLayers = 12, NumAttentionHeads = 12,
        ImageSize = 224, PatchSize = 32,
    };
}

/// <summary>HF <c>CLIPSegConfig</c>: the fields that decide the architecture.</summary>
public sealed record ClipSegConfig
{
    public required ClipTowerConfig Text { get; init; }
    public required ClipTowerConfig Vision { get; init; }
    public int ProjectionDim { get; init; } = 512;
    public IReadOnlyList<int> ExtractLayers { get; init; } = new[] { 3, 6, 9 };
    public int ReduceDim { get; init; } = 64;
    public int DecoderNumAttentionHeads { get; init; } = 4;
    public int DecoderIntermediateSize { get; init; } = 2048;
    public int ConditionalLayer { get; init; }
    public bool UseComplexTransposedConvolution { get; init; }

    /// <summary>The architecture of <c>CIDAS/clipseg-rd64-refined</c>.</summary>
    public static ClipSegConfig Rd64Refined => new()
    {
        Text = ClipTowerConfig.TextDefaults,
        Vision = ClipTowerConfig.VisionDefaults with { PatchSize = 16 },
        ProjectionDim = 512,
        ExtractLayers = new[] { 3, 6, 9 },
        ReduceDim = 64,
        DecoderNumAttentionHeads = 4,
        DecoderIntermediateSize = 2048,
        ConditionalLayer = 0,
        UseComplexTransposedConvolution = true,
    };

    /// <summary>
    /// The dimensions trained weights depend on, as one string; adapter files record it so they
    /// are not applied to a base model of another shape.
    /// </summary>
    public string Fingerprint =>
        $"clipseg;vision={Vision.HiddenSize}x{Vision.NumHiddenLayers}h{Vision.NumAttentionHeads}i{Vision.IntermediateSize}p{Vision.PatchSize};" +
        $"text={Text.HiddenSize}x{Text.NumHiddenLayers}h{Text.NumAttentionHeads}i{Text.IntermediateSize};" +
        $"projection={ProjectionDim};reduce={ReduceDim};extract={string.Join(",", ExtractLayers)};" +
        $"decoder=h{DecoderNumAttentionHeads}i{DecoderIntermediateSize}c{ConditionalLayer}{(UseComplexTransposedConvolution ? "x" : "")}";

    /// <summary>The sizes this config gives the HF weights' tensors, for <see cref="WeightShapes.Check(string, string, IEnumerable{ShapeClaim}, IEnumerable{CountClaim})"/> before building.</summary>
    public (IEnumerable<ShapeClaim> Shapes, IEnumerable<CountClaim> Counts) WeightClaims()
    {
        const string V = "clip.vision_model.", T = "clip.text_model.";
        long h = Vision.HiddenSize, ht = Text.HiddenSize, grid = Vision.ImageSize / Vision.PatchSize;
        ShapeClaim[] shapes =
        [
            new("vision_config.hidden_size", h, V + "embeddings.class_embedding", [h]),
            new("vision_config.patch_size", Vision.PatchSize, V + "embeddings.patch_embedding.weight", [h, Vision.NumChannels, Vision.PatchSize, Vision.PatchSize]),
            new("vision_config.image_size", Vision.ImageSize, V + "embeddings.position_embedding.weight", [grid * grid + 1, h]),
            new("vision_config.intermediate_size", Vision.IntermediateSize, V + "encoder.layers.0.mlp.fc1.weight", [Vision.IntermediateSize, h]),
            new("text_config.hidden_size", ht, T + "final_layer_norm.weight", [ht]),
            new("text_config.vocab_size", Text.VocabSize, T + "embeddings.token_embedding.weight", [Text.VocabSize, ht]),
            new("text_config.max_position_embeddings", Text.MaxPositionEmbeddings, T + "embeddings.position_embedding.weight", [Text.MaxPositionEmbeddings, ht]),
            new("text_config.intermediate_size", Text.IntermediateSize, T + "encoder.layers.0.mlp.fc1.weight", [Text.IntermediateSize, ht]),
            new("projection_dim", ProjectionDim, "clip.text_projection.weight", [ProjectionDim, ht]),
            new("projection_dim", ProjectionDim, "clip.visual_projection.weight", [ProjectionDim, h]),
            new("reduce_dim", ReduceDim, "decoder.film_mul.weight", [ReduceDim, ProjectionDim]),
            new("decoder_intermediate_size", DecoderIntermediateSize, "decoder.layers.0.mlp.fc1.weight", [DecoderIntermediateSize, ReduceDim]),
        ];
        CountClaim[] counts =
        [
            new("vision_config.num_hidden_layers", Vision.NumHiddenLayers, V + "encoder.layers."),
            new("text_config.num_hidden_layers", Text.NumHiddenLayers, T + "encoder.layers."),
            new("extract_layers", ExtractLayers.Count, "decoder.reduces."),
            new("extract_layers", ExtractLayers.Count, "decoder.layers."),
        ];
        return (shapes, counts);
    }

    /// <summary>Number of vision encoder layers whose output the decoder can see.</summary>
    public int VisionLayersNeeded => ExtractLayers.Max() + 1;

    public static ClipSegConfig FromFile(string path) =>
        ConfigJson.ParseFile(path, "model config not found; a CLIPSeg model folder needs the config.json of its HF checkpoint.", Parse);

    public static ClipSegConfig Parse(JsonObject obj)
    {
        string? modelType = obj["model_type"]?.GetValue<string>();
        if (modelType is not null && modelType != "clipseg")
            throw new FormatException($"model_type is \"{modelType}\", expected \"clipseg\".");
        // Old HF configs keep the tower settings in *_config_dict; newer ones in *_config.
        var text = ParseTower(obj["text_config"] as JsonObject ?? obj["text_config_dict"] as JsonObject, ClipTowerConfig.TextDefaults, "text_config");
        var vision = ParseTower(obj["vision_config"] as JsonObject ?? obj["vision_config_dict"] as JsonObject, ClipTowerConfig.VisionDefaults, "vision_config");
        var d = new ClipSegConfig { Text = text, Vision = vision };
        var extract = obj["extract_layers"] is JsonArray arr ? arr.Select(n => n!.GetValue<int>()).ToArray() : d.ExtractLayers.ToArray();
        var config = d with
        {
            ProjectionDim = Int(obj, "projection_dim", d.ProjectionDim),
            ExtractLayers = extract,
            ReduceDim = Int(obj, "reduce_dim", d.ReduceDim),
            DecoderNumAttentionHeads = Int(obj, "decoder_num_attention_heads", d.DecoderNumAttentionHeads),
            DecoderIntermediateSize = Int(obj, "decoder_intermediate_size", d.DecoderIntermediateSize),
            ConditionalLayer = Int(obj, "conditional_layer", d.ConditionalLayer),
            UseComplexTransposedConvolution = obj["use_complex_transposed_convolution"]?.GetValue<bool>() ?? false,
        };
        config.Validate();
        return config;
    }

    private static ClipTowerConfig ParseTower(JsonObject? o, ClipTowerConfig d, string name)
    {
        if (o is null) return d;
        try
        {
            return d with
            {
                HiddenSize = Int(o, "hidden_size", d.HiddenSize),
                IntermediateSize = Int(o, "intermediate_size", d.IntermediateSize),
                NumHiddenLayers = Int(o, "num_hidden_layers", d.NumHiddenLayers),
                NumAttentionHeads = Int(o, "num_attention_heads", d.NumAttentionHeads),
                HiddenAct = o["hidden_act"]?.GetValue<string>() ?? d.HiddenAct,
                LayerNormEps = o["layer_norm_eps"]?.GetValue<double>() ?? d.LayerNormEps,
                VocabSize = Int(o, "vocab_size", d.VocabSize),
                MaxPositionEmbeddings = Int(o, "max_position_embeddings", d.MaxPositionEmbeddings),
                NumChannels = Int(o, "num_channels", d.NumChannels),
                ImageSize = Int(o, "image_size", d.ImageSize),
                PatchSize = Int(o, "patch_size", d.PatchSize),
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new FormatException($"{name}: {e.Message}", e);
        }
    }

    private static int Int(JsonObject o, string key, int fallback) => ConfigJson.Int(o, key, fallback, $"\"{key}\"");

    private void Validate()
    {
        void Check(bool ok, string message)
        {
            if (!ok) throw new FormatException(message);
        }
        foreach (var (t, name) in new[] { (Text, "text_config"), (Vision, "vision_config") })
        {
            Check(t.HiddenSize > 0 && t.NumAttentionHeads > 0 && t.HiddenSize % t.NumAttentionHeads == 0,
                $"{name}: hidden_size {t.HiddenSize} must be a positive multiple of num_attention_heads {t.NumAttentionHeads}.");
            Check(t.NumHiddenLayers > 0 && t.IntermediateSize > 0, $"{name}: num_hidden_layers and intermediate_size must be positive.");
        }
        Check(Vision.PatchSize > 0 && Vision.ImageSize % Vision.PatchSize == 0,
            $"vision_config: image_size {Vision.ImageSize} must be a multiple of patch_size {Vision.PatchSize}.");
        Check(ExtractLayers.Count > 0 && ExtractLayers.All(i => i >= 0 && i < Vision.NumHiddenLayers),
            $"extract_layers [{string.Join(", ", ExtractLayers)}] must name vision layers 0..{Vision.NumHiddenLayers - 1}.");
        Check(ReduceDim > 0 && DecoderNumAttentionHeads > 0 && ReduceDim % DecoderNumAttentionHeads == 0,
            $"reduce_dim {ReduceDim} must be a positive multiple of decoder_num_attention_heads {DecoderNumAttentionHeads}.");
        Check(!UseComplexTransposedConvolution || (Vision.PatchSize % 4 == 0 && ReduceDim % 2 == 0),
            "use_complex_transposed_convolution needs patch_size divisible by 4 and an even reduce_dim.");
    }

    /// <summary>HF <c>config.json</c> text for this architecture, so converted or trained models stay HF folders.</summary>
    public string ToJson()
    {
        static JsonObject Tower(ClipTowerConfig t, bool text)
        {
            var o = new JsonObject
            {
                ["hidden_size"] = t.HiddenSize, ["intermediate_size"] = t.IntermediateSize,
                ["num_hidden_layers"] = t.NumHiddenLayers, ["num_attention_heads"] = t.NumAttentionHeads,
                ["hidden_act"] = t.HiddenAct, ["layer_norm_eps"] = t.LayerNormEps,
            };
            if (text)
            {
                o["vocab_size"] = t.VocabSize;
                o["max_position_embeddings"] = t.MaxPositionEmbeddings;
            }
            else
            {
                o["num_channels"] = t.NumChannels;
                o["image_size"] = t.ImageSize;
                o["patch_size"] = t.PatchSize;
            }
            return o;
        }
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPSegForImageSegmentation"),
            ["model_type"] = "clipseg",
            ["text_config"] = Tower(Text, true),
            ["vision_config"] = Tower(Vision, false),
            ["projection_dim"] = ProjectionDim,
            ["extract_layers"] = new JsonArray(ExtractLayers.Select(i => (JsonNode)i).ToArray()),
            ["reduce_dim"] = ReduceDim,
            ["decoder_num_attention_heads"] = DecoderNumAttentionHeads,
            ["decoder_intermediate_size"] = DecoderIntermediateSize,
            ["conditional_layer"] = ConditionalLayer,
            ["use_complex_transposed_convolution"] = UseComplexTransposedConvolution,
            ["torch_dtype"] = "float32",
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
