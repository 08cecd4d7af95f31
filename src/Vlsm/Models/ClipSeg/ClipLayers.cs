using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;
using Vlsm.Tensors;

namespace Vlsm.Models.ClipSeg;

// Field names in this file are the HF state-dict keys (RegisterComponents uses them),
// hence the snake_case.
#pragma warning disable IDE1006

/// <summary>The activations HF configs name in <c>hidden_act</c>.</summary>
public static class ClipActivation
{
    public static readonly IReadOnlyList<string> Supported = new[] { "quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu" };

    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "quick_gelu" => QuickGelu(x),
        "gelu" => functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" =>
            0.5 * x * (1.0 + tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * x.pow(3)))),
        "relu" => functional.relu(x),
        _ => throw new VlsmException($"hidden_act \"{name}\" is not supported; use one of {string.Join(", ", Supported)}."),
    };

    /// <summary>
    /// <see cref="Apply"/> for a tensor the caller no longer needs: bf16 quick_gelu outside autograd is
    /// then computed in x's own memory (no MLP-wide allocation per layer, which at batch 8 is 24 MB of
    /// fresh pages) and the result is an alias of x.
    /// </summary>
    public static Tensor ApplyOverwriting(string name, Tensor x)
    {
        if (name != "quick_gelu" || x.dtype != ScalarType.BFloat16 || x.requires_grad) return Apply(name, x);
        DividedBy_(Times_(x, 1.702).silu_(), 1.702);
        return x.alias();
    }

    /// <summary>x · sigmoid(1.702 x), with one temporary: the product is taken in place unless autograd needs the sigmoid.</summary>
    /// <remarks>
    /// bf16 computes it as silu(1.702 x) / 1.702, the same function through libtorch's fused silu:
    /// under autograd that keeps one MLP-wide tensor (silu's input) instead of two (x and the
    /// sigmoid), 12 MB less per CLIP layer at batch 4 (120 MB less peak memory for a dense-adapter
    /// step), with a backward pass of three passes over memory instead of five. float32 keeps the
    /// reference's form (the parity tests compare it to 1e-4).
    /// </remarks>
    private static Tensor QuickGelu(Tensor x)
    {
        if (x.dtype == ScalarType.BFloat16)
        {
            var scaled = Times(x, 1.702);
            if (!scaled.requires_grad) return DividedBy_(scaled.silu_(), 1.702);
            using (scaled) return DividedBy_(scaled.silu(), 1.702);
        }
        var s = Times(x, 1.702);
        s.sigmoid_();
        if (!x.requires_grad) return s.mul_(x);
        using (s) return x.mul(s);
    }
}


/// <summary>HF <c>CLIPAttention</c>: separate q/k/v/out projections with bias, q scaled by head_dim^-0.5.</summary>
/// <remarks>
/// q, k and v are computed with one matrix product over their stacked weights (the state dict
/// keeps the three HF tensors). Frozen weights are stacked once and kept until
/// <see cref="ClearCache"/>; trainable ones are stacked on every call so gradients reach them.
/// </remarks>
public sealed class ClipAttention : nn.Module, IDerivedTensorCache
{
    private readonly Linear k_proj, v_proj, q_proj, out_proj;
    private readonly int heads;
    private (Tensor Weight, Tensor Bias)? fused;

    public ClipAttention(int hidden, int heads) : base(nameof(ClipAttention))
    {
        this.heads = heads;
        k_proj = Linear(hidden, hidden);
        v_proj = Linear(hidden, hidden);
        q_proj = Linear(hidden, hidden);
        out_proj = Linear(hidden, hidden);
        RegisterComponents();
    }

    /// <param name="mask">Additive mask broadcastable to (B, heads, L, L), or null.</param>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var qkv = ProjectQkv(x);
        using var merged = Attention.SelfAttention(qkv, heads, mask);
        return out_proj.forward(merged);
    }

    private Tensor ProjectQkv(Tensor x)
    {
        if (fused is { } cached) return functional.linear(x, cached.Weight, cached.Bias);
        bool frozen = new[] { q_proj, k_proj, v_proj }.All(p => !p.weight!.requires_grad && !p.bias!.requires_grad);
        if (!frozen)
        {
            using var weight = cat(new[] { q_proj.weight!, k_proj.weight!, v_proj.weight! }, 0);
            using var bias = cat(new[] { q_proj.bias!, k_proj.bias!, v_proj.bias! }, 0);
            return functional.linear(x, weight, bias);
        }
        // Built outside inference mode so the stacked weights may also serve autograd (dense adapters train through frozen layers).
        using (inference_mode(false))
        using (no_grad())
        {
            fused = (cat(new[] { q_proj.weight!, k_proj.weight!, v_proj.weight! }, 0).DetachFromDisposeScope(),
                cat(new[] { q_proj.bias!, k_proj.bias!, v_proj.bias! }, 0).DetachFromDisposeScope());
        }
        return functional.linear(x, fused.Value.Weight, fused.Value.Bias);
    }

    public void ClearCache()
    {
        if (fused is not { } f) return;
        f.Weight.Dispose();
        f.Bias.Dispose();
        fused = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) ClearCache();
        base.Dispose(disposing);
    }
}

