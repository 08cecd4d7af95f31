using TorchSharp;

namespace Vlsm.Models.ClipSeg;

/// <summary>The <c>--precision</c> values: the dtype the CLIP towers compute in (dense adapters inside a tower compute in its dtype; the decoder and all trainable weights stay float32).</summary>
public static class TowerPrecision
{
    public const string Fp32 = "fp32";
    public const string Bf16 = "bf16";

    /// <exception cref="VlsmException">The name is neither fp32 nor bf16.</exception>
    public static torch.ScalarType Parse(string name) => name switch
    {
        Fp32 => torch.ScalarType.Float32,
        Bf16 => torch.ScalarType.BFloat16,
        _ => throw new VlsmException($"--precision must be {Fp32} or {Bf16}, got \"{name}\"."),
    };
}
