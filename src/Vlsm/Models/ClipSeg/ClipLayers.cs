using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Models.KeptScalars;

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

    private static Tensor QuickGelu(Tensor x)
    {
        using var scaled = Times(x, 1.702);
        using var gate = functional.sigmoid(scaled);
        return x.mul(gate);
    }
}

/// <summary>HF <c>CLIPAttention</c>: separate q/k/v/out projections with bias, q scaled by head_dim^-0.5.</summary>
public sealed class ClipAttention : nn.Module
{
    private readonly Linear k_proj, v_proj, q_proj, out_proj;
    private readonly int heads;

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
        long b = x.shape[0], l = x.shape[1], d = x.shape[2];
        long hd = d / heads;
        using var q = q_proj.forward(x).view(b, l, heads, hd).transpose(1, 2);
        using var k = k_proj.forward(x).view(b, l, heads, hd).transpose(1, 2);
        using var v = v_proj.forward(x).view(b, l, heads, hd).transpose(1, 2);
        // SDPA's default scale is head_dim^-0.5, the same as HF's explicit q scaling.
        using var o = functional.scaled_dot_product_attention(q, k, v, mask);
        using var merged = o.transpose(1, 2).reshape(b, l, d);
        return out_proj.forward(merged);
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
        using var a = ClipActivation.Apply(activation, h);
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
