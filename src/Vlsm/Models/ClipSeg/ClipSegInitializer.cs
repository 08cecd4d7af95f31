using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Models.ClipSeg;

/// <summary>
/// Fresh weights the way HF's <c>CLIPSegPreTrainedModel._init_weights</c> draws them, for
/// training a CLIPSeg from scratch (the demo's pretraining). TorchSharp's module defaults differ
/// where it matters: embeddings are N(0, 1) there but N(0, 0.02) in CLIP, and CLIP scales its
/// attention and MLP weights by depth so the residual stream starts small.
/// </summary>
public static class ClipSegInitializer
{
    /// <summary>HF's <c>logit_scale_init_value</c> (log 1/0.07).</summary>
    public const double LogitScaleInit = 2.6592;

    /// <summary>Redraws the parameters HF initialises specially of <paramref name="model"/> from <paramref name="seed"/> (deterministic); the rest keep the module defaults drawn at construction.</summary>
    public static void Initialize(ClipSegModel model, long seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        Apply(model.named_parameters(), model.Config, seed);
        model.ClearCaches();
    }

    /// <summary>A decoder alone drawn as HF draws <c>CLIPSegForImageSegmentation(config).decoder</c> (medvlsm's randomly initialised decoder).</summary>
    public static void InitializeDecoder(ClipSegDecoder decoder, ClipSegConfig config, long seed)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        Apply(decoder.named_parameters().Select(p => ("decoder." + p.name, p.parameter)), config, seed);
        StateDictLoader.ClearDerivedCaches(decoder);
    }

    private static void Apply(IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> parameters, ClipSegConfig c, long seed)
    {
        var generator = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            // Decoder attention/MLP blocks are built from a copy of the vision config (HF), so
            // their depth factor uses the vision layer count and their width is reduce_dim.
            var tower = name.StartsWith("clip.text_model.", StringComparison.Ordinal) ? c.Text : c.Vision;
            long width = name.StartsWith("decoder.", StringComparison.Ordinal) ? c.ReduceDim : tower.HiddenSize;
            double depth = Math.Pow(2.0 * tower.NumHiddenLayers, -0.5);
            double? std = Std(name, width, depth, c);
            if (std is { } s) p.normal_(0, s, generator);
            else if (name == "clip.logit_scale") p.fill_(LogitScaleInit);
            else if (name.EndsWith(".bias", StringComparison.Ordinal) && !IsConvolution(name)) p.zero_();
            else if (name.EndsWith(".weight", StringComparison.Ordinal) && IsLayerNorm(name)) p.fill_(1.0);
            // Everything else (decoder reduces/FiLM weights, convolutions) keeps PyTorch's module default, as in HF.
        }
    }

    private static double? Std(string name, long width, double depth, ClipSegConfig c)
    {
        const double range = 0.02; // initializer_range, initializer_factor 1
        if (name.EndsWith("token_embedding.weight", StringComparison.Ordinal)) return range;
        if (name.EndsWith("position_embedding.weight", StringComparison.Ordinal)) return range;
        if (name.EndsWith("patch_embedding.weight", StringComparison.Ordinal)) return range;
        if (name.EndsWith("class_embedding", StringComparison.Ordinal)) return Math.Pow(c.Vision.HiddenSize, -0.5);
        if (name == "clip.text_projection.weight") return Math.Pow(c.Text.HiddenSize, -0.5);
        if (name == "clip.visual_projection.weight") return Math.Pow(c.Vision.HiddenSize, -0.5);
        if (!name.EndsWith(".weight", StringComparison.Ordinal)) return null;
        if (name.Contains(".self_attn.out_proj.", StringComparison.Ordinal)) return Math.Pow(width, -0.5);
        if (name.Contains(".self_attn.", StringComparison.Ordinal)) return Math.Pow(width, -0.5) * depth;
        if (name.Contains(".mlp.fc1.", StringComparison.Ordinal)) return Math.Pow(2.0 * width, -0.5);
        if (name.Contains(".mlp.fc2.", StringComparison.Ordinal)) return Math.Pow(width, -0.5) * depth;
        return null;
    }

    private static bool IsLayerNorm(string name) =>
        name.Contains("layer_norm", StringComparison.Ordinal) || name.Contains("layrnorm", StringComparison.Ordinal) || name.Contains("layernorm", StringComparison.Ordinal);

    // HF zeroes every nn.Linear bias (and LayerNorm's); conv biases keep PyTorch's default.
    private static bool IsConvolution(string name) =>
        name.StartsWith("decoder.transposed_convolution.", StringComparison.Ordinal);
}
