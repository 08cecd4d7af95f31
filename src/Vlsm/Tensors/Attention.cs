using TorchSharp;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Tensors;

/// <summary>
/// Scaled dot-product attention, softmax(q·kᵀ/√d + mask)·v, by the fastest correct route for the dtype.
/// </summary>
/// <remarks>
/// float32 goes through libtorch's <c>scaled_dot_product_attention</c>, except heads 16 wide without a
/// mask (CLIPSeg's decoder), which <see cref="Head16Attention"/> computes on AVX-512 CPUs. bfloat16 on
/// the CPU goes through two batched matrix products and a softmax instead: libtorch's CPU
/// flash-attention kernel widens bf16 blocks to float32 and multiplies them with float32 GEMMs, so in
/// bf16 it is no faster than in float32, while the bf16 matrix products run at the bf16 rate. At
/// batch 4 and 485 tokens (CLIP ViT-B/16 at 352²) this took a layer's attention from 28 to 12 ms
/// forward and from about 90 to about 45 ms forward and backward (bench/Vlsm.Bench
/// <c>--child layer_micro</c>). It is what HF's eager attention computes under
/// PyTorch's bf16 autocast; the probabilities are rounded to bf16, which moves logits by about 1e-3.
/// </remarks>
public static class Attention
{
    /// <summary>Whether <see cref="SelfAttention"/> takes the explicit bf16 route (VLSM_BF16_ATTENTION=sdpa turns it off, for comparisons).</summary>
    public static bool ExplicitBf16 { get; } = Environment.GetEnvironmentVariable("VLSM_BF16_ATTENTION") != "sdpa";

    /// <summary>
    /// Self-attention on a packed projection, as CLIP's fused q/k/v product gives it: <paramref name="qkv"/>
    /// is (B, L, 3·D) laid out as (B, L, 3, heads, head_dim); the result is (B, L, D) with the heads merged.
    /// </summary>
    /// <param name="mask">Additive mask broadcastable to (B, heads, L, L), or null.</param>
    /// <remarks>
    /// Under autograd in bf16 the route takes the packed tensor whole, so its backward writes the
    /// gradient of q, k and v into one (B, L, 3·D) tensor: autograd's own route through the three views
    /// stacked the gradients (a copy of all three) and then made the permuted stack contiguous for the
    /// projection's backward (another). q, k and v are also copied out contiguous before their matrix
    /// products, which then run faster than on the packed strides (at batch 4, 485 tokens: scores in
    /// 3.2 instead of 4.0 ms, the copies included).
    /// </remarks>
    public static Tensor SelfAttention(Tensor qkv, long heads, Tensor? mask = null)
    {
        long b = qkv.shape[0], l = qkv.shape[1], d = qkv.shape[2] / 3;
        if (ExplicitBf16 && qkv.dtype == ScalarType.BFloat16 && qkv.device_type == DeviceType.CPU)
        {
            if (!(is_grad_enabled() && qkv.requires_grad)) return ExplicitPacked(qkv, heads, mask);
            var merged = mask is null ? PackedRecomputingAttention.apply(qkv, heads) : PackedRecomputingAttention.apply(qkv, heads, mask);
            PackedRecomputingAttention.References.ReleaseOutputs();
            return merged;
        }
        if (Head16Attention.Applies(qkv, heads, mask))
        {
            if (!(is_grad_enabled() && qkv.requires_grad)) return Head16Attention.Forward(qkv, heads);
            var merged = Head16Function.apply(qkv, heads);
            Head16Function.References.ReleaseOutputs();
            return merged;
        }
        // q, k, v as (B, heads, L, head_dim) views. Every view is disposed here: an undisposed view
        // keeps the whole qkv buffer alive until its dispose scope ends.
        using var byPart = ByPart(qkv, heads);
        var split = byPart.unbind(0);
        using var q = split[0];
        using var k = split[1];
        using var v = split[2];
        // SDPA's default scale is head_dim^-0.5, the same as HF's explicit q scaling.
        using var o = nn.functional.scaled_dot_product_attention(q, k, v, mask);
        using var headsLast = o.transpose(1, 2);
        return headsLast.reshape(b, l, d);
    }

