using Vlsm.Data.Synthetic;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.IO;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Tests;

/// <summary>predict's prompts, outputs and refusals; eval's output folder.</summary>
public sealed class PredictEvalOutputsCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-predict-eval-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    private string MakeImage(string name, int w, int h, int seed) => CliPredictTests.WriteRandomPng(Path.Combine(tmp, name), w, h, seed);

    [Fact]
    public void SeveralPromptsWriteOneOutputSetEachInTheOrderGiven()
    {
        var image = MakeImage("in/a.png", 40, 30, 1);
        var several = CliRunner.Run("predict", "--model", Tiny, "--prompt", "a round pink polyp", "--prompt", "something else entirely", "--out", Path.Combine(tmp, "two"), image);
        Assert.True(several.ExitCode == 0, several.Stdout + several.Stderr);
        Assert.Contains("x 2 prompts", several.Stdout);
        var predictor = ClipSegPredictor.FromFolder(Tiny);
        var decoded = ImageCodec.DecodeRgb(image);
        foreach (var (k, text) in new[] { (1, "a round pink polyp"), (2, "something else entirely") })
        {
            var mask = ImageCodec.DecodeGray(Path.Combine(tmp, "two", $"a.p{k}.mask.png"));
            var expected = predictor.Predict([decoded], [text])[0].MaskAt(40, 30, 0.5f);
            Assert.Equal(expected.Pixels, mask.Pixels);
            Assert.True(File.Exists(Path.Combine(tmp, "two", $"a.p{k}.overlay.png")));
        }
        Assert.False(File.Exists(Path.Combine(tmp, "two", "a.mask.png")));
    }

    [Fact]
    public void ProbsAtTheOriginalSizeAreTheModelsProbabilitiesResizedBilinearly()
    {
        var image = MakeImage("in/b.png", 50, 20, 2);
        var r = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--probs", "--probs-size", "original", "--out", Path.Combine(tmp, "o"), image);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var (shape, probs) = Npy.ReadFloat32(Path.Combine(tmp, "o", "b.probs.npy"));
        Assert.Equal(new long[] { 20, 50 }, shape);
        var p = ClipSegPredictor.FromFolder(Tiny).Predict([ImageCodec.DecodeRgb(image)], ["polyp"])[0];
        // Half-pixel-centred bilinear by hand at a few pixels: x_src = (x + 0.5) * w / W - 0.5, clamped.
        foreach (var (x, y) in new[] { (0, 0), (49, 19), (25, 10), (7, 3), (33, 17) })
        {
            double sx = Math.Max(0, (x + 0.5) * p.Width / 50 - 0.5), sy = Math.Max(0, (y + 0.5) * p.Height / 20 - 0.5);
            int x0 = (int)sx, y0 = (int)sy, x1 = Math.Min(x0 + 1, p.Width - 1), y1 = Math.Min(y0 + 1, p.Height - 1);
            double fx = sx - x0, fy = sy - y0;
            double At(int xx, int yy) => p.Probabilities[yy * p.Width + xx];
            double expected = (1 - fy) * ((1 - fx) * At(x0, y0) + fx * At(x1, y0)) + fy * ((1 - fx) * At(x0, y1) + fx * At(x1, y1));
            Assert.Equal(expected, probs[y * 50 + x], 1e-5);
        }
    }

    [Fact]
    public void OutputsInTheInputFolderAreNotReadAgain()
    {
        string folder = Path.Combine(tmp, "imgs");
        MakeImage("imgs/a.png", 32, 32, 3);
        MakeImage("imgs/b.png", 32, 32, 4);
        var first = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--out", folder, folder);
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Contains("wrote 2 prediction(s)", first.Stdout);
        var second = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--out", folder, folder);
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Contains("wrote 2 prediction(s)", second.Stdout);
        Assert.Contains("skipped 4 file(s) predict wrote itself", second.Stderr);
        Assert.False(File.Exists(Path.Combine(folder, "a.mask.mask.png")));
    }

    [Fact]
    public void TiffImagesArePredicted()
    {
        var values = new ushort[24 * 16];
        for (int i = 0; i < values.Length; i++) values[i] = (ushort)(i * 170 % 65536);
        string folder = Path.Combine(tmp, "tiffs");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "scan.tif"), TiffReaderTests.Tiff(24, 16, 1, 16, values));
        var r = CliRunner.Run("predict", "--model", Tiny, "--prompt", "cell", "--out", Path.Combine(tmp, "o"), folder);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var mask = ImageCodec.DecodeGray(Path.Combine(tmp, "o", "scan.mask.png"));
        Assert.Equal((24, 16), (mask.Width, mask.Height));
    }

    [Fact]
    public void BadValuesAndUnknownFlagsAreRefusedBeforeAnyWork()
    {
        var image = MakeImage("in/c.png", 16, 16, 5);
        var unknown = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--foo", "--out", Path.Combine(tmp, "o"), image);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("unknown option --foo", unknown.Stderr);
        Assert.DoesNotContain("no such image", unknown.Stderr);

        foreach (var bad in new[] { "NaN", "-0.1", "1.5" })
        {
            var r = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--threshold", bad, "--out", Path.Combine(tmp, "o"), image);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("--threshold", r.Stderr);
        }
        var size = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--probs-size", "huge", "--out", Path.Combine(tmp, "o"), image);
        Assert.Equal(2, size.ExitCode);
        Assert.Contains("--probs-size", size.Stderr);

        var file = Path.Combine(tmp, "a-file");
        File.WriteAllText(file, "x");
        var outFile = CliRunner.Run("predict", "--model", Tiny, "--prompt", "polyp", "--out", file, image);
        Assert.Equal(2, outFile.ExitCode);
        Assert.Contains($"--out {file} is a file", outFile.Stderr);

        string reference = Path.Combine(Tiny, "reference.safetensors");
        foreach (var tolerance in new[] { "NaN", "-1" })
        {
            var v = CliRunner.Run("verify", "--model", Tiny, "--reference", reference, "--tolerance", tolerance);
            Assert.Equal(2, v.ExitCode);
            Assert.Contains("--tolerance must be a number, 0 or more", v.Stderr);
        }
        var modelFile = CliRunner.Run("verify", "--model", reference, "--reference", reference);
        Assert.Equal(2, modelFile.ExitCode);
        Assert.Contains("is a file", modelFile.Stderr);
        var adapterDir = CliRunner.Run("verify", "--model", Tiny, "--reference", reference, "--adapter", tmp);
        Assert.Equal(2, adapterDir.ExitCode);
        Assert.Contains("is a folder", adapterDir.Stderr);
    }

    [Fact]
    public void VerifyBlamesTheReferenceForItsOwnFaults()
    {
        string reference = Path.Combine(Tiny, "reference.safetensors");
        using var file = SafetensorsFile.Open(reference);
        var tensors = file.LoadAll();
        try
        {
            string inputsOnly = Path.Combine(tmp, "inputs-only.safetensors");
            SafetensorsWriter.Save(inputsOnly, tensors.Where(kv => kv.Key is "input_ids" or "attention_mask" or "pixel_values"), null);
            var none = CliRunner.Run("verify", "--model", Tiny, "--reference", inputsOnly);
            Assert.Equal(2, none.ExitCode);
            Assert.Contains("no expected outputs", none.Stderr);

            string floatIds = Path.Combine(tmp, "f64-ids.safetensors");
            SafetensorsWriter.Save(floatIds, tensors.Select(kv => kv.Key == "input_ids" ? new KeyValuePair<string, TorchSharp.torch.Tensor>(kv.Key, kv.Value.to_type(TorchSharp.torch.ScalarType.Float64)) : kv), null);
            var f64 = CliRunner.Run("verify", "--model", Tiny, "--reference", floatIds);
            Assert.Equal(2, f64.ExitCode);
            Assert.Contains("input_ids is F64", f64.Stderr);

            string nan = Path.Combine(tmp, "nan.safetensors");
            using (var bad = tensors["logits"].clone())
            {
                bad.view(-1)[0] = TorchSharp.torch.tensor(float.NaN);
                SafetensorsWriter.Save(nan, tensors.Select(kv => kv.Key == "logits" ? new KeyValuePair<string, TorchSharp.torch.Tensor>(kv.Key, bad) : kv), null);
            }
            var nanRun = CliRunner.Run("verify", "--model", Tiny, "--reference", nan);
            Assert.Equal(2, nanRun.ExitCode);
            Assert.Contains("\"logits\" holds NaN", nanRun.Stderr);
            Assert.Contains("reference file is at fault", nanRun.Stderr);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    private string SmallDataset(int scenes = 8)
    {
        string data = Path.Combine(tmp, "data");
        SyntheticDataset.Generate(data, new SynthOptions(scenes, 3, Size: 48, Style: SynthStyle.Medical), null);
        return data;
    }

    [Fact]
    public void EvalOutReplacesWhatAnEarlierEvalWroteAndRefusesOtherFolders()
    {
        string data = SmallDataset();
        string outDir = Path.Combine(tmp, "eval");
        var first = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--out", outDir, "--save-masks", "--overlays", "1");
        Assert.True(first.ExitCode == 0, first.Stdout + first.Stderr);
        string stale = Path.Combine(outDir, "masks", "stale.png"), staleOverlay = Path.Combine(outDir, "overlays", "old.png");
        File.WriteAllText(stale, "x");
        File.WriteAllText(staleOverlay, "x");
        string mine = Path.Combine(outDir, "notes.txt");
        File.WriteAllText(mine, "the user's own file");

        var second = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--out", outDir);
        Assert.True(second.ExitCode == 0, second.Stdout + second.Stderr);
        Assert.Contains("replacing an earlier evaluation's masks/, overlays/, per_image.csv, summary.json", second.Stderr);
        Assert.False(Directory.Exists(Path.Combine(outDir, "masks")));
        Assert.False(File.Exists(staleOverlay));
        Assert.True(File.Exists(Path.Combine(outDir, "summary.json")));
        Assert.Equal("the user's own file", File.ReadAllText(mine));

        // Not an eval's folder: a dataset has masks/ and anns/; a folder with masks/ and no report is refused too.
        var dataset = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--out", data, "--save-masks");
        Assert.Equal(2, dataset.ExitCode);
        Assert.Contains("looks like a dataset", dataset.Stderr);
        Assert.True(Directory.GetFiles(Path.Combine(data, "masks")).Length > 0);
        string other = Path.Combine(tmp, "other");
        Directory.CreateDirectory(Path.Combine(other, "masks"));
        var refused = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--out", other);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("vlsm eval did not write them", refused.Stderr);
        Assert.True(Directory.Exists(Path.Combine(other, "masks")));
    }

    [Fact]
    public void EvalOnErrorSkipLeavesOutAnUnreadableRecordAndCountsIt()
    {
        string data = SmallDataset(scenes: 30);
        var test = Vlsm.Data.MedvlsmDataset.Open(data).RequiredRecords("test");
        Assert.True(test.Select(r => r.ImagePath).Distinct().Count() > 1, "the test split needs records of several images");
        File.WriteAllBytes(test[0].ImagePath, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var failing = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1");
        Assert.Equal(2, failing.ExitCode);
        Assert.Contains(test[0].ImagePath, failing.Stderr);

        var skipping = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--on-error", "skip", "--json");
        Assert.True(skipping.ExitCode == 0, skipping.Stderr);
        int broken = test.Count(r => r.ImagePath == test[0].ImagePath); // one record per object of the image
        Assert.Equal(test.Count - broken, System.Text.Json.Nodes.JsonNode.Parse(skipping.Stdout)!["n"]!.GetValue<int>());
        Assert.Contains($"skipped {broken} unusable record(s) (--on-error skip)", skipping.Stderr);
        Assert.Contains(Path.GetFileName(test[0].ImagePath), skipping.Stderr);
    }

    [Fact]
    public void EvalOutThatCannotBeWrittenFailsBeforeEvaluatingWithoutNamingTempFiles()
    {
        string data = SmallDataset();
        const string unwritable = "/proc/vlsm-eval-out"; // not writable, even by root
        var r = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--out", unwritable);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--out {unwritable} cannot be written", r.Stderr);
        Assert.DoesNotContain(".vlsm-write-check", r.Stderr);
        Assert.DoesNotContain(".tmp", r.Stderr);
        Assert.DoesNotContain("evaluating", r.Stdout + r.Stderr);
    }
}