/// <summary>HF <c>CLIPMLP</c>: fc1, activation, fc2.</summary>
public sealed class ClipMlp : nn.Module
{
    private readonly Linear fc1, fc2;
    private readonly string activation;

    public ClipMlp(int hidden, int intermediate, string activation) : base(nameof(ClipMlp))
    {
        this.activation = activation;
        fc1 = Linear(hidden, intermediate);
        fc2 = Linear(intermediate, hidden);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var h = fc1.forward(x);
        using var a = ClipActivation.ApplyOverwriting(activation, h);
        return fc2.forward(a);
    }
}

/// <summary>
/// Optional transforms applied to a sub-block's output before its residual addition;
/// this is where dense adapters sit (y = x + A(Attn(LN1(x))), x' = y + A(MLP(LN2(y)))).
/// </summary>
public readonly record struct EncoderLayerHooks(Func<Tensor, Tensor>? AfterAttention, Func<Tensor, Tensor>? AfterMlp);

/// <summary>HF <c>CLIPEncoderLayer</c>, pre-LN.</summary>
public sealed class ClipEncoderLayer : nn.Module
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly ClipMlp mlp;
    private readonly LayerNorm layer_norm2;

    public ClipEncoderLayer(ClipTowerConfig c) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(c.HiddenSize, c.NumAttentionHeads);
        layer_norm1 = LayerNorm(c.HiddenSize, c.LayerNormEps);
        mlp = new ClipMlp(c.HiddenSize, c.IntermediateSize, c.HiddenAct);
        layer_norm2 = LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? mask, EncoderLayerHooks hooks = default)
    {
        Tensor attn;
        using (var n1 = layer_norm1.forward(x))
            attn = self_attn.Forward(n1, mask);
        if (hooks.AfterAttention is { } a)
        {
            var adapted = a(attn);
            attn.Dispose();
            attn = adapted;
        }
        using var y = Plus(x, attn);
        attn.Dispose();
        Tensor m;
        using (var n2 = layer_norm2.forward(y))
            m = mlp.Forward(n2);
        if (hooks.AfterMlp is { } f)
        {
            var adapted = f(m);
            m.Dispose();
            m = adapted;
        }
        var result = Plus(y, m);
        m.Dispose();
        return result;
    }
}

/// <summary>HF <c>CLIPSegDecoderLayer</c>: post-LN, ReLU MLP.</summary>
public sealed class ClipSegDecoderLayer : nn.Module
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly ClipMlp mlp;
    private readonly LayerNorm layer_norm2;

    public ClipSegDecoderLayer(int hidden, int heads, int intermediate, double eps) : base(nameof(ClipSegDecoderLayer))
    {
        self_attn = new ClipAttention(hidden, heads);
        layer_norm1 = LayerNorm(hidden, eps);
        // HF forces "relu" for the decoder whatever decoder_hidden_act says.
        mlp = new ClipMlp(hidden, intermediate, "relu");
        layer_norm2 = LayerNorm(hidden, eps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var attn = self_attn.Forward(x, null);
        using var r1 = Plus(x, attn);
        using var y = layer_norm1.forward(r1);
        using var m = mlp.Forward(y);
        using var r2 = Plus(y, m);
        return layer_norm2.forward(r2);
    }
}

/// <summary>HF <c>CLIPEncoder</c>: a stack of pre-LN layers.</summary>
public sealed class ClipEncoder : nn.Module
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(ClipTowerConfig c) : base(nameof(ClipEncoder))
    {
        layers = new ModuleList<ClipEncoderLayer>();
        for (int i = 0; i < c.NumHiddenLayers; i++) layers.Add(new ClipEncoderLayer(c));
        RegisterComponents();
    }

    public int Count => layers.Count;

    /// <summary>
    /// Runs layers 0..<paramref name="layerCount"/>-1 and returns hidden_states[k] for every k in
    /// <paramref name="keep"/> (HF numbering: 0 is the input, k the output of layer k-1).
    /// Layers past the last one needed are not run: they cannot affect the result.
    /// </summary>
    public Dictionary<int, Tensor> Forward(Tensor x, Tensor? mask, int layerCount, IReadOnlySet<int> keep,
        Func<int, EncoderLayerHooks>? hooks = null)
    {
        var kept = new Dictionary<int, Tensor>();
        if (keep.Contains(0)) kept[0] = x.alias();
        Tensor h = x;
        for (int i = 0; i < layerCount; i++)
        {
            var next = layers[i].Forward(h, mask, hooks?.Invoke(i) ?? default);
            if (!ReferenceEquals(h, x)) h.Dispose();
            h = next;
            if (keep.Contains(i + 1)) kept[i + 1] = h.alias();
        }
        if (!ReferenceEquals(h, x)) h.Dispose();
        return kept;
    }
}
