using System.Globalization;
using System.Text.RegularExpressions;

namespace Vlsm.Models.San;

/// <summary>Where gradients flow when SAN trains.</summary>
public enum SanGradients
{
    /// <summary>
    /// As vlsm-adapter: the rec head and the text tower run under no_grad, so the query scores are
    /// constants; the side ViT, queries, the fusion layers used and the query/pixel MLPs train, and
    /// the attention-bias MLP, its scaling and CLIP's positional embedding never do.
    /// </summary>
    Reference,

    /// <summary>
    /// As the original SAN trains: gradients also flow through the frozen CLIP rec head into the
    /// attention bias (attn_mlp, bias_scaling) and through the frozen CLIP blocks into the CLIP
    /// parameters SAN leaves unfrozen (the visual positional embedding). The text tower stays fixed.
    /// </summary>
    Original,
}

/// <summary>
/// Which SAN parameters are trainable: by the reference's requires_grad flags (what the paper and
/// real-architecture.json count) and by what actually receives a gradient (what vlsm trains).
/// Names are SAN's state-dict keys (<c>clip_model.*</c>, <c>side_adapter_network.*</c>).
/// </summary>
public static partial class SanTrainables
{
    public const string OptionKey = "san_gradients";

    public static string Name(SanGradients g) => g == SanGradients.Original ? "original" : "reference";

    public static SanGradients Parse(string value) => value switch
    {
        "reference" => SanGradients.Reference,
        "original" => SanGradients.Original,
        _ => throw new VlsmException($"{OptionKey} \"{value}\" is not one of reference, original."),
    };

    private const string Visual = SanLoader.ClipPrefix + "visual.";

    [GeneratedRegex(@"^clip_model\.visual\.transformer\.resblocks\.(\d+)\.")]
    private static partial Regex VisualBlock();

    [GeneratedRegex(@"^side_adapter_network\.vit_model\.blocks\.(\d+)\.")]
    private static partial Regex SideBlock();

    [GeneratedRegex(@"^side_adapter_network\.fusion_layers\.layer_(\d+)\.")]
    private static partial Regex FusionLayer();

    private static int? Index(Regex pattern, string key)
    {
        var m = pattern.Match(key);
        return m.Success ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }

    public static bool IsSide(string key) => key.StartsWith(SanLoader.SidePrefix, StringComparison.Ordinal);

    public static bool IsVisual(string key) => key.StartsWith(Visual, StringComparison.Ordinal);

    /// <summary>
    /// requires_grad after SAN's constructor: the extractor freezes conv1, class and positional
    /// embeddings, ln_pre and blocks below last_layer_idx, the rec head freezes blocks from
    /// first_layer_idx, ln_post and proj, each except names containing one of its frozen_exclude
    /// strings; nothing else (the text tower included) is frozen.
    /// </summary>
    public static bool RequiresGrad(SanConfig config, string key)
    {
        if (!IsVisual(key)) return true;
        string local = key[Visual.Length..];
        string? extractorName, recName;
        var m = VisualBlock().Match(key);
        if (m.Success)
        {
            int i = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            string rest = key[m.Length..];
            extractorName = i < config.LastLayerIdx ? $"resblocks.{i}.{rest}" : null;
            recName = i >= config.FirstLayerIdx ? $"resblocks.{i - config.FirstLayerIdx}.{rest}" : null;
        }
        else
        {
            extractorName = local is "conv1.weight" or "class_embedding" or "positional_embedding" || local.StartsWith("ln_pre.", StringComparison.Ordinal) ? local : null;
            recName = local == "proj" || local.StartsWith("ln_post.", StringComparison.Ordinal) ? local : null;
        }
        // Each part freezes what it holds unless a frozen_exclude string occurs in the name; it never unfreezes.
        if (extractorName is not null && !config.ExtractorFrozenExclude.Any(extractorName.Contains)) return false;
        if (recName is not null && !config.RecHeadFrozenExclude.Any(recName.Contains)) return false;
        return true;
    }

    /// <summary>Whether the CLIP visual parameter takes part in SAN's forward pass (the extractor up to the features read, or the rec head).</summary>
    private static bool VisualUsed(SanConfig config, string key)
    {
        if (Index(VisualBlock(), key) is { } block)
            return block < config.NeededClipFeatures.Max() || block >= config.FirstLayerIdx;
        return true;
    }

    /// <summary>Whether a loss on the logits gives <paramref name="key"/> a gradient under <paramref name="gradients"/>: what vlsm trains.</summary>
    public static bool ReceivesGradient(SanConfig config, SanGradients gradients, string key)
    {
        if (IsSide(key))
        {
            if (Index(SideBlock(), key) is { } block) return block < config.DecodeIndex;
            if (Index(FusionLayer(), key) is { } layer) return config.ActiveFusions.Contains(layer);
            if (key.StartsWith(SanLoader.SidePrefix + "mask_decoder.attn_mlp.", StringComparison.Ordinal)
                || key.StartsWith(SanLoader.SidePrefix + "mask_decoder.bias_scaling.", StringComparison.Ordinal))
                return gradients == SanGradients.Original;
            return true;
        }
        return gradients == SanGradients.Original && IsVisual(key) && RequiresGrad(config, key) && VisualUsed(config, key);
    }
}
