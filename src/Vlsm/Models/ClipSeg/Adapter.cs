using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.ClipSeg;

#pragma warning disable IDE1006 // field names are the reference's state-dict keys

/// <summary>
/// The VLSM-Adapter block: A(x) = x + ReLU(fc2(ReLU(fc1(x)))). No norm, scale or dropout.
/// PyTorch's default Linear initialisation, as in the reference, so A is not the identity at
/// step 0 unless fc2 is zero-initialised.
/// </summary>
public sealed class Adapter : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public Adapter(int inputDim, int adapterDim, bool zeroInitFc2 = false) : base(nameof(Adapter))
    {
        fc1 = Linear(inputDim, adapterDim);
        fc2 = Linear(adapterDim, inputDim);
        if (zeroInitFc2)
        {
            using var _ = no_grad();
            fc2.weight!.zero_();
            fc2.bias!.zero_();
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Block(x, fc1.weight!, fc1.bias!, fc2.weight!, fc2.bias!);

    /// <summary>x + ReLU(fc2(ReLU(fc1(x)))) with the given weights, the one definition both forms use.</summary>
    private static Tensor Block(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2)
    {
        using var h1 = functional.linear(x, w1, b1);
        using var a1 = functional.relu(h1);
        using var h2 = functional.linear(a1, w2, b2);
        using var a2 = functional.relu(h2);
        return Plus(x, a2);
    }

    /// <summary>
    /// Applies the block in the input's dtype, as PyTorch's bf16 autocast runs every Linear: inside a
    /// bf16 tower (dense adapters) the matrix products take bf16 copies of the float32 weights and
    /// accumulate in float32 (oneDNN), the activations stay bf16, and the gradients reach the float32
    /// weights through the casts' backward, so the optimizer still updates float32 weights. Against
    /// widening each adapter's input to float32 this took 0.24-0.56 s off a dense VL bf16 training step
    /// at batch 4 (about 2.4 s) and 130-190 MB off its peak memory: the 20 vision adapters' float32
    /// products ran at the AVX2 sgemm rate of this CPU, and their activations were twice the size.
    /// </summary>
    public Tensor ForwardKeepingDtype(Tensor x)
    {
        if (x.dtype == fc1.weight!.dtype) return forward(x);
        using var w1 = fc1.weight!.to(x.dtype);
        using var b1 = fc1.bias!.to(x.dtype);
        using var w2 = fc2.weight!.to(x.dtype);
        using var b2 = fc2.bias!.to(x.dtype);
        return Block(x, w1, b1, w2, b2);
    }
}
