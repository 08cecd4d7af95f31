using Vlsm.Models.ClipSeg;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.IO;

namespace Vlsm.Tests;

public sealed class CliPredictTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-predict-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    private string MakeImage(string name, int w, int h, int seed) => WriteRandomPng(Path.Combine(tmp, name), w, h, seed);

    /// <summary>A PNG of random pixels (folders created).</summary>
    internal static string WriteRandomPng(string path, int w, int h, int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[w * h * 3];
        rng.NextBytes(pixels);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        ImageCodec.SavePng(path, new RgbImage(w, h, pixels));
        return path;
    }

    [Theory]
    [InlineData("smp-unet-tiny", "UNet")]
    [InlineData("cris-tiny", "CRIS")]
    public void WeightsOfAnotherFamilyAreRefusedAsSuchNotAsAnotherBase(string model, string familyWord)
    {
        // A CLIPSeg adapter's metadata: its shape fingerprint and a base-weights hash no folder has.
        string adapter = Path.Combine(tmp, "clipseg-adapter.safetensors");
        using (var scope = TorchSharp.torch.NewDisposeScope())
            SafetensorsWriter.Save(adapter, [new KeyValuePair<string, TorchSharp.torch.Tensor>("vision_extract_adapters.0.fc1.weight", TorchSharp.torch.zeros(4, 8))],
                new Dictionary<string, string> { ["base"] = ClipSegConfig.FromFile(Path.Combine(Tiny, "config.json")).Fingerprint, [Vlsm.Models.BaseWeights.MetadataKey] = "sha256:" + new string('0', 64) });
        string image = MakeImage("img.png", 32, 32, 3);
        string modelDir = Path.Combine(Fixtures.Parity, model);

        foreach (var allow in new[] { false, true })
        {
            string[] args = ["predict", "--model", modelDir, "--adapter", adapter, "--out", Path.Combine(tmp, "out"), image];
            var r = CliRunner.Run(allow ? [.. args, "--allow-other-base"] : args);
            Assert.True(r.ExitCode == 2, r.Stdout + r.Stderr);
            Assert.Contains($"{adapter} was trained for a CLIPSeg model (clipseg;", r.Stderr);
            Assert.Contains($"but {modelDir} holds a ", r.Stderr);
            Assert.Contains(familyWord, r.Stderr);
            Assert.DoesNotContain("--allow-other-base", r.Stderr);
            Assert.DoesNotContain("sha256:", r.Stderr);
        }
    }

    [Fact]
    public void WritesMaskOverlayAndProbsAtTheRightSizes()
    {
        var images = Path.Combine(tmp, "images");
        Directory.CreateDirectory(images);
        var a = MakeImage("images/a.png", 40, 30, 1);
        var b = MakeImage("images/b.png", 64, 64, 2);
        var outDir = Path.Combine(tmp, "out");

        var r = CliRunner.Run("predict", "--model", Tiny, "--prompt", "a round pink polyp", "--probs", "--out", outDir, images);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var predictor = ClipSegPredictor.FromFolder(Tiny);
        foreach (var (path, w, h) in new[] { (a, 40, 30), (b, 64, 64) })
        {
            string stem = Path.Combine(outDir, Path.GetFileNameWithoutExtension(path));
            var mask = ImageCodec.DecodeGray(stem + ".mask.png");
            Assert.Equal((w, h), (mask.Width, mask.Height));
            Assert.All(mask.Pixels, p => Assert.True(p is 0 or 255));
            var overlay = ImageCodec.DecodeRgb(stem + ".overlay.png");
            Assert.Equal((w, h), (overlay.Width, overlay.Height));

            var (shape, probs) = Npy.ReadFloat32(stem + ".probs.npy");
            Assert.Equal(new long[] { 24, 24 }, shape); // the tiny model outputs half its 48-px input
            var expected = predictor.Predict(new[] { ImageCodec.DecodeRgb(path) }, new[] { "a round pink polyp" })[0];
            Assert.Equal(expected.Probabilities.Length, probs.Length);
            for (int i = 0; i < probs.Length; i++) Assert.Equal(expected.Probabilities[i], probs[i], 1e-5f);
            Assert.Equal(expected.MaskAt(w, h, 0.5f).Pixels, mask.Pixels);
        }
    }

    [Fact]
    public void CorruptImageIsNamedAndTheOthersAreStillWritten()
    {
        var good = MakeImage("good.png", 32, 32, 3);
        var bad = Path.Combine(tmp, "bad.png");
        File.WriteAllBytes(bad, new byte[] { 0x89, 0x50, 0x4E, 0x47, 1, 2, 3 });
        var outDir = Path.Combine(tmp, "out");

        var r = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--out", outDir, good, bad);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(bad, r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "good.mask.png")));
        Assert.False(File.Exists(Path.Combine(outDir, "bad.mask.png")));
    }

    [Fact]
    public void MissingInputIsNamed()
    {
        var missing = Path.Combine(tmp, "nope.png");
        var r = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--out", tmp, missing);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(missing, r.Stderr);
    }
}
