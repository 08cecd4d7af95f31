using TorchSharp;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Training;

/// <summary>What the cross-entropy term of <see cref="DiceCeLoss"/> computes.</summary>
public enum CeTerm
{
    /// <summary>
    /// As medvlsm trains: monai 1.1's <c>DiceCELoss</c> applies <c>nn.CrossEntropyLoss</c> over the
    /// channel axis, which for a single-channel prediction with a float target is
    /// −y·log_softmax(p) = −y·0 = 0 at every pixel. The term adds nothing and passes no gradient.
    /// </summary>
    Reference,

    /// <summary>Binary cross-entropy with logits, the cross-entropy a single-channel output means.</summary>
    Bce,
}

/// <summary>
/// medvlsm's BiomedCLIPSeg loss: λ_dice · soft Dice + λ_ce · CE with λ_dice 1.0 and λ_ce 0.2. medvlsm's
/// module feeds sigmoid(logits) to monai 1.1's <c>DiceCELoss()</c> (sigmoid off): soft Dice per
/// sample (<see cref="DiceBceLoss.SoftDice"/>: smoothing 1e-5, mean over the batch) of p = sigmoid(logits);
/// the cross-entropy term is <see cref="CeTerm"/>.
/// </summary>
public sealed class DiceCeLoss : ISegmentationLoss
{
    public const string ReferenceName = "dice-ce";
    public const string BceName = "dice-ce-bce";

    public DiceCeLoss(CeTerm ce = CeTerm.Reference, double lambdaDice = 1.0, double lambdaCe = 0.2)
    {
        Ce = ce;
        LambdaDice = lambdaDice;
        LambdaCe = lambdaCe;
    }

    public CeTerm Ce { get; }
    public double LambdaDice { get; }
    public double LambdaCe { get; }
    public string Name => Ce == CeTerm.Reference ? ReferenceName : BceName;

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
        var dice = DiceBceLoss.SoftDice(p, y);
        Tensor ce;
        if (Ce == CeTerm.Reference)
        {
            // CrossEntropyLoss over the (single) channel axis with probability targets, as monai 1.1 calls it.
            var logProbabilities = nn.functional.log_softmax(p.unsqueeze(1), 1);
            ce = logProbabilities.mul(y.unsqueeze(1)).sum(1).mean().neg();
        }
        else
        {
            ce = nn.functional.binary_cross_entropy_with_logits(x, y);
        }
        return Plus(Times(dice, LambdaDice), Times(ce, LambdaCe)).MoveToOuterDisposeScope();
    }
}
