using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Models.ClipSeg;
using Vlsm.Imaging;
using Vlsm.Inference;

namespace Vlsm.Tests;

/// <summary><c>vlsm eval</c> and <c>vlsm predict</c> with <c>--precision</c>, run as a user runs them.</summary>
public sealed class PrecisionCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-precision-cli-").FullName;
    private readonly DataTestSet set = new("kvasir");

    public void Dispose()
    {
        set.Dispose();
        Directory.Delete(tmp, recursive: true);
    }

    /// <summary>bf16 on a CPU where libtorch's bf16 products are slow (AVX2-only, such as AMD Zen 3: about 1/50 of fp32's rate) is
    /// run, with a note that says how slow and what to use instead; fp32 runs and CPUs with fast bf16 get no note.</summary>
    private static void AssertSlowBf16NoteIffSlow(CliResult fp32, CliResult bf16)
    {
        const string note = "note: bf16 is slow on this CPU";
        Assert.DoesNotContain(note, fp32.Stderr);
        Assert.Equal(Vlsm.Platform.Bf16Speed.IsSlow, bf16.Stderr.Contains(note, StringComparison.Ordinal));
        if (Vlsm.Platform.Bf16Speed.IsSlow) Assert.Contains("Use --precision fp32", bf16.Stderr);
    }

    private static (int Equal, int Total) Agreement(byte[] a, byte[] b) => (a.Zip(b).Count(p => p.First == p.Second), a.Length);

    [Fact]
    public void EvalInBf16SavesTheBf16PredictorsMasksAndScoresLikeFp32()
    {
        EvalTestData.WriteSplit(set, "test", 4);
        string fp32Out = Path.Combine(tmp, "fp32"), bf16Out = Path.Combine(tmp, "bf16");
        var fp32Run = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--out", fp32Out, "--save-masks");
        Assert.True(fp32Run.ExitCode == 0, fp32Run.Stdout + fp32Run.Stderr);
        var bf16Run = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--out", bf16Out, "--save-masks", "--precision", "bf16");
        Assert.True(bf16Run.ExitCode == 0, bf16Run.Stdout + bf16Run.Stderr);
        AssertSlowBf16NoteIffSlow(fp32Run, bf16Run);

        // The saved masks are the bf16 predictor's (one batch of 4, as eval runs it) and agree with fp32's on at least 99 % of pixels.
        var bf16 = ClipSegPredictor.FromFolder(EvalTestData.Tiny, towerDtype: torch.ScalarType.BFloat16);
        var images = Enumerable.Range(0, 4).Select(i => ImageCodec.DecodeRgb(set.ImagePath($"img{i}.png"))).ToList();
        var predicted = bf16.Predict(images, images.Select(_ => "polyp").ToList());
        int equal = 0, total = 0;
        for (int i = 0; i < 4; i++)
        {
            var savedBf16 = ImageCodec.DecodeGray(Path.Combine(bf16Out, "masks", $"img{i}.png")).Pixels;
            Assert.Equal(predicted[i].MaskAt(EvalTestData.Width, EvalTestData.Height, 0.5f).Pixels, savedBf16);
            var (e, t) = Agreement(savedBf16, ImageCodec.DecodeGray(Path.Combine(fp32Out, "masks", $"img{i}.png")).Pixels);
            equal += e;
            total += t;
        }
        Assert.True(equal >= 0.99 * total, $"bf16 and fp32 masks agree on {equal} of {total} pixels");

        double Dice(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!["dice"]!["mean"]!.GetValue<double>();
        Assert.Equal(Dice(fp32Out), Dice(bf16Out), 0.02);
    }

    [Fact]
    public void PredictInBf16WritesMasksThatAgreeWithFp32()
    {
        var images = Path.Combine(tmp, "images");
        Directory.CreateDirectory(images);
        EvalTestData.WriteSplit(set, "test", 2);
        foreach (var name in new[] { "img0.png", "img1.png" }) File.Copy(set.ImagePath(name), Path.Combine(images, name));
        string fp32Out = Path.Combine(tmp, "fp32"), bf16Out = Path.Combine(tmp, "bf16");
        var a = CliRunner.Run("predict", "--model", EvalTestData.Tiny, "--prompt", "polyp", "--out", fp32Out, images);
        Assert.True(a.ExitCode == 0, a.Stdout + a.Stderr);
        var b = CliRunner.Run("predict", "--model", EvalTestData.Tiny, "--prompt", "polyp", "--out", bf16Out, "--precision", "bf16", images);
        Assert.True(b.ExitCode == 0, b.Stdout + b.Stderr);
        AssertSlowBf16NoteIffSlow(a, b);
        int equal = 0, total = 0;
        foreach (var name in new[] { "img0", "img1" })
        {
            var (e, t) = Agreement(ImageCodec.DecodeGray(Path.Combine(fp32Out, name + ".mask.png")).Pixels, ImageCodec.DecodeGray(Path.Combine(bf16Out, name + ".mask.png")).Pixels);
            equal += e;
            total += t;
        }
        Assert.True(equal >= 0.99 * total, $"bf16 and fp32 masks agree on {equal} of {total} pixels");
    }

    [Theory]
    [InlineData("eval")]
    [InlineData("predict")]
    public void AnUnknownPrecisionIsAOneLineError(string command)
    {
        EvalTestData.WriteSplit(set, "test", 1);
        var r = command == "eval"
            ? CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--precision", "fp16")
            : CliRunner.Run("predict", "--model", EvalTestData.Tiny, "--prompt", "polyp", "--out", Path.Combine(tmp, "out"), "--precision", "fp16", set.ImagePath("img0.png"));
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("error: --precision must be fp32 or bf16, got \"fp16\".", r.Stderr.Trim());
    }
}
