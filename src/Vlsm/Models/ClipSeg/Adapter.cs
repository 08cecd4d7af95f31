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

    public override Tensor forward(Tensor x)
    {
        using var h1 = fc1.forward(x);
        using var a1 = functional.relu(h1);
        using var h2 = fc2.forward(a1);
        using var a2 = functional.relu(h2);
        return Plus(x, a2);
    }

    /// <summary>Applies the block in float32 and returns the input's dtype, so adapters stay fp32 inside a bf16 tower.</summary>
    public Tensor ForwardKeepingDtype(Tensor x)
    {
        var dtype = fc1.weight!.dtype;
        if (x.dtype == dtype) return forward(x);
        using var wide = x.to(dtype);
        using var y = forward(wide);
        return y.to(x.dtype);
    }
}
