using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Platform;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>MKL's Intel-path float32 kernels on AMD CPUs (<see cref="MklFloatKernels"/>): when they apply, how they are found, that they are right.</summary>
public sealed class MklFloatKernelsTests
{
    private static readonly HashSet<string> Avx512 = ["avx512f", "avx512dq", "avx512bw", "avx512vl", "avx2", "fma"];
    private static readonly HashSet<string> Avx2 = ["avx", "avx2", "fma", "f16c"];

    private static bool ThisCpuQualifies => MklFloatKernels.NotApplicable(MklFloatKernels.CpuFlags()) is null;

    /// <summary>The start of <see cref="MklFloatKernels.Setting"/> on this CPU: the Intel path's width, or MKL's own choice.</summary>
    internal static string ExpectedSettingStart =>
        ThisCpuQualifies ? $"{MklFloatKernels.IntelPathWidth(MklFloatKernels.CpuFlags().Flags)} on this AMD CPU (MKL's Intel code path" : "MKL's own choice (";

    [Fact]
    public void AppliesToAmdCpusWithAvx2AndFmaAndNamesTheWidth()
    {
        Assert.Null(MklFloatKernels.NotApplicable(("AuthenticAMD", Avx512)));
        Assert.Null(MklFloatKernels.NotApplicable(("AuthenticAMD", Avx2)));
        Assert.Equal("AVX-512", MklFloatKernels.IntelPathWidth(Avx512));
        Assert.Equal("AVX2", MklFloatKernels.IntelPathWidth(Avx2));
        Assert.Equal("AVX2", MklFloatKernels.IntelPathWidth(Avx512.Where(f => f != "avx512dq").ToHashSet()));
        Assert.Contains("without fma", MklFloatKernels.NotApplicable(("AuthenticAMD", new HashSet<string> { "avx", "avx2" }))!);
        Assert.Contains("without avx2, fma", MklFloatKernels.NotApplicable(("AuthenticAMD", new HashSet<string> { "sse4_2", "avx" }))!);
        Assert.Contains("GenuineIntel", MklFloatKernels.NotApplicable(("GenuineIntel", Avx512))!);
        Assert.Contains("unknown", MklFloatKernels.NotApplicable((null, Avx512))!);
    }

    [Fact]
    public void FindsLibTorchsLinkageEntriesAtOneLoadBias()
    {
        torch.get_num_threads(); // libtorch loaded
        string path = MklFloatKernels.LibTorchPath()!;
        nint handle = NativeLibrary.Load(path);
        var biases = new List<long>();
        foreach (var symbol in new[] { "mkl_serv_intel_cpu_true", "mkl_serv_cpu_detect" })
        {
            var (slot, value) = MklFloatKernels.FindJumpSlot(path, symbol) ?? throw new Xunit.Sdk.XunitException($"no entry for {symbol}");
            Assert.True(slot > value, $"{symbol}: the table entry ({slot:x}) lies after the code ({value:x}) in the file's address space");
            biases.Add(NativeLibrary.GetExport(handle, symbol) - (nint)value);
        }
        Assert.Equal(biases[0], biases[1]);
        Assert.Equal(0, biases[0] % 4096);
        Assert.Null(MklFloatKernels.FindJumpSlot(path, "no_such_function_anywhere"));
    }

    [Fact]
    public void ANonElfFileIsRefused()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "not a shared object");
            Assert.Throws<InvalidDataException>(() => MklFloatKernels.FindJumpSlot(file, "mkl_serv_intel_cpu_true"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void ThisProcessRunsTheIntelPathWhereItApplies()
    {
        // The test assembly loads vlsm before libtorch (TestProcessSetup), as the CLI does.
        Assert.Equal(ThisCpuQualifies, MklFloatKernels.IntelPathOnAmd);
        Assert.StartsWith(ExpectedSettingStart, MklFloatKernels.Setting);
    }

    [Theory]
    [InlineData(1940, 768, 512)]
    [InlineData(1940, 512, 768)]
    [InlineData(485, 64, 2048)]
    [InlineData(97, 33, 17)]
    [InlineData(3, 1, 5)]
    public void Float32ProductsAgreeWithFloat64(int rows, int inputs, int outputs)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)(rows * 31 + inputs));
        var x = randn([rows, inputs], generator: generator);
        var w = randn([outputs, inputs], generator: generator).div_(Math.Sqrt(inputs));
        var b = randn([outputs], generator: generator);
        var upstream = randn([rows, outputs], generator: generator);
        var x32 = x.clone().requires_grad_();
        var w32 = w.clone().requires_grad_();
        nn.functional.linear(x32, w32, b).backward([upstream]);
        var y32 = nn.functional.linear(x, w, b);
        var x64 = x.to(float64).requires_grad_();
        var w64 = w.to(float64).requires_grad_();
        var y64 = nn.functional.linear(x64, w64, b.to(float64));
        y64.backward([upstream.to(float64)]);
        // float32 rounding over sums of up to 1940 terms: a few units in the 7th digit of the largest value.
        Assert.True(Relative(y32, y64) < 1e-5, $"output {Relative(y32, y64):e2}");
        Assert.True(Relative(x32.grad!, x64.grad!) < 1e-5, $"input gradient {Relative(x32.grad!, x64.grad!):e2}");
        Assert.True(Relative(w32.grad!, w64.grad!) < 1e-5, $"weight gradient {Relative(w32.grad!, w64.grad!):e2}");
    }

    private static double Relative(Tensor actual, Tensor expected) =>
        actual.to(float64).sub(expected).abs().max().item<double>() / expected.abs().max().item<double>();

    [Fact]
    public void EnvReportsTheChoiceAndTheVariableKeepsMkls()
    {
        var chosen = CliRunner.Run("env", "--json");
        Assert.True(chosen.ExitCode == 0, chosen.Stderr);
        var json = JsonNode.Parse(chosen.Stdout)!;
        string setting = json["mkl_float32_kernels"]!.GetValue<string>();
        Assert.StartsWith(ExpectedSettingStart, setting);
        Assert.Equal(ThisCpuQualifies, json["mkl_cpu_code"] is not null);

        var kept = CliRunner.RunWith(Environment.CurrentDirectory, new Dictionary<string, string> { [MklFloatKernels.Variable] = "default" }, "env", "--json");
        Assert.True(kept.ExitCode == 0, kept.Stderr);
        var keptJson = JsonNode.Parse(kept.Stdout)!;
        Assert.Equal($"MKL's own choice ({MklFloatKernels.Variable}=default)", keptJson["mkl_float32_kernels"]!.GetValue<string>());
        Assert.Null(keptJson["mkl_cpu_code"]);
        Assert.Equal("default", keptJson["environment"]![MklFloatKernels.Variable]!.GetValue<string>());
    }
}
