using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.ClipSeg;

/// <summary>What the text tower hands to the trainable head.</summary>
public sealed class TextFeatures : IDisposable
{
    public TextFeatures(Tensor conditional, IReadOnlyList<Tensor>? pooledHidden)
    {
        Conditional = conditional;
        PooledHidden = pooledHidden;
    }

    /// <summary>text_projection of the pooled text state, before any adapter (B, projection_dim).</summary>
    public Tensor Conditional { get; }

    /// <summary>Text hidden_states[i+1] at the pooled position, per extract layer (shallow L only).</summary>
    public IReadOnlyList<Tensor>? PooledHidden { get; }

    public void Dispose()
    {
        Conditional.Dispose();
        if (PooledHidden is not null) foreach (var t in PooledHidden) t.Dispose();
    }
}

/// <summary>
/// CLIPSeg with a fine-tuning mode: adapters (shallow or dense), decoder only, or full. The base
/// model's parameters are frozen except where the mode trains them; in shallow and decoder modes
/// the towers run without autograd so no activations are kept for them. It owns the base model:
/// disposing it disposes the base, and train()/eval() reach the base too.
/// </summary>
public sealed class AdaptedClipSeg : nn.Module
{
    private readonly ClipSegModel base_model;
    private readonly ShallowAdapterSet? shallow;
    private readonly DenseAdapterSet? dense;
    // The file-facing names come from Adapters' own state dict; these fields only give this wrapper a tree.

    public AdaptedClipSeg(ClipSegModel baseModel, FineTuneSpec spec) : base(nameof(AdaptedClipSeg))
    {
        Spec = spec;
        base_model = baseModel;
        if (spec.Mode == FineTuneMode.Shallow) shallow = new ShallowAdapterSet(baseModel.Config, spec);
        else if (spec.Mode == FineTuneMode.Dense) dense = new DenseAdapterSet(baseModel.Config, spec);
        RegisterComponents();
        ApplyFreezing();
    }

    public FineTuneSpec Spec { get; }
    public ClipSegModel Base => base_model;
    public ClipSegConfig Config => base_model.Config;

    /// <summary>The adapter module whose state dict is the adapter file (null in decoder and full modes).</summary>
    public nn.Module? Adapters => (nn.Module?)shallow ?? dense;

    /// <summary>The tensors an adapter/checkpoint file holds, under the names it holds them.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() => Spec.Mode switch
    {
        FineTuneMode.Shallow or FineTuneMode.Dense => Adapters!.named_parameters().Select(p => (p.name, p.parameter)),
        FineTuneMode.Decoder => base_model.named_parameters().Where(p => p.name.StartsWith("decoder.", StringComparison.Ordinal)).Select(p => (p.name, p.parameter)),
        _ => base_model.named_parameters().Where(p => !(Spec.FreezeText && IsTextTower(p.name))).Select(p => (p.name, p.parameter)),
    };

    private static bool IsTextTower(string name) =>
        name.StartsWith("clip.text_model.", StringComparison.Ordinal) || name.StartsWith("clip.text_projection.", StringComparison.Ordinal);

    public IEnumerable<Parameter> TrainableParameters() => TrainableNamed().Select(p => p.Parameter);

    public long TrainableParameterCount => TrainableParameters().Sum(p => p.numel());

    private void ApplyFreezing()
    {
        foreach (var (_, p) in base_model.named_parameters()) p.requires_grad = false;
        foreach (var (_, p) in TrainableNamed()) p.requires_grad = true;
    }

    /// <summary>The dtype the CLIP towers compute in (float32, or bfloat16 after <see cref="UseBf16Towers"/>).</summary>
    public ScalarType TowerDtype => base_model.TowerDtype;

    /// <summary>
    /// Runs the frozen CLIP towers (and the text projection) in bfloat16, dense adapters inside them
    /// too (on bf16 copies of their float32 weights, as autocast does); trainable weights, decoder,
    /// loss and optimizer stay float32, and tower outputs are widened before the head. Call before
    /// creating an optimizer. Not for full mode, whose towers train.
    /// </summary>
    public void UseBf16Towers()
    {
        if (Spec.Mode == FineTuneMode.Full)
            throw new VlsmException("bf16 applies to frozen towers; full mode trains them, so use --precision fp32.");
        base_model.SetTowerDtype(ScalarType.BFloat16);
    }

