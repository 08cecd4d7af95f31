using System.Text.Json.Nodes;
using Vlsm.Imaging;
using Vlsm.Models;

namespace Vlsm.Tests;

public sealed class CliAdapterTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-cli-adapters-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Base => Path.Combine(Fixtures.Parity, "clipseg-adapter-base");

    [Theory]
    [InlineData("shallow-vlc")]
    [InlineData("dense-vlc")]
    public void VerifyWithAdapterPasses(string name)
    {
        string dir = Path.Combine(Base, "adapters");
        var r = CliRunner.Run("verify", "--model", Base, "--adapter", Path.Combine(dir, name + ".adapter.safetensors"),
            "--reference", Path.Combine(dir, name + ".reference.safetensors"), "--json");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.True(JsonNode.Parse(r.Stdout)!["passed"]!.GetValue<bool>());
    }

    [Fact]
    public void VerifyWithoutTheAdapterFailsOnAdapterReference()
    {
        string dir = Path.Combine(Base, "adapters");
        var r = CliRunner.Run("verify", "--model", Base, "--reference", Path.Combine(dir, "dense-vlc.reference.safetensors"), "--json");
        Assert.Equal(1, r.ExitCode);
        Assert.False(JsonNode.Parse(r.Stdout)!["passed"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("shallow", "vlc", 4_201_984)]
    [InlineData("dense", "vl", 2_974_464)]
    [InlineData("decoder", null, 1_127_009)]
    public void InfoReportsTrainableParameters(string mode, string? parts, long expected)
    {
        var args = new List<string> { "info", "--arch", "clipseg-rd64-refined", "--json", "--mode", mode };
        if (parts is not null) args.AddRange(new[] { "--parts", parts });
        var r = CliRunner.Run(args.ToArray());
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(expected, JsonNode.Parse(r.Stdout)!["trainable_parameters"]!.GetValue<long>());
    }

    [Theory]
    [InlineData("dense", "--adapter-dim", "2000000000", "adapter_dim (--adapter-dim) must be between 1 and 4096, got 2000000000.")]
    [InlineData("shallow", "--cond-adapter-dim", "2000000000", "cond_adapter_dim (--cond-adapter-dim) must be between 1 and 4096, got 2000000000.")]
    [InlineData("dense", "--adapter-dim", "0", "adapter_dim (--adapter-dim) must be between 1 and 4096, got 0.")]
    public void InfoRefusesAdapterDimsOutOfRangeBeforeBuildingTheModel(string mode, string flag, string value, string says)
    {
        var r = CliRunner.Run("info", "--arch", "clipseg-rd64-refined", "--mode", mode, flag, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"error: {says}", r.Stderr.Trim());
    }

    [Fact]
    public void AdapterDimsUpToTheMaximumAreAccepted()
    {
        var spec = FineTuneSpec.Create(FineTuneMode.Shallow, "vlc", FineTuneSpec.MaxAdapterDim, FineTuneSpec.MaxAdapterDim);
        Assert.Equal((4096, 4096), (spec.AdapterDim, spec.CondAdapterDim));
        Assert.Throws<VlsmException>(() => FineTuneSpec.Create(FineTuneMode.Shallow, "vlc", FineTuneSpec.MaxAdapterDim + 1));
    }

    [Fact]
    public void InfoRejectsPartsForDecoderMode()
    {
        var r = CliRunner.Run("info", "--arch", "clipseg-rd64-refined", "--mode", "decoder", "--parts", "v");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("decoder", r.Stderr);
    }

    [Fact]
    public void PredictWithAdapterDiffersFromTheBaseModel()
    {
        var pixels = new byte[80 * 80 * 3];
        new Random(5).NextBytes(pixels);
        string image = Path.Combine(tmp, "x.png");
        ImageCodec.SavePng(image, new RgbImage(80, 80, pixels));
        string adapter = Path.Combine(Base, "adapters", "dense-vlc.adapter.safetensors");
        var plain = CliRunner.Run("predict", "--model", Base, "--prompt", "skin lesion", "--probs", "--out", Path.Combine(tmp, "plain"), image);
        var adapted = CliRunner.Run("predict", "--model", Base, "--adapter", adapter, "--prompt", "skin lesion", "--probs", "--out", Path.Combine(tmp, "adapted"), image);
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        Assert.True(adapted.ExitCode == 0, adapted.Stderr);
        var a = Vlsm.IO.Npy.ReadFloat32(Path.Combine(tmp, "plain", "x.probs.npy")).data;
        var b = Vlsm.IO.Npy.ReadFloat32(Path.Combine(tmp, "adapted", "x.probs.npy")).data;
        Assert.Equal(a.Length, b.Length);
        Assert.True(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) > 1e-4);
    }

    [Fact]
    public void MissingAdapterFileIsNamed()
    {
        string missing = Path.Combine(tmp, "none.safetensors");
        var r = CliRunner.Run("verify", "--model", Base, "--adapter", missing, "--reference", Path.Combine(Base, "reference.safetensors"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(missing, r.Stderr);
    }
}
