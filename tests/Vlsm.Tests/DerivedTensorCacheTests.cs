using TorchSharp;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>Stacked q/k/v weights and resized position embeddings are derived from the weights: loading new weights must rebuild them.</summary>
public class DerivedTensorCacheTests
{
    [Fact]
    public void LoadingWeightsIntoAModelThatHasRunGivesTheNewWeightsOutputs()
    {
        string geometry = Path.Combine(Fixtures.Parity, "clipseg-geometry");
        using var reference = SafetensorsFile.Open(Path.Combine(geometry, "reference.safetensors"));
        using var pixels = reference.Load("pixel_values", ScalarType.Float32);
        using var ids = reference.Load("input_ids", ScalarType.Int64);
        using var mask = reference.Load("attention_mask", ScalarType.Int64);
        using var expected = reference.Load("logits", ScalarType.Float32);

        // A model of the same architecture with other (random) weights, frozen so it caches, run once.
        using var model = new ClipSegModel(ClipSegLoader.ReadConfig(geometry));
        model.eval();
        foreach (var p in model.parameters()) p.requires_grad = false;
        using var _ = inference_mode();
        using (var before = model.Forward(pixels, ids, mask))
            Assert.True((before - expected).abs().max().item<float>() > 1e-2, "random weights should not give the reference logits");

        using (var file = SafetensorsFile.Open(Path.Combine(geometry, ClipSegLoader.WeightsFile)))
            StateDictLoader.LoadStrict(model, file, ClipSegLoader.IsIgnoredKey);
        using var after = model.Forward(pixels, ids, mask);
        double diff = (after - expected).abs().max().item<float>();
        Assert.True(diff < 1e-4, $"after loading, logits differ from the reference by {diff}");
    }
}
