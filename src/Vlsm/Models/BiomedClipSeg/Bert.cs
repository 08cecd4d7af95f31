using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Models.ClipSeg;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.BiomedClipSeg;

// Field names in this file are HF BERT's state-dict keys (RegisterComponents uses them), LayerNorm included.
#pragma warning disable IDE1006

/// <summary>HF <c>BertEmbeddings</c>: word + absolute position + token type (all 0), then LayerNorm.</summary>
public sealed class BertEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding word_embeddings, position_embeddings, token_type_embeddings;
    private readonly LayerNorm LayerNorm;

    public BertEmbeddings(BertConfig c) : base(nameof(BertEmbeddings))
    {
        word_embeddings = Embedding(c.VocabSize, c.HiddenSize, padding_idx: c.PadTokenId);
        position_embeddings = Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        token_type_embeddings = Embedding(c.TypeVocabSize, c.HiddenSize);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds)
    {
        long l = inputIds.shape[1];
        long max = position_embeddings.weight!.shape[0];
        if (l > max)
            throw new VlsmException($"prompt has {l} tokens; BiomedCLIP's text tower takes at most {max}.");
        using var words = word_embeddings.forward(inputIds);
        using var positions = position_embeddings.weight!.narrow(0, 0, l);
        // token_type_ids are the registered all-zero buffer: every position adds type 0.
        using var type0 = token_type_embeddings.weight!.narrow(0, 0, 1);
        using var withPositions = Plus(words, positions);
        using var sum = Plus(withPositions, type0);
        return LayerNorm.forward(sum);
    }
}

/// <summary>HF <c>BertSelfAttention</c>: separate query/key/value, softmax(q·kᵀ/√d + mask)·v.</summary>
public sealed class BertSelfAttention : nn.Module
{
    private readonly Linear query, key, value;
    private readonly int heads;

    public BertSelfAttention(BertConfig c) : base(nameof(BertSelfAttention))
    {
        heads = c.NumAttentionHeads;
        query = Linear(c.HiddenSize, c.HiddenSize);
        key = Linear(c.HiddenSize, c.HiddenSize);
        value = Linear(c.HiddenSize, c.HiddenSize);
        RegisterComponents();
    }

    /// <param name="bias">Additive mask (B, 1, 1, L): 0 for attended keys, the dtype's lowest value for masked ones.</param>
    public Tensor Forward(Tensor x, Tensor bias)
    {
        long b = x.shape[0], l = x.shape[1], d = x.shape[2], hd = d / heads;
        using var q0 = query.forward(x);
        using var k0 = key.forward(x);
        using var v0 = value.forward(x);
        using var q = q0.view(b, l, heads, hd).transpose(1, 2);
        using var k = k0.view(b, l, heads, hd).transpose(1, 2);
        using var v = v0.view(b, l, heads, hd).transpose(1, 2);
        using var o = functional.scaled_dot_product_attention(q, k, v, bias);
        return o.transpose(1, 2).reshape(b, l, d);
    }
}

/// <summary>HF <c>BertSelfOutput</c> / <c>BertOutput</c>: dense, then LayerNorm of it plus the residual (post-LN).</summary>
public sealed class BertResidualOutput : nn.Module
{
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;

    public BertResidualOutput(int input, int hidden, double eps) : base(nameof(BertResidualOutput))
    {
        dense = Linear(input, hidden);
        LayerNorm = nn.LayerNorm(hidden, eps);
        RegisterComponents();
    }

    /// <param name="hook">A dense adapter on the sub-block's output, before the residual addition.</param>
    public Tensor Forward(Tensor x, Tensor residual, Func<Tensor, Tensor>? hook)
    {
        var h = TimmBlock.Hook(hook, dense.forward(x));
        using var sum = Plus(h, residual);
        h.Dispose();
        return LayerNorm.forward(sum);
    }
}

/// <summary>HF <c>BertAttention</c>: <c>self</c> and <c>output</c>.</summary>
public sealed class BertAttention : nn.Module
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig c) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(c);
        output = new BertResidualOutput(c.HiddenSize, c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor bias, Func<Tensor, Tensor>? hook)
    {
        using var context = self.Forward(x, bias);
        return output.Forward(context, x, hook);
    }
}

/// <summary>HF <c>BertIntermediate</c>: dense and exact GELU.</summary>
public sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;

    public BertIntermediate(BertConfig c) : base(nameof(BertIntermediate))
    {
        dense = Linear(c.HiddenSize, c.IntermediateSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var h = dense.forward(x);
        return functional.gelu(h);
    }
}

