using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Bench;

/// <summary>
/// Where a dense-adapter step's layer time goes, operation by operation: forward and forward+backward
/// of each part of a CLIP ViT-B/16 layer at batch 4 and 485 tokens (352²) in the given precision,
/// attention by each route (libtorch's fused kernel, composed, the library's), the decoder and an
/// adapter, each the median of 5 after a warm-up, plus the bf16 attention's and quick_gelu's errors
/// against float64. <c>--child layer_micro --precision bf16|fp32</c>.
/// </summary>
internal static class LayerMicro
{
    public const string ChildKey = "layer_micro";

    /// <summary>Milliseconds: the median of 5 timed runs after a warm-up.</summary>
    static double Time(Action a) => Bench.Median(5, () => Bench.Time(a)) * 1000;

    public static JsonObject Run(string dtypeName)
    {
        var dt = dtypeName == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var r = new JsonObject();
        long b = 4, l = 485, d = 768, h = 12, hd = 64;
        using var scope = NewDisposeScope();
        var x = randn(b, l, d).to(dt);
        var q0 = randn(b, h, l, hd).to(dt);
        var k0 = randn(b, h, l, hd).to(dt);
        var v0 = randn(b, h, l, hd).to(dt);
        var go = randn(b, h, l, hd).to(dt);
        // The library's route takes q, k and v packed as CLIP's fused projection gives them, and returns the heads merged.
        var qkv0 = Vlsm.Tensors.Attention.Pack(q0, k0, v0);
        var goMerged = go.transpose(1, 2).reshape(b, l, d);
        void Sdpa(bool backward)
        {
            using var s = NewDisposeScope();
            var q = q0.detach().requires_grad_(backward); var k = k0.detach().requires_grad_(backward); var v = v0.detach().requires_grad_(backward);
            var o = nn.functional.scaled_dot_product_attention(q, k, v);
            if (backward) o.backward(new[] { go });
            else o.sum().to(ScalarType.Float32).item<float>();
        }
        void Math_(bool backward, bool fp32Softmax)
        {
            using var s = NewDisposeScope();
            var q = q0.detach().requires_grad_(backward); var k = k0.detach().requires_grad_(backward); var v = v0.detach().requires_grad_(backward);
            var scores = q.mul(0.125).matmul(k.transpose(-1, -2));
            var p = fp32Softmax ? scores.softmax(-1, ScalarType.Float32).to(dt) : scores.softmax(-1);
            var o = p.matmul(v);
            if (backward) o.backward(new[] { go });
            else o.sum().to(ScalarType.Float32).item<float>();
        }
        void Explicit(bool backward)
        {
            using var s = NewDisposeScope();
            var qkv = qkv0.detach().requires_grad_(backward);
            var o = Vlsm.Tensors.Attention.SelfAttention(qkv, h);
            if (backward) o.backward(new[] { goMerged });
            else o.sum().to(ScalarType.Float32).item<float>();
        }
        {
            var cfg = Vlsm.Models.ClipSeg.ClipSegConfig.Rd64Refined;
            using var decoder = new Vlsm.Models.ClipSeg.ClipSegDecoder(cfg);
            var acts = Enumerable.Range(0, 3).Select(_ => randn(b, l, d)).ToList();
            var cond = randn(b, 512);
            var grid = randn(b, 64, 22, 22);
            r["decoder_fwd_ms"] = Time(() => { using var s = NewDisposeScope(); using var _ = no_grad(); decoder.Forward(acts, cond, 22, 22); });
            r["decoder_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); decoder.Forward(acts, cond, 22, 22).sum().backward(); });
            r["decoder_grid_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); decoder.ForwardGrid(acts, cond, 22, 22).sum().backward(); });
            r["decoder_upsample_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); var g = grid.detach().requires_grad_(true); decoder.Upsample(g).sum().backward(); });
            r["decoder_upsample_fwd_ms"] = Time(() => { using var s = NewDisposeScope(); using var _ = no_grad(); decoder.Upsample(grid); });
        }
        {
            var dq0 = randn(b, 4, l, 16); var dk0 = randn(b, 4, l, 16); var dv0 = randn(b, 4, l, 16); var dgo = randn(b, 4, l, 16);
            r["dec_sdpa_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); var q = dq0.detach().requires_grad_(true); var k = dk0.detach().requires_grad_(true); var v = dv0.detach().requires_grad_(true);
                nn.functional.scaled_dot_product_attention(q, k, v).backward(new[] { dgo }); });
            r["dec_sdpa_fwd_ms"] = Time(() => { using var s = NewDisposeScope(); using var _ = no_grad(); nn.functional.scaled_dot_product_attention(dq0, dk0, dv0); });
            // The library's route for the decoder's 16-wide heads (Head16Attention on AVX-512), on the packed projection.
            var dqkv0 = Vlsm.Tensors.Attention.Pack(dq0, dk0, dv0);
            var dgoMerged = dgo.transpose(1, 2).reshape(b, l, 64);
            r["dec_library_fwd_ms"] = Time(() => { using var s = NewDisposeScope(); using var _ = no_grad(); Vlsm.Tensors.Attention.SelfAttention(dqkv0, 4); });
            r["dec_library_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); var qkv = dqkv0.detach().requires_grad_(true);
                Vlsm.Tensors.Attention.SelfAttention(qkv, 4).backward(new[] { dgoMerged }); });
            r["dec_math_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); var q = dq0.detach().requires_grad_(true); var k = dk0.detach().requires_grad_(true); var v = dv0.detach().requires_grad_(true);
                q.mul(0.25).matmul(k.transpose(-2, -1)).softmax(-1).matmul(v).backward(new[] { dgo }); });
            var red = nn.Linear(768, 64);
            var a0 = randn(b, l, d);
            r["reduce_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); var a = a0.detach().requires_grad_(true); red.forward(a).sum().backward(); });
            var lin = nn.Linear(64, 2048);
            var x64 = randn(b, l, 64);
            r["dec_fc1_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); var a = x64.detach().requires_grad_(true); nn.functional.relu(lin.forward(a)).sum().backward(); });
        }
        {
            var adapter = new Vlsm.Models.ClipSeg.Adapter(768, 64);
            var xa = randn(b, l, d).to(dt);
            var ga = randn(b, l, d).to(dt);
            r["adapter_fwdbwd_ms"] = Time(() => { using var s = NewDisposeScope(); var a = xa.detach().requires_grad_(true); adapter.ForwardKeepingDtype(a).backward(new[] { ga }); });
            r["adapter_fwd_ms"] = Time(() => { using var s = NewDisposeScope(); var a = xa.detach().requires_grad_(true); adapter.ForwardKeepingDtype(a); });
        }
        {
            using var _ = no_grad();
            var p = q0.matmul(k0.transpose(-2, -1)).softmax(-1);
            var o = p.matmul(v0);
            r["bwd_probs_ms"] = Time(() => { using var s = NewDisposeScope(); var sc = q0.mul(0.125).matmul(k0.transpose(-2, -1)); sc.softmax(-1); });
            r["bwd_dv_ms"] = Time(() => { using var t = p.transpose(-2, -1).matmul(go); });
            r["bwd_dp_ms"] = Time(() => { using var t = go.matmul(v0.transpose(-2, -1)); });
            r["bwd_rowsum_ms"] = Time(() => { using var t = go.mul(o).sum(-1, keepdim: true); });
            var rs = go.mul(o).sum(-1, keepdim: true);
            r["bwd_ds_ms"] = Time(() => { using var t = go.matmul(v0.transpose(-2, -1)); t.sub_(rs).mul_(p); });
            r["bwd_dq_ms"] = Time(() => { using var t = p.matmul(k0); });
            r["bwd_dk_ms"] = Time(() => { using var t = p.transpose(-2, -1).matmul(q0); });
        }
        r["explicit_fwd_ms"] = Time(() => { using var _ = no_grad(); Explicit(false); });
        r["explicit_fwdbwd_ms"] = Time(() => Explicit(true));
        foreach (bool masked in new[] { false, true })
        {
            using var s = NewDisposeScope();
            var mask = masked ? zeros(b, 1, l, l).masked_fill(ones(l, l).tril().logical_not().view(1, 1, l, l), -1e30) : null;
            var qkv = qkv0.detach().requires_grad_(true);
            var o = Vlsm.Tensors.Attention.SelfAttention(qkv, h, mask).view(b, l, h, hd).transpose(1, 2);
            o.backward(new[] { go });
            var grads = Vlsm.Tensors.Attention.Parts(qkv.grad!, h);
            var q6 = q0.to(ScalarType.Float64).requires_grad_(true); var k6 = k0.to(ScalarType.Float64).requires_grad_(true); var v6 = v0.to(ScalarType.Float64).requires_grad_(true);
            var o6 = nn.functional.scaled_dot_product_attention(q6, k6, v6, mask?.to(ScalarType.Float64));
            o6.backward(new[] { go.to(ScalarType.Float64) });
            var q3 = q0.detach().requires_grad_(true); var k3 = k0.detach().requires_grad_(true); var v3 = v0.detach().requires_grad_(true);
            var o3 = nn.functional.scaled_dot_product_attention(q3, k3, v3, mask);
            o3.backward(new[] { go });
            string m = masked ? "masked_" : "";
            double Err(Tensor a, Tensor b6) => (a.to(ScalarType.Float64) - b6).abs().max().item<double>();
            r[$"{m}explicit_err_o_dq_dk_dv"] = $"{Err(o, o6):0.0000} {Err(grads[0], q6.grad!):0.0000} {Err(grads[1], k6.grad!):0.0000} {Err(grads[2], v6.grad!):0.0000}";
            r[$"{m}sdpa_err_o_dq_dk_dv"] = $"{Err(o3, o6):0.0000} {Err(q3.grad!, q6.grad!):0.0000} {Err(k3.grad!, k6.grad!):0.0000} {Err(v3.grad!, v6.grad!):0.0000}";
            r[$"{m}grad_scale_dq_dk_dv"] = $"{q6.grad!.abs().max().item<double>():0.00} {k6.grad!.abs().max().item<double>():0.00} {v6.grad!.abs().max().item<double>():0.00}";
        }
        r["sdpa_fwd_ms"] = Time(() => { using var _ = no_grad(); Sdpa(false); });
        r["sdpa_fwdbwd_ms"] = Time(() => Sdpa(true));
        r["math_fwd_ms"] = Time(() => { using var _ = no_grad(); Math_(false, false); });
        r["math_fwdbwd_ms"] = Time(() => Math_(true, false));
        r["math32sm_fwdbwd_ms"] = Time(() => Math_(true, true));
        foreach (var (i, o) in new[] { (768L, 2304L), (768L, 768L), (768L, 3072L), (3072L, 768L) })
        {
            var w = randn(o, i).mul(0.02).to(dt);
            var bias = zeros(o).to(dt);
            var xi = randn(b, l, i).to(dt);
            var g = randn(b, l, o).to(dt);
            r[$"linear_{i}x{o}_fwd_ms"] = Time(() => { using var _ = no_grad(); using var y = nn.functional.linear(xi, w, bias); });
            r[$"linear_{i}x{o}_fwdbwd_ms"] = Time(() =>
            {
                using var s = NewDisposeScope();
                var xx = xi.detach().requires_grad_(true);
                var y = nn.functional.linear(xx, w, bias);
                y.backward(new[] { g });
            });
        }
        var hbig = randn(b, l, 3072).to(dt);
        var gbig = randn(b, l, 3072).to(dt);
        // The reference's composition (what fp32 computes) beside the library's (silu form in bf16), and the latter's error.
        r["quickgelu_reference_fwdbwd_ms"] = Time(() =>
        {
            using var s = NewDisposeScope();
            var xx = hbig.detach().requires_grad_(true);
            var y = xx.mul(xx.mul(1.702).sigmoid());
            y.backward(new[] { gbig });
        });
        r["quickgelu_library_fwdbwd_ms"] = Time(() =>
        {
            using var s = NewDisposeScope();
            var xx = hbig.detach().requires_grad_(true);
            Vlsm.Models.ClipSeg.ClipActivation.Apply("quick_gelu", xx).backward(new[] { gbig });
        });
        {
            using var s = NewDisposeScope();
            var x64 = hbig.to(ScalarType.Float64).requires_grad_(true);
            var y64 = x64.mul(x64.mul(1.702).sigmoid());
            y64.backward(new[] { gbig.to(ScalarType.Float64) });
            var xx = hbig.detach().requires_grad_(true);
            var y = Vlsm.Models.ClipSeg.ClipActivation.Apply("quick_gelu", xx);
            y.backward(new[] { gbig });
            r["quickgelu_library_err_y_dx"] = $"{(y.to(ScalarType.Float64) - y64.detach()).abs().max().item<double>():0.0000} {(xx.grad!.to(ScalarType.Float64) - x64.grad!).abs().max().item<double>():0.0000}";
        }
        var ln = nn.LayerNorm(d).to(dt);
        foreach (var p in ln.parameters()) p.requires_grad = false;
        var gx = randn(b, l, d).to(dt);
        r["layernorm_fwdbwd_ms"] = Time(() =>
        {
            using var s = NewDisposeScope();
            var xx = x.detach().requires_grad_(true);
            var y = ln.forward(xx);
            y.backward(new[] { gx });
        });
        r["cast_roundtrip_ms"] = Time(() => { using var a = x.to(ScalarType.Float32); using var c = a.to(dt); });
        return r;
    }
}
