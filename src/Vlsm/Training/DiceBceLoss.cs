using TorchSharp;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Training;

/// <summary>How the BCE term sees the network output.</summary>
public enum BceInput
{
    /// <summary>
    /// As the VLSM-Adapter reference: it passes sigmoid(logits) into BCE-with-logits, so the
    /// term applies a second sigmoid. Kept as the default so training reproduces the reference.
    /// </summary>
    Reference,

    /// <summary>BCE-with-logits on the logits, the textbook form.</summary>
    Logits,
}

/// <summary>
/// 1.5 × soft Dice + 1.0 × BCE. Soft Dice per sample: 1 − (2·Σp·y + ε) / (Σp + Σy + ε) with
/// p = sigmoid(logits), sums over H and W, ε = 1e-5, mean over the batch; BCE is the mean over
/// every pixel.
/// </summary>
public sealed class DiceBceLoss : ISegmentationLoss
{
    public const double Smooth = 1e-5;

    public DiceBceLoss(BceInput bce = BceInput.Reference, double diceWeight = 1.5, double bceWeight = 1.0)
    {
        Bce = bce;
        DiceWeight = diceWeight;
        BceWeight = bceWeight;
    }

    public BceInput Bce { get; }

    public string Name => Bce == BceInput.Reference ? "reference" : "dice-bce";
    public double DiceWeight { get; }
    public double BceWeight { get; }

    /// <param name="logits">(B, H, W) network output.</param>
    /// <param name="target">(B, H, W) in [0, 1].</param>
    public Tensor Compute(Tensor logits, Tensor target)
    {
        if (!logits.shape.SequenceEqual(target.shape))
            throw new ArgumentException($"logits [{string.Join(", ", logits.shape)}] and target [{string.Join(", ", target.shape)}] differ in shape.");
        using var scope = NewDisposeScope();
        var x = logits.to(ScalarType.Float32);
        var y = target.to(ScalarType.Float32);
        var p = x.sigmoid();
        var dice = SoftDice(p, y);
        var bce = nn.functional.binary_cross_entropy_with_logits(Bce == BceInput.Reference ? p : x, y);
        return Plus(Times(dice, DiceWeight), Times(bce, BceWeight)).MoveToOuterDisposeScope();
    }

    /// <summary>Soft Dice loss per sample, 1 − (2·Σp·y + ε) / (Σp + Σy + ε) over H and W with ε = 1e-5, averaged over the batch.</summary>
    /// <param name="probabilities">(B, H, W) in [0, 1].</param>
    /// <param name="target">(B, H, W) in [0, 1].</param>
    public static Tensor SoftDice(Tensor probabilities, Tensor target)
    {
        using var scope = NewDisposeScope();
        var dims = new long[] { 1, 2 };
        var intersection = probabilities.mul(target).sum(dims);
        var denominator = Plus(probabilities.sum(dims), target.sum(dims));
        var ratio = PlusScalar(Times(intersection, 2.0), Smooth).div(PlusScalar(denominator, Smooth));
        return ScalarMinus(1.0, ratio).mean().MoveToOuterDisposeScope();
    }
}