/// <summary>HF <c>BertLayer</c> (post-LN): LN(x + attn(x)), then LN(h + dense(gelu(dense(h)))).</summary>
public sealed class BertLayer : nn.Module
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig c) : base(nameof(BertLayer))
    {
        attention = new BertAttention(c);
        intermediate = new BertIntermediate(c);
        output = new BertResidualOutput(c.IntermediateSize, c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor bias, EncoderLayerHooks hooks = default)
    {
        using var h = attention.Forward(x, bias, hooks.AfterAttention);
        using var inner = intermediate.forward(h);
        return output.Forward(inner, h, hooks.AfterMlp);
    }
}

/// <summary>HF <c>BertEncoder</c>: <c>layer</c>, a list of <see cref="BertLayer"/>.</summary>
public sealed class BertEncoder : nn.Module
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c) : base(nameof(BertEncoder))
    {
        layer = new ModuleList<BertLayer>();
        for (int i = 0; i < c.NumHiddenLayers; i++) layer.Add(new BertLayer(c));
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor bias, Func<int, EncoderLayerHooks>? hooks)
    {
        Tensor h = x;
        for (int i = 0; i < layer.Count; i++)
        {
            var next = layer[i].Forward(h, bias, hooks?.Invoke(i) ?? default);
            if (!ReferenceEquals(h, x)) h.Dispose();
            h = next;
        }
        return ReferenceEquals(h, x) ? x.alias() : h;
    }
}

/// <summary>
/// HF <c>BertModel</c> built with <c>add_pooling_layer=False</c> (open_clip's <c>HFTextEncoder</c>
/// for a non-<c>cls_pooler</c> pooler): no <c>pooler.*</c> weights.
/// </summary>
public sealed class BertModel : nn.Module
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;

    public BertModel(BertConfig c) : base(nameof(BertModel))
    {
        embeddings = new BertEmbeddings(c);
        encoder = new BertEncoder(c);
        RegisterComponents();
    }

    /// <summary>The last hidden state (B, L, hidden) at every position, padded ones included.</summary>
    /// <param name="attentionMask">(B, L), 1 for attended positions.</param>
    public Tensor Forward(Tensor inputIds, Tensor attentionMask, Func<int, EncoderLayerHooks>? hooks = null)
    {
        using var x = embeddings.forward(inputIds);
        using var bias = AttentionBias(attentionMask, x.dtype);
        return encoder.Forward(x, bias, hooks);
    }

    /// <summary>HF's extended mask: (1 − mask) · finfo(dtype).min, as (B, 1, 1, L).</summary>
    internal static Tensor AttentionBias(Tensor attentionMask, ScalarType dtype)
    {
        long b = attentionMask.shape[0], l = attentionMask.shape[1];
        using var masked = attentionMask.eq(0L).view(b, 1, 1, l);
        using var fill = (dtype == ScalarType.BFloat16 ? -3.3895313892515355e38 : float.MinValue).ToScalar();
        using var zero = zeros(b, 1, 1, l, dtype, attentionMask.device);
        return zero.masked_fill(masked, fill);
    }
}

/// <summary>
/// open_clip's <c>HFTextEncoder</c> as BiomedCLIP configures it: <c>transformer</c> (the BERT),
/// the <c>ClsLastHiddenStatePooler</c> (last_hidden_state[:, 0]) and the mlp <c>proj</c>:
/// Linear(d, (d+E)//2, no bias) → GELU → Linear((d+E)//2, E, no bias). Not L2-normalised.
/// </summary>
public sealed class BiomedText : nn.Module
{
    private readonly BertModel transformer;
    private readonly Sequential proj;

    public BiomedText(BertConfig c, int embedDim) : base(nameof(BiomedText))
    {
        int hidden = (c.HiddenSize + embedDim) / 2;
        transformer = new BertModel(c);
        proj = Sequential(
            ("0", Linear(c.HiddenSize, hidden, hasBias: false)),
            ("1", GELU()),
            ("2", Linear(hidden, embedDim, hasBias: false)));
        RegisterComponents();
    }

    public BertModel Transformer => transformer;
    public Sequential Proj => proj;

    /// <summary>The pooled state: the last hidden state at position 0 ([CLS]).</summary>
    public static Tensor Pool(Tensor lastHidden) => lastHidden.select(1, 0).contiguous();
}
