using TorchSharp;
using Vlsm.IO;
using Vlsm.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// medvlsm's TunedDiceLoss against the values its Python code computed (shared/parity/smp-losses):
/// the batch loss, each sample's loss, the gradient of the logits, NaN where a sample has no plane
/// holding an exact 1, and the fixed variant equal to the reference wherever that is finite.
/// </summary>
public class TunedDiceLossTests
{
    private static readonly string File = Path.Combine(Fixtures.Parity, "smp-losses", "losses.safetensors");
    private static readonly string[] Finite = ["binary", "multiplane", "soft_targets"];
    private readonly ITestOutputHelper output;

    public TunedDiceLossTests(ITestOutputHelper output) => this.output = output;

    public static IEnumerable<object[]> Cases() => new[] { "binary", "empty_sample", "all_empty", "multiplane", "soft_targets" }.Select(c => new object[] { c });

    private static double MaxDiff(Tensor a, Tensor b)
    {
        using var d = a.to(ScalarType.Float64).sub(b.to(ScalarType.Float64)).abs();
        using var nanA = a.isnan();
        using var nanB = b.isnan();
        Assert.True(nanA.eq(nanB).all().item<bool>(), "NaN in different places");
        using var finite = d.nan_to_num(0);
        return finite.max().item<double>();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheLossAndEachSampleMatchTheReference(string name)
    {
        using var file = SafetensorsFile.Open(File);
        using var scope = NewDisposeScope();
        var logits = file.Load($"{name}.logits");
        var target = file.Load($"{name}.target");
        var expected = file.Load($"{name}.tuned_dice_loss");
        var loss = new TunedDiceLoss(skipEmpty: false).Compute(logits, target);
        output.WriteLine($"{name}: {loss.item<float>()} vs {expected.item<float>()}");
        Assert.Equal(float.IsNaN(expected.item<float>()), float.IsNaN(loss.item<float>()));
        if (!float.IsNaN(expected.item<float>())) Assert.InRange(Math.Abs(loss.item<float>() - expected.item<float>()), 0, 1e-6);
        Assert.InRange(MaxDiff(TunedDiceLoss.PerSample(logits, target), file.Load($"{name}.tuned_dice_loss_per_sample")), 0, 1e-6);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheGradientOfTheLogitsMatchesTheReference(string name)
    {
        using var file = SafetensorsFile.Open(File);
        if (!file.Contains($"{name}.grad_logits")) return; // NaN losses store no gradient (checked: the loss is NaN there)
        using var scope = NewDisposeScope();
        var logits = file.Load($"{name}.logits").requires_grad_();
        var loss = new TunedDiceLoss(skipEmpty: false).Compute(logits, file.Load($"{name}.target"));
        loss.backward();
        var expected = file.Load($"{name}.grad_logits");
        double diff = MaxDiff(logits.grad!, expected);
        double scale = expected.abs().max().item<float>();
        output.WriteLine($"{name}: gradient max diff {diff:g3} (largest gradient {scale:g3})");
        Assert.True(scale > 1e-5, $"{name}: the reference gradient is (near) zero");
        Assert.InRange(diff, 0, 1e-6);
    }

    [Fact]
    public void EveryCaseWithoutAStoredGradientHasANaNLoss()
    {
        using var file = SafetensorsFile.Open(File);
        foreach (var name in Cases().Select(c => (string)c[0]).Where(n => !file.Contains($"{n}.grad_logits")))
        {
            using var loss = file.Load($"{name}.tuned_dice_loss");
            Assert.True(float.IsNaN(loss.item<float>()), name);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheFixedVariantIsFiniteAndEqualsTheReferenceWhereThatIsFinite(string name)
    {
        using var file = SafetensorsFile.Open(File);
        using var scope = NewDisposeScope();
        var logits = file.Load($"{name}.logits").requires_grad_();
        var target = file.Load($"{name}.target");
        var loss = new TunedDiceLoss(skipEmpty: true).Compute(logits, target);
        loss.backward();
        Assert.True(float.IsFinite(loss.item<float>()), $"{name}: {loss.item<float>()}");
        Assert.True(logits.grad!.isfinite().all().item<bool>(), $"{name}: gradient not finite");
        var perSample = file.Load($"{name}.tuned_dice_loss_per_sample");
        var finite = perSample.isfinite();
        if (Finite.Contains(name))
        {
            Assert.InRange(Math.Abs(loss.item<float>() - file.Load($"{name}.tuned_dice_loss").item<float>()), 0, 1e-6);
        }
        else if (finite.any().item<bool>())
        {
            // The batch mean over the samples that have a kept plane.
            double expected = perSample.masked_select(finite).mean().item<float>();
            Assert.InRange(Math.Abs(loss.item<float>() - expected), 0, 1e-6);
        }
        else
        {
            Assert.Equal(0f, loss.item<float>());
            Assert.Equal(0f, logits.grad!.abs().max().item<float>());
        }
    }

    [Fact]
    public void APlaneEntersOnlyWhenItHoldsAnExactOne()
    {
        using var file = SafetensorsFile.Open(File);
        using var scope = NewDisposeScope();
        foreach (var name in Cases().Select(c => (string)c[0]))
        {
            var target = file.Load($"{name}.target");
            using var one = 1.0.ToScalar();
            var kept = target.eq(one).flatten(2).any(2).to(ScalarType.Int64);
            Assert.True(kept.eq(file.Load($"{name}.kept_planes")).all().item<bool>(), name);
        }
    }

    [Fact]
    public void ThreeDimensionalLogitsAreOneChannel()
    {
        using var file = SafetensorsFile.Open(File);
        using var scope = NewDisposeScope();
        var logits = file.Load("binary.logits");
        var target = file.Load("binary.target");
        var loss = new TunedDiceLoss(false);
        Assert.Equal(loss.Compute(logits, target).item<float>(), loss.Compute(logits.squeeze(1), target.squeeze(1)).item<float>());
        Assert.Equal("tuned-dice", SegmentationLosses.Create("tuned-dice").Name);
        Assert.Equal("tuned-dice-fixed", SegmentationLosses.Create("tuned-dice-fixed").Name);
    }
}
