using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Tensors;

/// <summary>
/// Arithmetic whose Scalar arguments stay reachable until the native kernel has read them.
/// TorchSharp 0.107 hands a Scalar's native handle to libtorch without <c>GC.KeepAlive</c>, so a
/// temporary one (every <c>tensor * 0.5</c>, and <c>a + b</c>, which adds with alpha 1) can be
/// finalized, and its memory freed, while the kernel runs. It is rare per call but certain over a
/// long training run: it surfaced as "Expected false to be true ... toFloat" from c10's Scalar in
/// epoch 10 of a run. The hot paths (model forward, loss, optimizer) use these helpers instead:
/// constants live in static fields, other values are held by a <c>using</c> until the call returns.
/// </summary>
public static class KeptScalars
{
    /// <summary>alpha = 1 for add/sub (int64, valid for every dtype).</summary>
    public static readonly Scalar One = 1L.ToScalar();

    /// <summary>a + b.</summary>
    public static Tensor Plus(Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a * s.</summary>
    public static Tensor Times(Tensor a, double s)
    {
        using var k = s.ToScalar();
        return a.mul(k);
    }

    /// <summary>a + s.</summary>
    public static Tensor PlusScalar(Tensor a, double s)
    {
        using var k = s.ToScalar();
        return a.add(k, One);
    }

    /// <summary>In place: a += s.</summary>
    public static Tensor PlusScalar_(Tensor a, double s)
    {
        using var k = s.ToScalar();
        return a.add_(k, One);
    }

    /// <summary>In place: a *= s.</summary>
    public static Tensor Times_(Tensor a, double s)
    {
        using var k = s.ToScalar();
        return a.mul_(k);
    }

    /// <summary>In place: a /= s.</summary>
    public static Tensor DividedBy_(Tensor a, double s)
    {
        using var k = s.ToScalar();
        return a.div_(k);
    }

    /// <summary>a &gt; s, as bool.</summary>
    public static Tensor GreaterThan(Tensor a, double s)
    {
        using var k = s.ToScalar();
        return a.gt(k);
    }

    private static readonly Scalar ByteOn = 255L.ToScalar();

    /// <summary>A bool mask as contiguous bytes 0/255 (for PNG masks).</summary>
    public static Tensor ByteMask(Tensor mask)
    {
        using var bytes = mask.to(ScalarType.Byte);
        return bytes.mul(ByteOn).contiguous();
    }

    /// <summary>s - a.</summary>
    public static Tensor ScalarMinus(double s, Tensor a)
    {
        using var k = s.ToScalar();
        using var negated = a.neg();
        return negated.add(k, One);
    }
}
