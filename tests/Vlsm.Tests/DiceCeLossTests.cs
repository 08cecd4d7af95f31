using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>medvlsm's DiceCE as monai 1.1 computes it for one channel, and the variant whose CE term works.</summary>
public class DiceCeLossTests
{
    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    private static double SoftDice(float[] logits, float[] target, int batch)
    {
        int n = logits.Length / batch;
        double sum = 0;
        for (int b = 0; b < batch; b++)
        {
            double inter = 0, sp = 0, sy = 0;
            for (int i = 0; i < n; i++)
            {
                double p = Sigmoid(logits[b * n + i]);
                inter += p * target[b * n + i]; sp += p; sy += target[b * n + i];
            }
            sum += 1 - (2 * inter + 1e-5) / (sp + sy + 1e-5);
        }
        return sum / batch;
    }

    private static (float[] Logits, float[] Target) Data()
    {
        var rng = new Random(5);
        var logits = Enumerable.Range(0, 2 * 3 * 4).Select(_ => (float)(rng.NextDouble() * 6 - 3)).ToArray();
        var target = Enumerable.Range(0, 2 * 3 * 4).Select(_ => rng.NextDouble() < 0.4 ? 1f : 0f).ToArray();
        return (logits, target);
    }

    [Fact]
    public void TheReferenceCrossEntropyOverOneChannelIsZeroSoTheLossIsTheSoftDice()
    {
        var (l, y) = Data();
        using var logits = tensor(l).reshape(2, 3, 4).requires_grad_();
        using var target = tensor(y).reshape(2, 3, 4);
        var loss = SegmentationLosses.Create("dice-ce");
        Assert.Equal("dice-ce", loss.Name);
        using var value = loss.Compute(logits, target);
        Assert.Equal(SoftDice(l, y, 2), value.item<float>(), 5);
        // The CE term passes no gradient either: the gradient is the soft Dice's alone.
        value.backward();
        using var diceOnly = logits.detach().clone().requires_grad_();
        using var dice = DiceBceLoss.SoftDice(diceOnly.sigmoid(), target);
        dice.backward();
        Assert.True(logits.grad!.allclose(diceOnly.grad!, 1e-6, 1e-7));
    }

    [Fact]
    public void TheBceVariantAddsPointTwoTimesBceWithLogits()
    {
        var (l, y) = Data();
        using var logits = tensor(l).reshape(2, 3, 4);
        using var target = tensor(y).reshape(2, 3, 4);
        double bce = l.Select((z, i) => Math.Max(z, 0) - z * y[i] + Math.Log(1 + Math.Exp(-Math.Abs(z)))).Average();
        using var value = SegmentationLosses.Create("dice-ce-bce").Compute(logits, target);
        Assert.Equal(SoftDice(l, y, 2) + 0.2 * bce, value.item<float>(), 5);
    }

    [Fact]
    public void ShapesThatDifferAreRefused()
    {
        using var a = zeros(1, 2, 2);
        using var b = zeros(1, 2, 3);
        Assert.Throws<ArgumentException>(() => new DiceCeLoss().Compute(a, b));
    }
}
