using TorchSharp;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Tests;

public class Bf16TowerTests
{
    private static string AdapterBase => Path.Combine(Fixtures.Parity, "clipseg-adapter-base");

    [Theory]
    [InlineData("shallow-vlc")]
    [InlineData("dense-vlc")]
    public void Bf16TowersStayCloseToFp32(string adapter)
    {
        string dir = Path.Combine(AdapterBase, "adapters");
        using var reference = SafetensorsFile.Open(Path.Combine(dir, adapter + ".reference.safetensors"));
        using var pixels = reference.Load("pixel_values", ScalarType.Float32);
        using var ids = reference.Load("input_ids", ScalarType.Int64);
        using var mask = reference.Load("attention_mask", ScalarType.Int64);

        using var fp32 = AdapterFile.Load(ClipSegLoader.Load(AdapterBase), Path.Combine(dir, adapter + ".adapter.safetensors"));
        using var bf16 = AdapterFile.Load(ClipSegLoader.Load(AdapterBase), Path.Combine(dir, adapter + ".adapter.safetensors"));
        bf16.UseBf16Towers();
        Assert.Equal(ScalarType.BFloat16, bf16.Base.Clip.VisionModel.parameters().First().dtype);
        Assert.All(bf16.TrainableParameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));

        using var _ = inference_mode();
        using var a = fp32.Forward(pixels, ids, mask);
        using var b = bf16.Forward(pixels, ids, mask);
        Assert.Equal(ScalarType.Float32, b.dtype);
        double diff = (a - b).abs().max().item<float>();
        Assert.True(diff < 5e-2, $"bf16 logits differ from fp32 by {diff}");
        double agreement = a.gt(0).eq(b.gt(0)).to(ScalarType.Float32).mean().item<float>();
        Assert.True(agreement >= 0.99, $"thresholded masks agree on {agreement:P2} of pixels");
    }

    [Fact]
    public void Bf16DenseAdaptersStillGetGradientsAndFrozenTowersDoNot()
    {
        using var model = new AdaptedClipSeg(ClipSegLoader.Load(AdapterBase), FineTuneSpec.Create(FineTuneMode.Dense, "vl", 8));
        model.UseBf16Towers();
        model.train();
        using (var scope = NewDisposeScope())
        {
            var logits = model.Forward(randn(1, 3, 80, 80), tensor(new long[] { 49406, 320, 49407 }, new long[] { 1, 3 }), null);
            logits.sum().backward();
        }
        Assert.All(model.TrainableParameters(), p => Assert.NotNull(p.grad));
        Assert.All(model.Base.Clip.VisionModel.parameters(), p => Assert.Null(p.grad));
    }

    [Fact]
    public void FullModeRefusesBf16()
    {
        using var model = new AdaptedClipSeg(ClipSegLoader.Load(AdapterBase), FineTuneSpec.Create(FineTuneMode.Full));
        var e = Assert.Throws<VlsmException>(model.UseBf16Towers);
        Assert.Contains("fp32", e.Message);
    }
}
