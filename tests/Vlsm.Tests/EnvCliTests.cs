using System.Text.Json.Nodes;

namespace Vlsm.Tests;

/// <summary><c>vlsm env</c> and the convolution path's reporting, run as a user runs them.</summary>
public sealed class EnvCliTests
{
    private static string CrisTiny => Path.Combine(Fixtures.Parity, "cris-tiny");

    [Fact]
    public void EnvJsonHasWhatABugReportNeeds()
    {
        var r = CliRunner.Run("env", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.StartsWith(".NET 10", json["dotnet"]!.GetValue<string>());
        Assert.Matches(@"^\d+\.\d+", json["libtorch"]!.GetValue<string>());
        Assert.Matches("^[0-9a-f]{40}$", json["commit"]!.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(json["cpu"]!["model"]!.GetValue<string>()));
        Assert.NotNull(json["cpu"]!["instruction_sets"]!.AsArray());
        Assert.True(json["torch_threads"]!.GetValue<int>() >= 1);
        Assert.True(json["gemm_gflops_fp32"]!.GetValue<double>() > 0);
        Assert.True(json["gemm_gflops_bf16"]!.GetValue<double>() > 0);
        Assert.Equal(json["gemm_gflops_bf16"]!.GetValue<double>() < 0.25 * json["gemm_gflops_fp32"]!.GetValue<double>(), json["bf16_slow"]!.GetValue<bool>());
        // The path follows the probe's verdict.
        var probe = json["convolution_probe"]!;
        bool right = probe["direct_is_correct"]!.GetValue<bool>();
        Assert.Equal(right ? "direct" : "padded", json["convolution_path"]!.GetValue<string>());
        Assert.True(probe["milliseconds"]!.GetValue<double>() > 0);
        if (!right) Assert.False(string.IsNullOrEmpty(probe["failing_case"]!.GetValue<string>()));
    }

    [Fact]
    public void EnvTableNamesTheConvolutionPath()
    {
        var r = CliRunner.Run("env");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("convolution", r.Stdout);
        Assert.Contains("instruction sets", r.Stdout);
        Assert.Matches("direct|padded", r.Stdout);
        // bf16's row calls it slow where libtorch's bf16 products run on its reference kernel (AVX2-only CPUs:
        // about 1/50 of fp32's rate, far below the quarter that counts as slow) and nowhere else.
        string bf16Row = r.Stdout.Split('\n').Single(line => line.StartsWith("| bf16 |", StringComparison.Ordinal));
        Assert.Equal(Vlsm.Platform.Bf16Speed.IsSlow, bf16Row.Contains("| slow, ", StringComparison.Ordinal));
    }

    [Fact]
    public void VerboseSaysWhichConvolutionPathIsInUse()
    {
        var args = new[] { "verify", "--model", CrisTiny, "--reference", Path.Combine(CrisTiny, "reference.safetensors") };
        var quiet = CliRunner.Run(args);
        Assert.True(quiet.ExitCode == 0, quiet.Stderr);
        Assert.DoesNotContain("convolution path", quiet.Stderr);
        var verbose = CliRunner.Run([.. args, "--verbose"]);
        Assert.True(verbose.ExitCode == 0, verbose.Stderr);
        Assert.Matches("convolution path: (direct|padded) \\(probe: ", verbose.Stderr);
    }

    [Fact]
    public void AForcedPathIsReportedAsForced()
    {
        var r = CliRunner.RunWith(Environment.CurrentDirectory, new Dictionary<string, string> { ["VLSM_CONVOLUTION"] = "padded" }, "env", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("padded", json["convolution_path"]!.GetValue<string>());
        Assert.Contains("forced by VLSM_CONVOLUTION", json["convolution_detail"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(null, "PASSIVE")]    // unset: vlsm makes libtorch's OpenMP threads sleep while they wait
    [InlineData("ACTIVE", "ACTIVE")] // the user's choice is kept
    public void OpenMpThreadsSleepWhileWaitingUnlessTheUserChose(string? given, string expected)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        // This test process set the variable for itself when it loaded vlsm: the child must decide on its own.
        psi.Environment.Remove("OMP_WAIT_POLICY");
        psi.Environment.Remove("GOMP_SPINCOUNT");
        if (given is not null) psi.Environment["OMP_WAIT_POLICY"] = given;
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "vlsm.dll"), "env", "--json" }) psi.ArgumentList.Add(a);
        var r = CliRunner.RunProcess(psi, TimeSpan.FromMinutes(2), "vlsm env --json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(expected, JsonNode.Parse(r.Stdout)!["environment"]!["OMP_WAIT_POLICY"]!.GetValue<string>());
    }

    [Fact]
    public void AnUnknownForcedPathIsRefusedByName()
    {
        var r = CliRunner.RunWith(Environment.CurrentDirectory, new Dictionary<string, string> { ["VLSM_CONVOLUTION"] = "fastest" }, "env");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("VLSM_CONVOLUTION=fastest", r.Stderr);
        Assert.Contains("direct, padded or auto", r.Stderr);
    }
}