    /// <summary>The packed (B, L, 3·D) layout <see cref="SelfAttention"/> takes, from q, k and v as (B, heads, L, head_dim).</summary>
    public static Tensor Pack(Tensor q, Tensor k, Tensor v)
    {
        long b = q.shape[0], heads = q.shape[1], l = q.shape[2], hd = q.shape[3];
        using var stacked = stack([q, k, v], 0); // (3, B, heads, L, hd)
        using var laidOut = stacked.permute(1, 3, 0, 2, 4); // (B, L, 3, heads, hd)
        return laidOut.reshape(b, l, 3 * heads * hd);
    }

    /// <summary>q, k and v (or their gradients) out of a packed (B, L, 3·D) tensor, each (B, heads, L, head_dim).</summary>
    public static Tensor[] Parts(Tensor packed, long heads)
    {
        using var parts = Unpacked(packed, heads);
        return parts.unbind(0);
    }

    /// <summary>A packed (B, L, 3·D) tensor viewed as (3, B, heads, L, head_dim): q, k and v (or their gradients) along the first dimension.</summary>
    private static Tensor ByPart(Tensor packed, long heads)
    {
        long b = packed.shape[0], l = packed.shape[1], d = packed.shape[2] / 3;
        using var grouped = packed.view(b, l, 3, heads, d / heads); // disposed: only the permuted view is returned
        return grouped.permute(2, 0, 3, 1, 4);
    }

    /// <summary>q, k and v of a packed (B, L, 3·D) projection as one contiguous (3, B, heads, L, head_dim) tensor.</summary>
    private static Tensor Unpacked(Tensor qkv, long heads)
    {
        using var byPart = ByPart(qkv, heads);
        return byPart.contiguous();
    }

    /// <summary>The explicit route on a packed projection, without autograd: (B, L, D), heads merged.</summary>
    private static Tensor ExplicitPacked(Tensor qkv, long heads, Tensor? mask)
    {
        using var parts = Unpacked(qkv, heads);
        using var q = parts[0];
        using var k = parts[1];
        using var v = parts[2];
        return Explicit(q, k, v, mask);
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

    /// <summary>softmax(q·kᵀ/√d + mask)·v for (B, heads, L, d) inputs, returned as (B, Lq, heads·d), the heads merged.</summary>
    private static Tensor Explicit(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        long batch = q.shape[0];
        // Written through a (B, heads, Lq, d) view of a (B, Lq, heads, d) buffer, so merging the heads is a view.
        var merged = empty(batch, q.shape[2], q.shape[1], v.shape[3], q.dtype, q.device);
        using var o = merged.permute(0, 2, 1, 3);
        ForSlices(q, k, (start, count) =>
        {
            using var scope = NewDisposeScope();
            var p = Probabilities(Slice(q, start, count), Slice(k, start, count), MaskSlice(mask, batch, start, count));
            Slice(o, start, count).copy_(p.matmul(Slice(v, start, count)));
        });
        using (merged) return merged.view(batch, q.shape[2], q.shape[1] * v.shape[3]);
    }

    /// <summary><see cref="Head16Attention"/> under autograd: keeps the projection, the output and each row's log-sum-exp.</summary>
    private sealed class Head16Function : autograd.SingleTensorFunction<Head16Function>
    {
        public static readonly CustomFunctionReferences References = new();

        public override string Name => "VlsmHead16Attention";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            Tensor qkv = (Tensor)vars[0];
            long heads = (long)vars[1];
            // Each row's log-sum-exp (B x heads x L floats) as a managed array: a tensor kept with the
            // context would have to stay in the caller's dispose scope (TorchSharp hands saved variables
            // back through the wrapper passed in, and refuses tensors as plain data).
            var lse = new float[qkv.shape[0] * heads * qkv.shape[1]];
            var output = References.Output(Head16Attention.Forward(qkv, heads, lse));
            ctx.save_for_backward([qkv, output]);
            ctx.save_data("lse", lse);
            ctx.save_data("heads", heads);
            return output;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output) =>
            References.Backward(ctx, grad_output, saved =>
                [Head16Attention.Backward(saved[0], saved[1], (float[])ctx.get_data("lse"), grad_output, (long)ctx.get_data("heads")), null!]);
    }

