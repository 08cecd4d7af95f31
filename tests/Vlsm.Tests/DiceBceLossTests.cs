using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Tests;

public class DiceBceLossTests
{
    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    // BCE-with-logits of input z against y, written out: max(z,0) - z*y + log(1 + exp(-|z|)).
    private static double BceWithLogits(double z, double y) => Math.Max(z, 0) - z * y + Math.Log(1 + Math.Exp(-Math.Abs(z)));

    private static double Expected(double[] logits, double[] target, int batch, bool reference)
    {
        int n = logits.Length / batch;
        double dice = 0, bce = 0;
        for (int b = 0; b < batch; b++)
        {
            double inter = 0, sp = 0, sy = 0;
            for (int i = 0; i < n; i++)
            {
                double p = Sigmoid(logits[b * n + i]), y = target[b * n + i];
                inter += p * y; sp += p; sy += y;
                bce += BceWithLogits(reference ? p : logits[b * n + i], y);
            }
            dice += 1 - (2 * inter + 1e-5) / (sp + sy + 1e-5);
        }
        return 1.5 * dice / batch + bce / logits.Length;
    }

    [Fact]
    public void ZeroLogitsAgainstAHalfMaskMatchTheHandValue()
    {
        // p = 0.5 everywhere, y = [1,0,0,1]: Dice = 1 - (2*1 + 1e-5)/(2 + 2 + 1e-5) = 0.49999875.
        // Reference BCE sees z = 0.5: y=1 -> log(1+e^-0.5) = 0.474077; y=0 -> 0.5 + 0.474077. Mean 0.724077.
        using var logits = zeros(1, 2, 2);
        using var target = tensor(new float[] { 1, 0, 0, 1 }).reshape(1, 2, 2);
        using var reference = new DiceBceLoss(BceInput.Reference).Compute(logits, target);
        Assert.Equal(1.5 * 0.49999875 + (0.5 + 2 * Math.Log(1 + Math.Exp(-0.5))) / 2, reference.item<float>(), 5);
        using var plain = new DiceBceLoss(BceInput.Logits).Compute(logits, target);
        Assert.Equal(1.5 * 0.49999875 + Math.Log(2), plain.item<float>(), 5);
    }

    [Fact]
    public void EmptyMasksAndEmptyPredictionsGiveNearZeroDice()
    {
        // All-negative logits on an empty target: Dice term ~ 1 - 1e-5/(Σp + 1e-5), Σp tiny.
        using var logits = full(2, 4, 4, -30f);
        using var target = zeros(2, 4, 4);
        using var loss = new DiceBceLoss(BceInput.Logits, diceWeight: 1, bceWeight: 0).Compute(logits, target);
        double p = Sigmoid(-30) * 16;
        Assert.Equal(1 - 1e-5 / (p + 1e-5), loss.item<float>(), 4);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RandomBatchesMatchTheFormula(bool reference)
    {
        var rng = new Random(11);
        int batch = 3, n = 5 * 7;
        var l = Enumerable.Range(0, batch * n).Select(_ => rng.NextDouble() * 8 - 4).ToArray();
        var y = Enumerable.Range(0, batch * n).Select(_ => rng.Next(2) * 1.0).ToArray();
        using var logits = tensor(l.Select(v => (float)v).ToArray()).reshape(batch, 5, 7);
        using var target = tensor(y.Select(v => (float)v).ToArray()).reshape(batch, 5, 7);
        using var loss = new DiceBceLoss(reference ? BceInput.Reference : BceInput.Logits).Compute(logits, target);
        Assert.Equal(Expected(l, y, batch, reference), loss.item<float>(), 5);
    }
}
