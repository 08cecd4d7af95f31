using TorchSharp;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Tensors;

/// <summary>
/// Scaled dot-product attention, softmax(q·kᵀ/√d + mask)·v, by the fastest correct route for the dtype.
/// </summary>
/// <remarks>
/// float32 (and everything the parity tests check) goes through libtorch's
/// <c>scaled_dot_product_attention</c>. bfloat16 on the CPU goes through two batched matrix
/// products and a softmax instead: libtorch's CPU flash-attention kernel widens bf16 blocks to float32
/// and multiplies them with float32 GEMMs, so in bf16 it is no faster than in float32, while the
/// bf16 matrix products run at the bf16 rate. At batch 4 and 485 tokens (CLIP ViT-B/16 at 352²) this
/// took a layer's attention from 28 to 12 ms forward and from about 90 to about 45 ms forward and
/// backward (bench/Vlsm.Bench <c>--child layer_micro</c>). It is what HF's eager attention computes under
/// PyTorch's bf16 autocast; the probabilities are rounded to bf16, which moves logits by about 1e-3.
/// </remarks>
public static class Attention
{
    /// <summary>Whether <see cref="ScaledDotProduct"/> takes the explicit bf16 route (VLSM_BF16_ATTENTION=sdpa turns it off, for comparisons).</summary>
    public static bool ExplicitBf16 { get; } = Environment.GetEnvironmentVariable("VLSM_BF16_ATTENTION") != "sdpa";

