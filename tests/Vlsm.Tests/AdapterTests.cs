using TorchSharp;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Tests;

public sealed class AdapterTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-adapters-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string AdapterBase => Path.Combine(Fixtures.Parity, "clipseg-adapter-base");

    [Fact]
    public void TrainableCountsEqualTheReferenceForTheRealArchitecture()
    {
        using var model = new ClipSegModel(ClipSegConfig.Rd64Refined);
        var expected = new (string Mode, string? Parts, long Count)[]
        {
            ("shallow", "v", 2_363_136), ("shallow", "vl", 3_939_072), ("shallow", "vlc", 4_201_984),
            ("dense", "v", 1_784_448), ("dense", "vl", 2_974_464), ("dense", "vlc", 3_237_376),
            ("decoder", null, 1_127_009), ("full", null, 150_747_746),
        };
        foreach (var (mode, parts, count) in expected)
        {
            // Not disposed: an AdaptedClipSeg owns (and would dispose) the shared base model.
            var adapted = new AdaptedClipSeg(model, FineTuneSpec.Create(FineTuneSpec.ParseMode(mode), parts));
            Assert.True(count == adapted.TrainableParameterCount, $"{mode} {parts}: {adapted.TrainableParameterCount}");
        }
    }

    [Fact]
    public void AdapterBlockComputesXPlusReluFc2ReluFc1()
    {
        using var a = new Adapter(3, 2);
        var p = a.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        using (no_grad())
        {
            p["fc1.weight"].copy_(tensor(new float[] { 1, 0, 0, 0, -1, 0 }).reshape(2, 3));
            p["fc1.bias"].copy_(tensor(new float[] { 0, 0 }));
            p["fc2.weight"].copy_(tensor(new float[] { 1, 1, -1, 0, 2, 2 }).reshape(3, 2));
            p["fc2.bias"].copy_(tensor(new float[] { 0, 0, -1 }));
        }
        using var x = tensor(new float[] { 2, -3, 5 }).reshape(1, 3);
        using var y = a.forward(x);
        // fc1: [2, 3] -> relu [2, 3]; fc2: [5, -2, 9] -> relu [5, 0, 9]; x + that = [7, -3, 14].
        Assert.Equal(new float[] { 7, -3, 14 }, y.data<float>().ToArray());
    }

    [Fact]
    public void ZeroInitialisedFc2MakesTheAdapterTheIdentity()
    {
        using var a = new Adapter(8, 4, zeroInitFc2: true);
        using var x = randn(5, 8);
        using var y = a.forward(x);
        Assert.True(Bitwise.Equal(y, x));
    }

    public static IEnumerable<object[]> Specs() => new[]
    {
        new object[] { "shallow", "v" }, new object[] { "shallow", "vl" }, new object[] { "shallow", "vlc" }, new object[] { "shallow", "c" },
        new object[] { "dense", "v" }, new object[] { "dense", "vl" }, new object[] { "dense", "vlc" }, new object[] { "dense", "l" },
        new object[] { "decoder", "" }, new object[] { "full", "" }, new object[] { "full", FrozenText },
    };

    /// <summary>The "parts" value these tests use for full mode with the text tower frozen.</summary>
    private const string FrozenText = "frozen-text";

    private static FineTuneSpec SpecOf(string mode, string parts)
    {
        var fineTuneMode = FineTuneSpec.ParseMode(mode);
        return fineTuneMode is FineTuneMode.Shallow or FineTuneMode.Dense
            ? FineTuneSpec.Create(fineTuneMode, parts, 8, 16)
            : FineTuneSpec.Create(fineTuneMode, freezeText: parts == FrozenText);
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void ExactlyTheTrainableParametersGetGradientsAndFrozenOnesNeverChange(string mode, string parts)
    {
        manual_seed(7);
        using var model = ClipSegLoader.Load(AdapterBase);
        var spec = SpecOf(mode, parts);
        using var adapted = new AdaptedClipSeg(model, spec);
        adapted.train();
        var trainable = adapted.TrainableParameters().ToHashSet(ReferenceEqualityComparer.Instance);
        var all = model.named_parameters().Select(p => (p.name, p.parameter))
            .Concat(adapted.Adapters?.named_parameters().Select(p => ("adapters." + p.name, p.parameter)) ?? Enumerable.Empty<(string, TorchSharp.Modules.Parameter)>())
            .ToList();
        var before = all.ToDictionary(p => p.Item1, p => p.Item2.detach().clone());

        using (var scope = NewDisposeScope())
        {
            var pixels = randn(2, 3, 80, 80);
            var ids = tensor(new long[] { 49406, 320, 2583, 49407, 49406, 320, 49407, 49407 }, new long[] { 2, 4 });
            var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 0 }, new long[] { 2, 4 });
            var target = rand(2, 80, 80).gt(0.5).to(ScalarType.Float32);
            var logits = adapted.Forward(pixels, ids, mask);
            var loss = nn.functional.binary_cross_entropy_with_logits(logits, target);
            loss.backward();
        }

        // Parameters that cannot reach the logits get no gradient in any implementation: CLIP's
        // contrastive head, the vision pooler's LN, and vision layers past the deepest extract layer.
        int firstUnusedVisionLayer = model.Config.ExtractLayers.Max() + 1;
        bool OffThePath(string name) =>
            name == "clip.logit_scale" || name.StartsWith("clip.visual_projection.") || name.StartsWith("clip.vision_model.post_layernorm.")
            || (name.StartsWith("clip.vision_model.encoder.layers.") && int.Parse(name.Split('.')[4]) >= firstUnusedVisionLayer);
        foreach (var (name, p) in all)
        {
            bool shouldTrain = trainable.Contains(p) && !OffThePath(name);
            bool hasGrad = p.grad is not null;
            Assert.True(shouldTrain == hasGrad, $"{mode} {parts}: {name} trainable={shouldTrain} but grad={(hasGrad ? "set" : "none")}");
        }
        Assert.NotEmpty(trainable);
        if (spec.FreezeText)
            Assert.All(all.Where(p => p.Item1.StartsWith("clip.text_model.") || p.Item1.StartsWith("clip.text_projection.")), p => Assert.DoesNotContain(p.Item2, trainable));

        var optimizer = optim.AdamW(adapted.TrainableParameters(), lr: 1e-2, weight_decay: 1e-3);
        optimizer.step();
        foreach (var (name, p) in all.Where(p => !trainable.Contains(p.Item2)))
            Assert.True(Bitwise.Equal(p, before[name]), $"{mode} {parts}: frozen {name} changed");
        Assert.Contains(all, p => trainable.Contains(p.Item2) && !Bitwise.Equal(p.Item2, before[p.Item1]));
        foreach (var t in before.Values) t.Dispose();
    }

    [Theory]
    [InlineData("shallow", "vlc")]
    [InlineData("dense", "vl")]
    [InlineData("decoder", "")]
    [InlineData("full", FrozenText)]
    public void AdapterFileRoundTripsToTheSameLogits(string mode, string parts)
    {
        manual_seed(3);
        using var model = ClipSegLoader.Load(AdapterBase);
        var adapted = new AdaptedClipSeg(model, SpecOf(mode, parts));
        if (mode is "decoder" or "full")
        {
            using var _ = no_grad();
            foreach (var p in adapted.TrainableParameters()) p.add_(0.01f);
        }
        adapted.eval();
        string path = Path.Combine(tmp, "a.safetensors");
        AdapterFile.Save(path, adapted);
        using var pixels = randn(1, 3, 80, 80);
        using var ids = tensor(new long[] { 49406, 320, 49407 }, new long[] { 1, 3 });
        Tensor before;
        using (no_grad()) before = adapted.Forward(pixels, ids, null);

        using var fresh = ClipSegLoader.Load(AdapterBase);
        using var loaded = AdapterFile.Load(fresh, path);
        using var g2 = no_grad();
        using var after = loaded.Forward(pixels, ids, null);
        Assert.True(Bitwise.Equal(after, before), "logits differ after save/load");
        before.Dispose();
        Assert.Equal(adapted.Spec with { ZeroInitFc2 = false }, loaded.Spec);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(mode, file.Metadata["kind"]);
        Assert.Equal(model.Config.Fingerprint, file.Metadata["base"]);
        if (parts == FrozenText)
        {
            Assert.Equal("true", file.Metadata["freeze_text"]);
            Assert.DoesNotContain(file.Names, n => n.StartsWith("clip.text_model.") || n.StartsWith("clip.text_projection."));
            Assert.Contains(file.Names, n => n.StartsWith("clip.vision_model."));
        }
    }

    [Fact]
    public void FreezingTheTextTowerIsForFullModeOnly()
    {
        var e = Assert.Throws<VlsmException>(() => FineTuneSpec.Create(FineTuneMode.Decoder, freezeText: true));
        Assert.Contains("full mode only", e.Message);
        using var model = ClipSegLoader.Load(AdapterBase);
        long text = model.named_parameters().Where(p => p.name.StartsWith("clip.text_model.") || p.name.StartsWith("clip.text_projection.")).Sum(p => p.parameter.numel());
        using var adapted = new AdaptedClipSeg(model, FineTuneSpec.Create(FineTuneMode.Full, freezeText: true));
        Assert.Equal(model.parameters().Sum(p => p.numel()) - text, adapted.TrainableParameterCount);
    }

    [Fact]
    public void ReferenceTrainedFileWithoutMetadataLoadsFromItsKeys()
    {
        string src = Path.Combine(AdapterBase, "adapters", "shallow-vlc.adapter.safetensors");
        string bare = Path.Combine(tmp, "bare.safetensors");
        using (var f = SafetensorsFile.Open(src))
            SafetensorsWriter.Save(bare, f.LoadAll());
        using var model = ClipSegLoader.Load(AdapterBase);
        using var adapted = AdapterFile.Load(model, bare);
        Assert.Equal(FineTuneMode.Shallow, adapted.Spec.Mode);
        Assert.Equal(AdapterParts.V | AdapterParts.L | AdapterParts.C, adapted.Spec.Parts);
        Assert.Equal(16, adapted.Spec.AdapterDim);
        Assert.Equal(256, adapted.Spec.CondAdapterDim);
    }

    [Fact]
    public void AdapterForAnotherBaseShapeIsRefusedNamingBoth()
    {
        using var model = ClipSegLoader.Load(AdapterBase);
        using var adapted = new AdaptedClipSeg(model, FineTuneSpec.Create(FineTuneMode.Shallow, "v", 8));
        string path = Path.Combine(tmp, "for-adapter-base.safetensors");
        AdapterFile.Save(path, adapted);
        using var other = ClipSegLoader.Load(Path.Combine(Fixtures.Parity, "clipseg-geometry"));
        var e = Assert.Throws<VlsmException>(() => AdapterFile.Load(other, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("vision=48", e.Message);
        Assert.Contains("vision=64", e.Message);
    }

    [Fact]
    public void ShallowLanguageAdaptersOnOtherWidthsAddThroughTheFrozenTextProjection()
    {
        using var tiny = ClipSegLoader.Load(Path.Combine(Fixtures.Parity, "clipseg-tiny")); // text 32, projection 16
        Assert.NotEqual(tiny.Config.Text.HiddenSize, tiny.Config.ProjectionDim);
        using var adapted = new AdaptedClipSeg(tiny, FineTuneSpec.Create(FineTuneMode.Shallow, "l"));
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var ids = torch.tensor(new long[] { 49406, 320, 1125, 49407, 49407, 49407, 49406, 2368, 49407, 49407, 49407, 49407 }, [2, 6]);
        using var text = adapted.EncodeText(ids, null);
        var cond = adapted.ConditionalEmbedding(text);
        Assert.Equal([2L, tiny.Config.ProjectionDim], cond.shape);
        // Each L adapter's output (text width) enters the conditional embedding through CLIP's own text projection.
        var expected = text.Conditional.clone();
        var adapters = ((ShallowAdapterSet)adapted.Adapters!).TextExtract!;
        for (int i = 0; i < adapters.Count; i++)
            expected = expected + tiny.Clip.TextProjection.forward(adapters[i].forward(text.PooledHidden![i]));
        Assert.True(torch.allclose(expected, cond, rtol: 0, atol: 1e-6), $"max diff {(expected - cond).abs().max().item<float>()}");
        Assert.False(tiny.Clip.TextProjection.weight!.requires_grad);
        Assert.True((cond - text.Conditional).abs().max().item<float>() > 1e-4f, "the L adapters changed nothing");
    }

    [Theory]
    [InlineData("vx", "'x'")]
    [InlineData("vv", "twice")]
    [InlineData("", "at least one")]
    public void BadPartsAreNamed(string parts, string expected)
    {
        var e = Assert.Throws<VlsmException>(() => FineTuneSpec.Create(FineTuneMode.Dense, parts));
        Assert.Contains(expected, e.Message);
    }
}
