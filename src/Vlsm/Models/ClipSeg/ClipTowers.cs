using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;
using Vlsm.Tensors;

namespace Vlsm.Models.ClipSeg;

#pragma warning disable IDE1006 // field names are HF state-dict keys

public sealed class ClipVisionEmbeddings : nn.Module, IDerivedTensorCache
{
    private readonly Parameter class_embedding;
    private readonly SafeConv2d patch_embedding;
    private readonly Embedding position_embedding;
    private readonly int patchSize;
    private readonly int pretrainGrid;
    private readonly Dictionary<(long, long, ScalarType), Tensor> interpolated = new();

    public ClipVisionEmbeddings(ClipTowerConfig c) : base(nameof(ClipVisionEmbeddings))
    {
        patchSize = c.PatchSize;
        pretrainGrid = c.ImageSize / c.PatchSize;
        class_embedding = new Parameter(randn(c.HiddenSize));
        patch_embedding = new SafeConv2d(c.NumChannels, c.HiddenSize, c.PatchSize, stride: c.PatchSize, bias: false);
        position_embedding = Embedding(pretrainGrid * pretrainGrid + 1, c.HiddenSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor pixelValues)
    {
        long b = pixelValues.shape[0];
        using var patches = patch_embedding.forward(pixelValues);
        long gh = patches.shape[2], gw = patches.shape[3];
        using var flat = patches.flatten(2);
        using var tokens = flat.transpose(1, 2);
        using var typedClass = class_embedding.to(tokens.dtype);
        using var cls = typedClass.expand(b, 1, -1);
        using var embeddings = cat(new[] { cls, tokens }, 1);
        var (positions, cached) = PositionEmbeddings(gh, gw);
        try
        {
            using var typed = positions.to(embeddings.dtype);
            return Plus(embeddings, typed);
        }
        finally
        {
            if (!cached) positions.Dispose();
        }
    }

    /// <summary>
    /// Position embeddings for a gh×gw patch grid: the stored table when the grid is the
    /// pretraining grid, else its patch part resized bicubically (align_corners false) with the
    /// class position unchanged, as HF does. Frozen tables are resized once per grid and cached.
    /// </summary>
    private (Tensor Table, bool Cached) PositionEmbeddings(long gh, long gw)
    {
        var weight = position_embedding.weight!;
        if (gh == pretrainGrid && gw == pretrainGrid) return (weight.alias(), false);
        bool cacheable = !weight.requires_grad;
        var key = (gh, gw, weight.dtype);
        if (cacheable && interpolated.TryGetValue(key, out var hit)) return (hit, true);
        Tensor result;
        using (var scope = NewDisposeScope())
        {
            long d = weight.shape[1];
            var cls = weight.narrow(0, 0, 1);
            var grid = weight.narrow(0, 1, weight.shape[0] - 1)
                .reshape(1, pretrainGrid, pretrainGrid, d).permute(0, 3, 1, 2);
            var resized = functional.interpolate(grid.to(ScalarType.Float32), new[] { gh, gw },
                mode: InterpolationMode.Bicubic, align_corners: false);
            var flat = resized.permute(0, 2, 3, 1).reshape(gh * gw, d).to(weight.dtype);
            result = cat(new[] { cls, flat }, 0).MoveToOuterDisposeScope();
        }
        if (!cacheable) return (result, false);
        var frozen = result.detach().DetachFromDisposeScope();
        result.Dispose();
        interpolated[key] = frozen;
        return (frozen, true);
    }

    /// <summary>Drops cached interpolations; call after the table's values or dtype change.</summary>
    public void ClearCache()
    {
        foreach (var t in interpolated.Values) t.Dispose();
        interpolated.Clear();
    }
}

/// <summary>HF <c>CLIPVisionTransformer</c>.</summary>
public sealed class ClipVisionTransformer : nn.Module
{
    private readonly ClipVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm post_layernorm; // loaded with the checkpoint; segmentation never uses it

