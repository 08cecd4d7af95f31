using TorchSharp;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Training;

/// <summary>
/// medvlsm's <c>TunedDiceLoss</c> (src/losses/tuned_dice_loss.py), the loss its UNet, UNet++ and
/// DeepLabV3+ baselines train with, on p = sigmoid(logits): per sample, the soft Dice loss
/// 1 - (2·Σp·t + 1e-5) / (Σp + Σt + 1e-5) of each mask plane that contains an exact 1.0, averaged
/// over those planes; then the plain mean over the batch. A sample with no such plane (an empty
/// mask, e.g. BUSI's "normal" images, or a mask whose values never reach 255) has a mean over
/// nothing, NaN, and so has the whole batch: <see cref="SkipEmpty"/> false reproduces that;
/// true (loss <c>tuned-dice-fixed</c>) leaves such samples out of the batch mean, and a batch with
/// none left scores 0. Where the reference is finite the two are equal.
/// </summary>
public sealed class TunedDiceLoss : ISegmentationLoss
{
    public const string ReferenceName = "tuned-dice";
    public const string FixedName = "tuned-dice-fixed";
    public const double Smooth = 1e-5;

    public TunedDiceLoss(bool skipEmpty) => SkipEmpty = skipEmpty;

    public bool SkipEmpty { get; }

    public string Name => SkipEmpty ? FixedName : ReferenceName;

    /// <param name="logits">(B, H, W) for one channel, or (B, C, H, W).</param>
    /// <param name="target">The masks, of the logits' shape; (B, H, W) also stands for one channel.</param>
    public Tensor Compute(Tensor logits, Tensor target)
    {
        using var scope = NewDisposeScope();
        var (planeSum, planes) = Planes(logits, target);
        if (!SkipEmpty) return planeSum.div(planes).mean().MoveToOuterDisposeScope(); // 0/0 = NaN for a sample without a kept plane
        using var atLeastOne = 1.0.ToScalar();
        var counted = planes.gt(0).to(ScalarType.Float32);
        var perSample = planeSum.div(planes.clamp_min(atLeastOne));
        return perSample.mul(counted).sum().div(counted.sum().clamp_min(atLeastOne)).MoveToOuterDisposeScope();
    }

    /// <summary>Each sample's loss (B): the mean over its kept planes, NaN where it has none (the reference's per-sample values).</summary>
    public static Tensor PerSample(Tensor logits, Tensor target)
    {
        using var scope = NewDisposeScope();
        var (planeSum, planes) = Planes(logits, target);
        return planeSum.div(planes).MoveToOuterDisposeScope();
    }

    /// <summary>Per sample (B): the sum of the kept planes' Dice losses and how many planes were kept.</summary>
    private static (Tensor PlaneSum, Tensor Planes) Planes(Tensor logits, Tensor target)
    {
        if (!logits.shape.SequenceEqual(target.shape))
            throw new ArgumentException($"logits [{string.Join(", ", logits.shape)}] and target [{string.Join(", ", target.shape)}] differ in shape.");
        if (logits.dim() is not (3 or 4))
            throw new ArgumentException($"logits must be (B, H, W) or (B, C, H, W), got [{string.Join(", ", logits.shape)}].");
        var x = logits.to(ScalarType.Float32);
        var t = target.to(ScalarType.Float32);
        if (x.dim() == 3)
        {
            x = x.unsqueeze(1);
            t = t.unsqueeze(1);
        }
        var p = x.sigmoid();
        var dims = new long[] { 2, 3 };
        // A plane enters the loss when it holds an exact 1 (the reference tests `1 in plane.unique()`).
        using var one = 1.0.ToScalar();
        var kept = t.eq(one).flatten(2).any(2).to(ScalarType.Float32);             // (B, C)
        var ratio = PlusScalar(Times(p.mul(t).sum(dims), 2.0), Smooth).div(PlusScalar(Plus(p.sum(dims), t.sum(dims)), Smooth));
        return (ScalarMinus(1.0, ratio).mul(kept).sum(1), kept.sum(1));
    }
}
