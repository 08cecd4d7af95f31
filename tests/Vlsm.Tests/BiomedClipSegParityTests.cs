using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.BiomedClipSeg;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// BiomedCLIPSeg against medvlsm's own class (shared/parity/biomedclipseg-tiny and every folder of the
/// family under $VLSM_PARITY_DIR): every stored tensor within 1e-4, the image transform and the
/// tokenized prompts exact; and the quirks the expected outputs include, each shown to matter.
/// </summary>
public class BiomedClipSegParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> ModelFolders() => Fixtures.ParityFoldersOf(BiomedClipSegFamily.Instance);

    private static string Tiny => Path.Combine(Fixtures.Parity, "biomedclipseg-tiny");

    [Fact]
    public void TheSharedFixtureIsFound() => Assert.Contains(ModelFolders(), o => (string)o[0] == Tiny);

    [Theory]
    [MemberData(nameof(ModelFolders))]
    public void EveryStoredTensorMatchesTheReference(string dir)
    {
        var results = BiomedClipSegFamily.Instance.Verify(dir, Path.Combine(dir, "reference.safetensors"), null);
        foreach (var r in results) output.WriteLine($"{r.Name}: {r.MaxAbsDiff:g3} {r.Problem}");
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var outputs = reference.Names.Where(n => n is not ("input_ids" or "attention_mask" or "pixel_values") && !n.StartsWith("image_uint8.", StringComparison.Ordinal));
        foreach (var name in outputs) Assert.Contains(results, r => r.Name == name);
        Assert.Contains(results, r => r.Name == "input_ids (tokenized prompts)");
        Assert.Contains(results, r => r.Name == "pixel_values (from image_uint8)");
        foreach (var r in results) Assert.True(r.Within(1e-4), $"{r.Name}: {r.Problem ?? r.MaxAbsDiff.ToString("g3")}");
        // Bytes and ids are exact.
        Assert.Equal(0, results.Single(r => r.Name == "resized_uint8").MaxAbsDiff);
        Assert.Equal(0, results.Single(r => r.Name == "input_ids (tokenized prompts)").MaxAbsDiff);
        Assert.Equal(0, results.Single(r => r.Name == "attention_mask (tokenized prompts)").MaxAbsDiff);
    }

    private static (BiomedClipSegModel Model, Tensor Pixels, Tensor Ids, Tensor Mask, SafetensorsFile Reference) Open()
    {
        var model = BiomedClipSegLoader.Load(Tiny);
        var reference = SafetensorsFile.Open(Path.Combine(Tiny, "reference.safetensors"));
        return (model, reference.Load("pixel_values", ScalarType.Float32), reference.Load("input_ids", ScalarType.Int64), reference.Load("attention_mask", ScalarType.Int64), reference);
    }

    [Fact]
    public void ExtractLayerIReadsBlockIPlusOneUnlessFixed()
    {
        var (model, pixels, ids, mask, reference) = Open();
        using var _ = inference_mode();
        using (model)
        using (reference)
        {
            Assert.Equal([2, 4, 5], model.Config.BlocksRead(ExtractIndexing.Reference));
            Assert.Equal([1, 3, 4], model.Config.BlocksRead(ExtractIndexing.Fixed));
            using var expected = reference.Load("logits", ScalarType.Float32).squeeze(1);
            using var reproduced = model.Forward(pixels, ids, mask);
            model.Indexing = ExtractIndexing.Fixed;
            using var fixedLogits = model.Forward(pixels, ids, mask);
            using var vision = model.EncodeImage(pixels);
            using var block4 = reference.Load("vision_block_output.4", ScalarType.Float32);
            double reproducedDiff = reproduced.sub(expected).abs().max().item<float>();
            double fixedDiff = fixedLogits.sub(expected).abs().max().item<float>();
            output.WriteLine($"reference indexing {reproducedDiff:g3}, fixed {fixedDiff:g3}");
            Assert.True(reproducedDiff <= 1e-4);
            Assert.True(fixedDiff > 1e-2, $"fixed indexing changed the logits by only {fixedDiff}");
            // Fixed: the third extract layer (4) reads block 4 itself, which the reference stores.
            Assert.True(vision.Activations[2].sub(block4).abs().max().item<float>() <= 1e-4);
        }
    }

    [Fact]
    public void ALiteralPadInAPromptIsAttendedUnlessTheMaskIsFixed()
    {
        var (model, pixels, _, _, reference) = Open();
        reference.Dispose();
        using var _ = inference_mode();
        using (model)
        {
            var tokenizer = BiomedClipSegLoader.Tokenizer(Tiny, BiomedClipSegLoader.ReadConfig(Tiny));
            var batch = tokenizer.EncodeBatch(["a polyp [PAD] in the image", "a polyp in the image"], 256, padTo: 256);
            using var ids = tensor(batch.InputIds, new long[] { 2, 256 });
            using var mask = tensor(batch.AttentionMask, new long[] { 2, 256 });
            Assert.Equal(0L, batch.InputIds[3]);
            Assert.Equal(1L, batch.AttentionMask[3]);
            using var attended = model.EncodeText(ids, mask);
            model.TextMask = TextMask.Fixed;
            using var masked = model.EncodeText(ids, mask);
            double changed = attended[0].sub(masked[0]).abs().max().item<float>();
            double unchanged = attended[1].sub(masked[1]).abs().max().item<float>();
            output.WriteLine($"with [PAD]: {changed:g3}; without: {unchanged:g3}");
            Assert.True(changed > 1e-3, $"masking the literal [PAD] changed the embedding by only {changed}");
            Assert.Equal(0, unchanged);
        }
    }

    [Fact]
    public void PaddingToTheLongestPromptGivesTheSameEmbeddingAsPaddingTo256()
    {
        var (model, _, ids, mask, reference) = Open();
        using var _ = inference_mode();
        using (model)
        using (reference)
        {
            using var expected = reference.Load("conditional_embeddings", ScalarType.Float32);
            var tokenizer = BiomedClipSegLoader.Tokenizer(Tiny, BiomedClipSegLoader.ReadConfig(Tiny));
            var prompts = System.Text.Json.JsonSerializer.Deserialize<string[]>(reference.Metadata["prompts"])!;
            var (shortIds, shortMask) = BiomedClipSegPredictor.Tokenize(tokenizer, model.Config, prompts);
            Assert.True(shortIds.shape[1] < 256);
            using var ours = model.EncodeText(shortIds, shortMask);
            Assert.True(ours.sub(expected).abs().max().item<float>() <= 1e-4);
        }
    }
}