    /// <summary>
    /// The explicit route under autograd, on a packed projection, keeping what flash attention keeps
    /// (the projection and the output) rather than the (B, heads, L, L) probabilities, which it computes
    /// again in the backward pass: composed of autograd-tracked operations it kept 23 MB more per CLIP
    /// layer at batch 4, 350 MB more peak memory for a dense-adapter step.
    /// </summary>
    private sealed class PackedRecomputingAttention : autograd.SingleTensorFunction<PackedRecomputingAttention>
    {
        public static readonly CustomFunctionReferences References = new();

        public override string Name => "VlsmRecomputingAttention";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            Tensor qkv = (Tensor)vars[0];
            long heads = (long)vars[1];
            var mask = vars.Length > 2 ? (Tensor)vars[2] : null;
            var merged = References.Output(ExplicitPacked(qkv, heads, mask));
            ctx.save_for_backward(mask is null ? [qkv, merged] : [qkv, merged, mask]);
            ctx.save_data("heads", heads);
            return merged;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output) =>
            References.Backward(ctx, grad_output, saved =>
            {
                Tensor qkv = saved[0], merged = saved[1];
                var mask = saved.Count > 2 ? saved[2] : null;
                long heads = (long)ctx.get_data("heads");
                long batch = qkv.shape[0], l = qkv.shape[1], d = qkv.shape[2] / 3, hd = d / heads;
                using var parts = Unpacked(qkv, heads);
                using var q = parts[0];
                using var k = parts[1];
                using var v = parts[2];
                double scale = Scale(q);
                // The gradient of the packed projection, written through (B, heads, L, head_dim) views of its q, k and v parts.
                var dqkv = empty(qkv.shape, qkv.dtype, qkv.device);
                using var dParts = ByPart(dqkv, heads);
                using var dq = dParts[0];
                using var dk = dParts[1];
                using var dv = dParts[2];
                using var oHeadsLast = merged.view(batch, l, heads, hd);
                using var o = oHeadsLast.permute(0, 2, 1, 3);
                using var dOHeadsLast = grad_output.reshape(batch, l, heads, hd);
                using var dOAll = dOHeadsLast.permute(0, 2, 1, 3);
                ForSlices(q, k, (start, count) =>
                {
                    using var scope = NewDisposeScope();
                    Tensor qs = Slice(q, start, count), ks = Slice(k, start, count), vs = Slice(v, start, count);
                    // Read three times below; the heads-merged layout it arrives in would be copied by each matrix product.
                    var dO = Slice(dOAll, start, count).contiguous();
                    var p = Probabilities(qs, ks, MaskSlice(mask, batch, start, count));
                    Slice(dv, start, count).copy_(p.transpose(-2, -1).matmul(dO));
                    // softmax's backward: dS = P ⊙ (dP − rowsum(dP ⊙ P)), and rowsum(dP ⊙ P) = rowsum(dO ⊙ O).
                    var rowSums = dO.mul(Slice(o, start, count)).sum(-1, keepdim: true);
                    var ds = dO.matmul(vs.transpose(-2, -1));
                    ds.add_(rowSums.neg_(), One).mul_(p);
                    Slice(dq, start, count).copy_(Times_(ds.matmul(ks), scale));
                    Slice(dk, start, count).copy_(Times_(ds.transpose(-2, -1).matmul(qs), scale));
                });
                var gradients = new List<Tensor> { dqkv, null! };
                if (mask is not null) gradients.Add(null!);
                return gradients;
            });
    }
}