    public ClipVisionTransformer(ClipTowerConfig c) : base(nameof(ClipVisionTransformer))
    {
        embeddings = new ClipVisionEmbeddings(c);
        pre_layrnorm = LayerNorm(c.HiddenSize, c.LayerNormEps);
        encoder = new ClipEncoder(c);
        post_layernorm = LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public ClipVisionEmbeddings Embeddings => embeddings;

    /// <summary>Returns HF hidden_states[k] for each k in <paramref name="keep"/> (k ≥ 1 means after layer k-1).</summary>
    public Dictionary<int, Tensor> Forward(Tensor pixelValues, IReadOnlySet<int> keep, Func<int, EncoderLayerHooks>? hooks = null)
    {
        using var e = embeddings.Forward(pixelValues);
        using var x = pre_layrnorm.forward(e);
        return encoder.Forward(x, null, keep.Max(), keep, hooks);
    }
}

/// <summary>HF <c>CLIPTextTransformer</c>.</summary>
public sealed class ClipTextTransformer : nn.Module
{
    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;
    private readonly int layerCount;

    public ClipTextTransformer(ClipTowerConfig c) : base(nameof(ClipTextTransformer))
    {
        layerCount = c.NumHiddenLayers;
        embeddings = new ClipTextEmbeddings(c);
        encoder = new ClipEncoder(c);
        final_layer_norm = LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    /// <summary>
    /// The pooled text state (final LN at the first position of the largest id, i.e. the end
    /// token) and HF hidden_states[k] for each k in <paramref name="keep"/>, all tokens.
    /// </summary>
    public (Tensor Pooled, Dictionary<int, Tensor> Hidden) Forward(Tensor inputIds, Tensor? attentionMask,
        IReadOnlySet<int>? keep = null, Func<int, EncoderLayerHooks>? hooks = null)
    {
        long b = inputIds.shape[0], l = inputIds.shape[1];
        using var x = embeddings.Forward(inputIds);
        using var mask = AttentionBias(attentionMask, b, l, x.dtype, x.device);
        var wanted = new HashSet<int>(keep ?? new HashSet<int>()) { layerCount };
        var hidden = encoder.Forward(x, mask, layerCount, wanted, hooks);
        var last = hidden[layerCount];
        bool callerWantsLast = keep?.Contains(layerCount) == true;
        if (!callerWantsLast) hidden.Remove(layerCount);
        using var normed = final_layer_norm.forward(last);
        if (!callerWantsLast) last.Dispose();
        using var position = EndPositions(inputIds);
        return (AtPositions(normed, position), hidden);
    }

    /// <summary>The pooled position per row: the first occurrence of the largest id (the end token).</summary>
    public static Tensor EndPositions(Tensor inputIds) => inputIds.argmax(-1);

    /// <summary>(B, L, D) states taken at one position per row (B) → (B, D).</summary>
    public static Tensor AtPositions(Tensor states, Tensor positions)
    {
        long b = states.shape[0];
        using var index = positions.view(b, 1, 1).expand(b, 1, states.shape[2]);
        using var gathered = states.gather(1, index);
        return gathered.squeeze(1);
    }

    /// <summary>Causal mask combined with the padding mask, as an additive bias (B, 1, L, L).</summary>
    private static Tensor AttentionBias(Tensor? attentionMask, long b, long l, ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        var causal = ones(l, l, ScalarType.Bool, device).tril().view(1, 1, l, l);
        var allowed = attentionMask is null
            ? causal
            : causal.logical_and(attentionMask.to(ScalarType.Bool).view(b, 1, 1, l));
        // A large negative number rather than -inf keeps a fully masked row finite.
        using var fill = MinValue(dtype).ToScalar(); // held until the kernel has read it (see KeptScalars)
        var bias = zeros(allowed.shape, dtype, device).masked_fill(allowed.logical_not(), fill);
        return bias.MoveToOuterDisposeScope();
    }

    private static double MinValue(ScalarType t) => t switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.38e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };
}

public sealed class ClipTextEmbeddings : nn.Module
{
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;

    public ClipTextEmbeddings(ClipTowerConfig c) : base(nameof(ClipTextEmbeddings))
    {
        token_embedding = Embedding(c.VocabSize, c.HiddenSize);
        position_embedding = Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor inputIds)
    {
        long l = inputIds.shape[1];
        long max = position_embedding.weight!.shape[0];
        if (l > max)
            throw new VlsmException($"prompt has {l} tokens; this model's text tower takes at most {max}.");
        using var tokens = token_embedding.forward(inputIds);
        using var positions = position_embedding.weight!.narrow(0, 0, l);
        return Plus(tokens, positions);
    }
}