    /// <param name="q">(B, heads, Lq, d)</param>
    /// <param name="k">(B, heads, Lk, d)</param>
    /// <param name="v">(B, heads, Lk, d)</param>
    /// <param name="mask">Additive mask broadcastable to (B, heads, Lq, Lk), or null.</param>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? mask = null)
    {
        if (!ExplicitBf16 || q.dtype != ScalarType.BFloat16 || q.device_type != DeviceType.CPU)
            return nn.functional.scaled_dot_product_attention(q, k, v, mask);
        bool needsGradient = is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad);
        if (!needsGradient) return Explicit(q, k, v, mask);
        var o = mask is null ? RecomputingAttention.apply(q, k, v) : RecomputingAttention.apply(q, k, v, mask);
        RecomputingAttention.References.ReleaseOutputs();
        return o;
    }

    private static double Scale(Tensor q) => 1.0 / Math.Sqrt(q.shape[^1]);

    /// <summary>
    /// Samples per slice of the batch, so the (samples, heads, Lq, Lk) scores stay near 8 MB: a whole
    /// batch's scores (45 MB in bf16 at batch 8, 485 tokens) would raise peak memory by several such
    /// temporaries for no speed (each slice's matrix products are still hundreds of rows).
    /// </summary>
    private static long SamplesPerSlice(Tensor q, Tensor k) =>
        Math.Max(1, (8L << 20) / Math.Max(1, q.shape[1] * q.shape[2] * k.shape[2] * q.element_size()));

    /// <summary>Runs <paramref name="body"/> on slices [start, start+count) of the batch.</summary>
    private static void ForSlices(Tensor q, Tensor k, Action<long, long> body)
    {
        long batch = q.shape[0], step = SamplesPerSlice(q, k);
        for (long start = 0; start < batch; start += step) body(start, Math.Min(step, batch - start));
    }

    private static Tensor Slice(Tensor t, long start, long count) => t.narrow(0, start, count);

    /// <summary>The mask's rows for a slice of the batch (all of it when it broadcasts over the batch).</summary>
    private static Tensor? MaskSlice(Tensor? mask, long batch, long start, long count) =>
        mask is null ? null : mask.shape[0] == batch && batch > 1 ? mask.narrow(0, start, count) : mask.alias();

    /// <summary>The probabilities softmax(q·kᵀ/√d + mask), in q's dtype.</summary>
    private static Tensor Probabilities(Tensor q, Tensor k, Tensor? mask)
    {
        // Scaling q (Lq·d values) is cheaper than scaling the scores (Lq·Lk); 1/√d is exact in bf16 when d is a power of 4.
        using var scaled = Times(q, Scale(q));
        using var kt = k.transpose(-2, -1);
        using var scores = scaled.matmul(kt);
        if (mask is not null)
        {
            using var typed = mask.to(scores.dtype);
            scores.add_(typed, One);
        }
        return scores.softmax(-1);
    }

    private static Tensor Explicit(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        long batch = q.shape[0];
        // Laid out as (B, Lq, heads, d) in memory, as libtorch's fused kernel lays its output out, so the
        // caller's merge of the heads, o.transpose(1, 2).reshape(B, Lq, heads·d), is a view, not a copy.
        using var merged = empty(batch, q.shape[2], q.shape[1], v.shape[3], q.dtype, q.device);
        var o = merged.permute(0, 2, 1, 3);
        ForSlices(q, k, (start, count) =>
        {
            using var scope = NewDisposeScope();
            var p = Probabilities(Slice(q, start, count), Slice(k, start, count), MaskSlice(mask, batch, start, count));
            Slice(o, start, count).copy_(p.matmul(Slice(v, start, count)));
        });
        return o;
    }

    /// <summary>
    /// The explicit route under autograd, keeping what flash attention keeps (q, k, v and the output)
    /// rather than the (B, heads, L, L) probabilities, which it computes again in the backward pass:
    /// composed of autograd-tracked operations it kept 23 MB more per CLIP layer at batch 4, 350 MB
    /// more peak memory for a dense-adapter step.
    /// </summary>
    private sealed class RecomputingAttention : autograd.SingleTensorFunction<RecomputingAttention>
    {
        public static readonly CustomFunctionReferences References = new();

        public override string Name => "VlsmRecomputingAttention";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            Tensor q = (Tensor)vars[0], k = (Tensor)vars[1], v = (Tensor)vars[2];
            var mask = vars.Length > 3 ? (Tensor)vars[3] : null;
            var o = References.Output(Explicit(q, k, v, mask));
            ctx.save_for_backward(mask is null ? [q, k, v, o] : [q, k, v, o, mask]);
            return o;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            try
            {
                Tensor q = saved[0], k = saved[1], v = saved[2], o = saved[3];
                var mask = saved.Count > 4 ? saved[4] : null;
                long batch = q.shape[0];
                double scale = Scale(q);
                var dq = empty(q.shape, q.dtype, q.device);
                var dk = empty(k.shape, k.dtype, k.device);
                var dv = empty(v.shape, v.dtype, v.device);
                ForSlices(q, k, (start, count) =>
                {
                    using var scope = NewDisposeScope();
                    Tensor qs = Slice(q, start, count), ks = Slice(k, start, count), vs = Slice(v, start, count);
                    // Read three times below; the heads-merged layout it arrives in would be copied by each matrix product.
                    var dO = Slice(grad_output, start, count).contiguous();
                    var p = Probabilities(qs, ks, MaskSlice(mask, batch, start, count));
                    Slice(dv, start, count).copy_(p.transpose(-2, -1).matmul(dO));
                    // softmax's backward: dS = P ⊙ (dP − rowsum(dP ⊙ P)), and rowsum(dP ⊙ P) = rowsum(dO ⊙ O).
                    var rowSums = dO.mul(Slice(o, start, count)).sum(-1, keepdim: true);
                    var ds = dO.matmul(vs.transpose(-2, -1));
                    ds.add_(rowSums.neg_(), One).mul_(p);
                    Slice(dq, start, count).copy_(Times_(ds.matmul(ks), scale));
                    Slice(dk, start, count).copy_(Times_(ds.transpose(-2, -1).matmul(qs), scale));
                });
                var gradients = new List<Tensor> { dq, dk, dv };
                if (mask is not null) gradients.Add(null!);
                grad_output.Dispose();
                return References.Returned(gradients);
            }
            finally
            {
                foreach (var t in saved) t?.Dispose();
            }
        }
    }
}
