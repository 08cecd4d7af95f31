using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

#pragma warning disable IDE1006 // field names are the reference's state-dict keys

namespace Vlsm.Models.ClipSeg;

/// <summary>
/// Shallow adapters (reference <c>CLIPSegShallowAdapter</c>): on the vision hidden states the
/// decoder reads (V), on the text hidden states at the pooled position added to the conditional
/// embedding (L), and on the conditional embedding (C). Module names are the reference's. The
/// reference adds L outputs (text width) to the conditional embedding (projection width) as they
/// are, which works only when the widths agree, as in every released CLIPSeg; where they differ
/// (small models) the L outputs go through the frozen text projection first. Likewise L reads the
/// text states after the vision extract layers' indices; a text tower shallower than that (small
/// models again; the reference fails there) gives its last layer's states to the deeper adapters.
/// </summary>
public sealed class ShallowAdapterSet : nn.Module
{
    // Field names are the reference's state-dict keys; absent parts stay null and are not registered.
    private readonly ModuleList<Adapter>? vision_extract_adapters;
    private readonly ModuleList<Adapter>? text_extract_adapters;
    private readonly Adapter? cond_adapter;

    public ShallowAdapterSet(ClipSegConfig c, FineTuneSpec spec) : base(nameof(ShallowAdapterSet))
    {
        int n = c.ExtractLayers.Count;
        if (spec.Parts.HasFlag(AdapterParts.V))
            vision_extract_adapters = Stack(n, c.Vision.HiddenSize, spec);
        if (spec.Parts.HasFlag(AdapterParts.L))
        {
            text_extract_adapters = Stack(n, c.Text.HiddenSize, spec);
        }
        if (spec.Parts.HasFlag(AdapterParts.C))
            cond_adapter = new Adapter(c.ProjectionDim, spec.CondAdapterDim, spec.ZeroInitFc2);
        RegisterComponents();
    }

    public ModuleList<Adapter>? VisionExtract => vision_extract_adapters;
    public ModuleList<Adapter>? TextExtract => text_extract_adapters;
    public Adapter? Cond => cond_adapter;

    internal static ModuleList<Adapter> Stack(int count, int dim, FineTuneSpec spec)
    {
        var list = new ModuleList<Adapter>();
        for (int i = 0; i < count; i++) list.Add(new Adapter(dim, spec.AdapterDim, spec.ZeroInitFc2));
        return list;
    }
}

/// <summary>
/// Dense adapters (reference <c>CLIPSegDenseAdapter</c>): inside encoder layers
/// 0 … max(extract_layers)−1 of a tower, one adapter on the attention output and one on the MLP
/// output, each before its residual addition; plus the conditional-embedding adapter (C).
/// </summary>
public sealed class DenseAdapterSet : nn.Module
{
    // Field names are the reference's state-dict keys; absent parts stay null and are not registered.
    private readonly ModuleList<Adapter>? v_attn_adapters;
    private readonly ModuleList<Adapter>? v_out_adapters;
    private readonly ModuleList<Adapter>? l_attn_adapters;
    private readonly ModuleList<Adapter>? l_out_adapters;
    private readonly Adapter? cond_adapter;

    public DenseAdapterSet(ClipSegConfig c, FineTuneSpec spec) : base(nameof(DenseAdapterSet))
    {
        int depth = c.ExtractLayers.Max();
        if (spec.Parts.HasFlag(AdapterParts.V))
        {
            v_attn_adapters = ShallowAdapterSet.Stack(Math.Min(depth, c.Vision.NumHiddenLayers), c.Vision.HiddenSize, spec);
            v_out_adapters = ShallowAdapterSet.Stack(Math.Min(depth, c.Vision.NumHiddenLayers), c.Vision.HiddenSize, spec);
        }
        if (spec.Parts.HasFlag(AdapterParts.L))
        {
            // A text tower shallower than the deepest extract layer gets adapters on every layer it has.
            l_attn_adapters = ShallowAdapterSet.Stack(Math.Min(depth, c.Text.NumHiddenLayers), c.Text.HiddenSize, spec);
            l_out_adapters = ShallowAdapterSet.Stack(Math.Min(depth, c.Text.NumHiddenLayers), c.Text.HiddenSize, spec);
        }
        if (spec.Parts.HasFlag(AdapterParts.C))
            cond_adapter = new Adapter(c.ProjectionDim, spec.CondAdapterDim, spec.ZeroInitFc2);
        RegisterComponents();
    }

    public ModuleList<Adapter>? VisionAttention => v_attn_adapters;
    public ModuleList<Adapter>? VisionOutput => v_out_adapters;
    public ModuleList<Adapter>? LanguageAttention => l_attn_adapters;
    public ModuleList<Adapter>? LanguageOutput => l_out_adapters;
    public Adapter? Cond => cond_adapter;

    public Func<int, EncoderLayerHooks>? VisionHooks => Hooks(VisionAttention, VisionOutput);
    public Func<int, EncoderLayerHooks>? LanguageHooks => Hooks(LanguageAttention, LanguageOutput);

    private static Func<int, EncoderLayerHooks>? Hooks(ModuleList<Adapter>? attention, ModuleList<Adapter>? output)
    {
        if (attention is null || output is null) return null;
        return i => i < attention.Count
            ? new EncoderLayerHooks(attention[i].ForwardKeepingDtype, output[i].ForwardKeepingDtype)
            : default;
    }
}
