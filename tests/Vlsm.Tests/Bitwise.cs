using static TorchSharp.torch;

namespace Vlsm.Tests;

internal static class Bitwise
{
    /// <summary>Same dtype, shape and bytes.</summary>
    public static bool Equal(Tensor a, Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using var ca = a.detach().contiguous();
        using var cb = b.detach().contiguous();
        return ca.bytes.SequenceEqual(cb.bytes);
    }
}