    private bool VisionNeedsGradient => Spec.Mode == FineTuneMode.Full || (dense?.VisionHooks is not null);
    private bool TextNeedsGradient => (Spec.Mode == FineTuneMode.Full && !Spec.FreezeText) || (dense?.LanguageHooks is not null);

    /// <summary>Vision hidden states at extract_layers, in float32 (dense V adapters applied inside the tower).</summary>
    public VisionFeatures EncodeImage(Tensor pixelValues)
    {
        using var _ = VisionNeedsGradient ? null : no_grad();
        return base_model.EncodeImage(pixelValues, dense?.VisionHooks);
    }

    /// <summary>The conditional embedding before adapters, and the pooled text states shallow L needs, in float32.</summary>
    public TextFeatures EncodeText(Tensor inputIds, Tensor? attentionMask)
    {
        using var _ = TextNeedsGradient ? null : no_grad();
        if (shallow?.TextExtract is null)
            return new TextFeatures(base_model.EncodeText(inputIds, attentionMask, dense?.LanguageHooks), null);

        // Hidden state k is the output of text layer k-1; a tower shallower than the extract layers gives its last.
        var layers = Config.ExtractLayers.Select(i => Math.Min(i, Config.Text.NumHiddenLayers - 1)).ToList();
        var keep = layers.Select(i => i + 1).ToHashSet();
        var (pooled, hidden) = base_model.Clip.TextModel.Forward(inputIds, attentionMask, keep);
        using (pooled)
        {
            using var projected = base_model.Clip.TextProjection.forward(pooled);
            var conditional = ClipSegModel.Widen(projected);
            using var positions = ClipTextTransformer.EndPositions(inputIds);
            var atPooled = layers.Select(i =>
            {
                using var h = ClipTextTransformer.AtPositions(hidden[i + 1], positions);
                return ClipSegModel.Widen(h);
            }).ToList();
            foreach (var h in hidden.Values) h.Dispose();
            return new TextFeatures(conditional, atPooled);
        }
    }

    /// <summary>The trainable part: shallow/conditional adapters and the decoder.</summary>
    public Tensor Head(VisionFeatures vision, TextFeatures text)
    {
        var activations = vision.Activations;
        List<Tensor>? adapted = null;
        if (shallow?.VisionExtract is { } va)
        {
            adapted = activations.Select((a, i) => va[i].ForwardKeepingDtype(a)).ToList();
            activations = adapted;
        }
        var cond = ConditionalEmbedding(text);
        try
        {
            return base_model.Decoder.Forward(activations, cond, vision.GridHeight, vision.GridWidth);
        }
        finally
        {
            cond.Dispose();
            if (adapted is not null) foreach (var a in adapted) a.Dispose();
        }
    }

    public Tensor Forward(Tensor pixelValues, Tensor inputIds, Tensor? attentionMask)
    {
        using var vision = EncodeImage(pixelValues);
        using var text = EncodeText(inputIds, attentionMask);
        return Head(vision, text);
    }

    /// <summary>
    /// A shallow L adapter's output in the conditional embedding's width: itself when the text
    /// width is the projection width (the reference's case), else through the frozen text projection.
    /// </summary>
    private Tensor ToProjectionWidth(Tensor adapted)
    {
        if (Config.Text.HiddenSize == Config.ProjectionDim) return adapted.alias();
        var projection = base_model.Clip.TextProjection;
        using var typed = adapted.to(projection.weight!.dtype);
        using var projected = projection.forward(typed);
        return ClipSegModel.Widen(projected);
    }

    /// <summary>The conditional embedding the decoder sees: C adapter first, then the L terms added (as the reference orders them).</summary>
    public Tensor ConditionalEmbedding(TextFeatures text)
    {
        var cond = (shallow?.Cond ?? dense?.Cond) is { } ca ? ca.ForwardKeepingDtype(text.Conditional) : text.Conditional.alias();
        if (shallow?.TextExtract is { } ta)
            for (int i = 0; i < ta.Count; i++)
            {
                using var adapted = ta[i].ForwardKeepingDtype(text.PooledHidden![i]);
                using var add = ToProjectionWidth(adapted);
                var sum = Plus(cond, add);
                cond.Dispose();
                cond = sum;
            }
        return cond;
    }
}
