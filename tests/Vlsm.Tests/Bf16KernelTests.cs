using TorchSharp;
using Vlsm.Models.ClipSeg;
using Vlsm.Tensors;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// The bf16 routes that replace libtorch's composed or fused kernels (explicit attention with a
/// recomputing backward, quick_gelu as a scaled silu, adapters inside bf16 towers): forward and gradients against float64, no
/// further from it than libtorch's own bf16 kernels are, and float32 untouched.
/// </summary>
public class Bf16KernelTests
{
    private static Tensor Seeded(Generator g, params long[] shape) => randn(shape, generator: g);

    private static double MaxError(Tensor a, Tensor reference) => (a.to(ScalarType.Float64) - reference).abs().max().item<double>();

    [Theory]
    [InlineData(false, 3, 485)] // one sample per slice of the batch: the slicing is exercised
    [InlineData(true, 2, 77)]   // a causal mask per sample, as the text tower passes it; the whole batch in one slice
    public void ExplicitAttentionMatchesFloat64AsCloselyAsLibtorchsBf16Kernel(bool masked, long batch, long tokens)
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(7);
        long heads = 12, d = 64;
        var q0 = Seeded(g, batch, heads, tokens, d).to(ScalarType.BFloat16);
        var k0 = Seeded(g, batch, heads, tokens, d).to(ScalarType.BFloat16);
        var v0 = Seeded(g, batch, heads, tokens, d).to(ScalarType.BFloat16);
        var dO = Seeded(g, batch, heads, tokens, d).to(ScalarType.BFloat16);
        Tensor? mask = null;
        if (masked)
        {
            var causal = ones(tokens, tokens).tril().logical_not().view(1, 1, tokens, tokens).expand(batch, 1, tokens, tokens);
            mask = zeros(batch, 1, tokens, tokens).masked_fill(causal, -3.38e38).to(ScalarType.BFloat16);
        }

        (Tensor O, Tensor Dq, Tensor Dk, Tensor Dv) Run(Func<Tensor, Tensor, Tensor, Tensor> attention, ScalarType dtype)
        {
            var q = q0.to(dtype).detach().requires_grad_(true);
            var k = k0.to(dtype).detach().requires_grad_(true);
            var v = v0.to(dtype).detach().requires_grad_(true);
            var o = attention(q, k, v);
            o.backward([dO.to(dtype)]);
            return (o.detach(), q.grad!, k.grad!, v.grad!);
        }

        // The library's route takes q, k and v packed (B, L, 3·D), as CLIP's fused projection gives them,
        // returns (B, L, D) with the heads merged, and its gradient is packed the same way.
        var packed = Attention.Pack(q0, k0, v0).detach().requires_grad_(true);
        var merged = Attention.SelfAttention(packed, heads, mask);
        Assert.Equal(new[] { batch, tokens, heads * d }, merged.shape);
        var oursO = merged.view(batch, tokens, heads, d).transpose(1, 2);
        oursO.backward([dO]);
        var oursGrads = Attention.Parts(packed.grad!, heads);
        var ours = (O: oursO.detach(), Dq: oursGrads[0], Dk: oursGrads[1], Dv: oursGrads[2]);

        var exact = Run((q, k, v) => nn.functional.scaled_dot_product_attention(q, k, v, mask?.to(ScalarType.Float64)), ScalarType.Float64);
        var libtorch = Run((q, k, v) => nn.functional.scaled_dot_product_attention(q, k, v, mask), ScalarType.BFloat16);

