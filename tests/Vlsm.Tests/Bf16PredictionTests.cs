using TorchSharp;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.Inference;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// <c>--precision bf16</c> for prediction and evaluation: CLIP towers (and dense adapters inside
/// them) in bfloat16, decoder and shallow adapters in float32. On the parity models' reference inputs the logits stay within 5e-2 of
/// float32 and at least 99 % of the thresholded mask pixels are equal (measured: at most 0.020,
/// at least 99.6 %).
/// </summary>
public class Bf16PredictionTests
{
    private const double LogitTolerance = 5e-2;
    private const double MinAgreement = 0.99;

    private static string Model(string name) => Path.Combine(Fixtures.Parity, name);

    private static (Tensor Pixels, Tensor Ids, Tensor Mask) ReferenceInputs(string modelDir)
    {
        using var reference = SafetensorsFile.Open(Path.Combine(modelDir, "reference.safetensors"));
        return (reference.Load("pixel_values", ScalarType.Float32), reference.Load("input_ids", ScalarType.Int64), reference.Load("attention_mask", ScalarType.Int64));
    }

    private static Tensor Logits(ClipSegPredictor predictor, (Tensor Pixels, Tensor Ids, Tensor Mask) input)
    {
        using var _ = inference_mode();
        return predictor.Adapted is { } adapted
            ? adapted.Forward(input.Pixels, input.Ids, input.Mask)
            : predictor.Model.Forward(input.Pixels, input.Ids, input.Mask);
    }

    private static void AssertClose(Tensor fp32, Tensor bf16)
    {
        Assert.Equal(ScalarType.Float32, bf16.dtype);
        double diff = (fp32 - bf16).abs().max().item<float>();
        Assert.True(diff < LogitTolerance, $"bf16 logits differ from fp32 by {diff}");
        Assert.True(diff > 0, "bf16 and fp32 logits are identical: the towers did not run in bf16");
        double agreement = fp32.gt(0).eq(bf16.gt(0)).to(ScalarType.Float64).mean().item<double>();
        Assert.True(agreement >= MinAgreement, $"thresholded masks agree on {agreement:P3} of pixels");
    }

    [Theory]
    [InlineData("clipseg-geometry")]
    [InlineData("clipseg-tiny")]
    public void BaseModelInBf16StaysCloseToFp32(string name)
    {
        string dir = Model(name);
        var input = ReferenceInputs(dir);
        var fp32 = ClipSegPredictor.FromFolder(dir);
        var bf16 = ClipSegPredictor.FromFolder(dir, towerDtype: ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, bf16.Model.Clip.VisionModel.parameters().First().dtype);
        Assert.Equal(ScalarType.BFloat16, bf16.Model.Clip.TextProjection.weight!.dtype);
        Assert.All(bf16.Model.Decoder.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.All(bf16.Model.parameters(), p => Assert.False(p.requires_grad));
        using var a = Logits(fp32, input);
        using var b = Logits(bf16, input);
        AssertClose(a, b);
    }

    [Theory]
    [InlineData("shallow-vlc")]
    [InlineData("dense-vlc")]
    public void AdaptersOnABf16BaseStayCloseToFp32(string adapter)
    {
        string dir = Model("clipseg-adapter-base");
        string file = Path.Combine(dir, "adapters", adapter + ".adapter.safetensors");
        var input = ReferenceInputs(dir);
        var fp32 = ClipSegPredictor.FromFolder(dir, file);
        var bf16 = ClipSegPredictor.FromFolder(dir, file, ScalarType.BFloat16);
        Assert.All(bf16.Adapted!.Adapters!.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        using var a = Logits(fp32, input);
        using var b = Logits(bf16, input);
        AssertClose(a, b);
    }

    [Fact]
    public void FullModeCheckpointPredictsInBf16ThoughItCannotTrainInBf16()
    {
        string dir = Model("clipseg-adapter-base");
        string file = Path.Combine(Directory.CreateTempSubdirectory("vlsm-bf16-full-").FullName, "full.safetensors");
        try
        {
            using (var full = new AdaptedClipSeg(ClipSegLoader.Load(dir), FineTuneSpec.Create(FineTuneMode.Full)))
                AdapterFile.Save(file, full);
            var input = ReferenceInputs(dir);
            var fp32 = ClipSegPredictor.FromFolder(dir, file);
            var bf16 = ClipSegPredictor.FromFolder(dir, file, ScalarType.BFloat16);
            Assert.Equal(FineTuneMode.Full, bf16.Adapted!.Spec.Mode);
            Assert.Equal(ScalarType.BFloat16, bf16.Adapted.TowerDtype);
            using var a = Logits(fp32, input);
            using var b = Logits(bf16, input);
            AssertClose(a, b);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
        }
    }

    [Fact]
    public void PrecisionNamesOtherThanFp32AndBf16AreRefused()
    {
        Assert.Equal(ScalarType.Float32, TowerPrecision.Parse("fp32"));
        Assert.Equal(ScalarType.BFloat16, TowerPrecision.Parse("bf16"));
        var e = Assert.Throws<VlsmException>(() => TowerPrecision.Parse("fp16"));
        Assert.Equal("--precision must be fp32 or bf16, got \"fp16\".", e.Message);
    }

    [Fact]
    public void SetTowerDtypeKeepsEachParametersRequiresGrad()
    {
        using var model = new AdaptedClipSeg(ClipSegLoader.Load(Path.Combine(Fixtures.Parity, "clipseg-adapter-base")), FineTuneSpec.Create(FineTuneMode.Decoder));
        var before = model.Base.named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        model.UseBf16Towers();
        var after = model.Base.named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        Assert.Equal(before, after);
        Assert.Contains(after, p => p.Value);
        Assert.Contains(after, p => !p.Value);
    }
}