        var expected = new[] { exact.O, exact.Dq, exact.Dk, exact.Dv };
        var theirs = new[] { libtorch.O, libtorch.Dq, libtorch.Dk, libtorch.Dv };
        var mine = new[] { ours.O, ours.Dq, ours.Dk, ours.Dv };
        for (int i = 0; i < 4; i++)
        {
            double scale = expected[i].abs().max().item<double>();
            double error = MaxError(mine[i], expected[i]);
            // bf16 keeps 8 significant bits: both routes land within a few bf16 steps of the float64 result.
            Assert.True(error <= Math.Max(3 * MaxError(theirs[i], expected[i]), 0.02 * scale),
                $"{"o dq dk dv".Split(' ')[i]}: error {error:g3} against float64 (libtorch's bf16 kernel: {MaxError(theirs[i], expected[i]):g3}, scale {scale:g3})");
            Assert.Equal(ScalarType.BFloat16, mine[i].dtype);
        }
        // Without autograd the same route runs with no graph, and gives the same output.
        using (no_grad())
            Assert.Equal(0.0, MaxError(Attention.SelfAttention(packed.detach(), heads, mask), merged.detach().to(ScalarType.Float64)));
    }

    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void SelfAttentionLeavesOnlyItsOutputInTheCallersScope(ScalarType dtype, bool withGradient)
    {
        // A view left undisposed keeps the whole packed projection alive until the caller's scope ends
        // (one per layer of a tower: hundreds of MB at batch 4); only the output may remain (under
        // autograd TorchSharp's custom-function call leaves a second wrapper of it, which the backward
        // pass keeps anyway).
        using var outer = NewDisposeScope();
        using var g = new Generator(11);
        var qkv = Seeded(g, 2, 33, 3 * 4 * 16).to(dtype).requires_grad_(withGradient);
        using var scope = NewDisposeScope();
        var o = Attention.SelfAttention(qkv, 4);
        Assert.Equal(new long[] { 2, 33, 64 }, o.shape);
        var left = scope.DisposablesView.Cast<Tensor>().ToList();
        bool customFunction = dtype == ScalarType.BFloat16 || Head16Attention.Applies(qkv, 4, null);
        Assert.Equal(customFunction && withGradient ? 2 : 1, left.Count);
        Assert.All(left, t => Assert.Equal(o.shape, t.shape));
        if (!withGradient) return;
        o.sum().backward();
        Assert.Equal(new long[] { 2, 33, 3 * 64 }, qkv.grad!.shape);
    }

    [Fact]
    public void Float32AttentionIsLibtorchsOwn()
    {
        // Heads 16 wide have their own kernel (Head16AttentionTests); every other width is libtorch's.
        using var scope = NewDisposeScope();
        using var g = new Generator(3);
        var q = Seeded(g, 2, 4, 33, 32);
        var k = Seeded(g, 2, 4, 33, 32);
        var v = Seeded(g, 2, 4, 33, 32);
        var expected = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 33, 128);
        Assert.Equal(0.0, (Attention.SelfAttention(Attention.Pack(q, k, v), 4) - expected).abs().max().item<float>());
    }

    [Fact]
    public void Bf16QuickGeluMatchesFloat64InValueAndGradient()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(11);
        var x0 = (Seeded(g, 4, 97, 256) * 4).to(ScalarType.BFloat16);
        var dy = Seeded(g, 4, 97, 256).to(ScalarType.BFloat16);

        var x64 = x0.to(ScalarType.Float64).requires_grad_(true);
        var y64 = x64 * (x64 * 1.702).sigmoid();
        y64.backward([dy.to(ScalarType.Float64)]);

        var x = x0.detach().requires_grad_(true);
        var y = ClipActivation.Apply("quick_gelu", x);
        y.backward([dy]);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        // A few bf16 steps (2^-8 relative) of the largest values.
        Assert.True(MaxError(y, y64) <= 0.02 * y64.abs().max().item<double>(), $"value error {MaxError(y, y64):g3}");
        Assert.True(MaxError(x.grad!, x64.grad!) <= 0.02 * x64.grad!.abs().max().item<double>(), $"gradient error {MaxError(x.grad!, x64.grad!):g3}");
        using (no_grad())
        {
            Assert.Equal(0.0, MaxError(ClipActivation.Apply("quick_gelu", x0), y.detach().to(ScalarType.Float64)));
            // The MLP's overwriting form, in the input's own memory (libtorch's in-place product with 1.702 rounds
            // differently from the out-of-place one, so it is held to float64 like the other forms, not to them).
            var own = x0.clone();
            var overwritten = ClipActivation.ApplyOverwriting("quick_gelu", own);
            Assert.Equal(0.0, MaxError(own, overwritten.to(ScalarType.Float64)));
            Assert.True(MaxError(overwritten, y64) <= 0.02 * y64.abs().max().item<double>(), $"overwriting form's error {MaxError(overwritten, y64):g3}");
        }
    }

    [Fact]
    public void Float32QuickGeluIsTheReferenceFormula()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(5);
        var x = Seeded(g, 3, 50);
        Assert.Equal(0.0, (ClipActivation.Apply("quick_gelu", x) - x * (x * 1.702).sigmoid()).abs().max().item<float>());
    }

    [Fact]
    public void AdapterOnBf16InputComputesInBf16AndTrainsItsFloat32Weights()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(13);
        manual_seed(13);
        using var adapter = new Adapter(256, 64);
        var x0 = Seeded(g, 3, 97, 256).to(ScalarType.BFloat16);
        var dy = Seeded(g, 3, 97, 256).to(ScalarType.BFloat16);
        var parameters = adapter.parameters().ToList();

        // The reference: the same block in float64 on the same input and on the weights the bf16 products
        // multiply, the float32 weights rounded to bf16 (autocast's cast; the rounding itself moves
        // pre-activations across ReLU's zero, so it is taken out of the comparison).
        using var reference64 = new Adapter(256, 64);
        reference64.load_state_dict(adapter.state_dict());
        reference64.to(ScalarType.BFloat16);
        reference64.to(ScalarType.Float64);
        var x64 = x0.to(ScalarType.Float64).requires_grad_(true);
        var y64 = reference64.forward(x64);
        y64.backward([dy.to(ScalarType.Float64)]);
        var dw64 = reference64.parameters().Select(p => p.grad!.clone()).ToList();

        var x = x0.detach().requires_grad_(true);
        var y = adapter.ForwardKeepingDtype(x);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        y.backward([dy]);
        Assert.All(parameters, p => Assert.Equal(ScalarType.Float32, p.grad!.dtype));
        // bf16 keeps 8 significant bits: values and the input gradient are off by a few 1e-3 of their size.
        // The weight gradients sum a term per token, and the terms of tokens whose fc2 pre-activation
        // rounds across ReLU's zero (about 0.2 % of them here) are dropped or kept whole, so their
        // error is about the square root of that fraction, 4-5 %, as under PyTorch's autocast; a
        // wrong product or mask gives errors of order 1.
        static double Relative(Tensor a, Tensor reference) => (a.to(ScalarType.Float64) - reference).norm().item<double>() / reference.norm().item<double>();
        Assert.True(Relative(y, y64.detach()) <= 1e-2, $"output error {Relative(y, y64.detach())}");
        Assert.True(Relative(x.grad!, x64.grad!) <= 2e-2, $"input gradient error {Relative(x.grad!, x64.grad!)}");
        for (int i = 0; i < parameters.Count; i++)
            Assert.True(Relative(parameters[i].grad!, dw64[i]) <= 0.1, $"parameter {i}: gradient error {Relative(parameters[i].grad!, dw64[i])}");
        // A frozen input: only the adapter's own parameters get gradients.
        foreach (var p in parameters) p.grad = null;
        var frozen = adapter.ForwardKeepingDtype(x0);
        frozen.backward([dy]);
        Assert.All(parameters, p => Assert.NotNull(p.grad));
    }
}
