using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Tensors;
using static TorchSharp.torch;

namespace Vlsm.Platform;

/// <summary>
/// What a bug report needs to know about this machine and build, in the manner of PyTorch's
/// <c>collect_env</c> and nnU-Net's system information: versions, the CPU and its instruction
/// sets, threads, the convolution probe's finding, and whether bfloat16 matrix products are fast.
/// </summary>
public sealed record PlatformReport(
    string VlsmVersion,
    string? Commit,
    string DotNet,
    string TorchSharp,
    string LibTorch,
    string Os,
    CpuDescription Cpu,
    int LogicalProcessors,
    int TorchThreads,
    ConvolutionPath ConvolutionPath,
    string ConvolutionDetail,
    ConvolutionProbeResult? Probe,
    double GemmFp32Gflops,
    double GemmBf16Gflops,
    IReadOnlyDictionary<string, string> EnvironmentVariables)
{
    /// <summary>Variables that change how vlsm or libtorch computes.</summary>
    public static readonly string[] Variables = ["VLSM_CONVOLUTION", "VLSM_MALLOC", "VLSM_MKL", "VLSM_BF16_ATTENTION", "VLSM_CACHE", "VLSM_PARITY_DIR", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"];

    /// <summary>bf16 counts as fast when its matrix products run at least 1.5 times fp32's rate.</summary>
    public bool Bf16IsFast => GemmBf16Gflops >= 1.5 * GemmFp32Gflops;

    /// <summary>bf16 is slow as <see cref="Bf16Speed"/> counts it (libtorch's reference kernel: AVX2-only CPUs).</summary>
    public bool Bf16IsSlow => Bf16Speed.IsSlowAt(GemmBf16Gflops, GemmFp32Gflops);

    /// <summary>Collects the report; takes about a second (the probe and two small GEMM measurements).</summary>
    public static PlatformReport Collect()
    {
        var assembly = typeof(PlatformReport).Assembly;
        string informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? assembly.GetName().Version?.ToString() ?? "unknown";
        int plus = informational.IndexOf('+');
        string version = plus < 0 ? informational : informational[..plus];
        string? commit = plus < 0 ? null : informational[(plus + 1)..];
        var probe = SafeConvolution.Override is null ? SafeConvolution.Probe : null;
        var variables = Variables
            .Select(v => (v, Environment.GetEnvironmentVariable(v)))
            .Where(p => !string.IsNullOrEmpty(p.Item2))
            .ToDictionary(p => p.v, p => p.Item2!);
        return new PlatformReport(
            version,
            commit,
            RuntimeInformation.FrameworkDescription,
            typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown",
            torch.__version__,
            RuntimeInformation.OSDescription,
            CpuDescription.Read(),
            Environment.ProcessorCount,
            torch.get_num_threads(),
            SafeConvolution.Path,
            SafeConvolution.Describe(),
            probe,
            MatrixProductRate.Gflops(ScalarType.Float32, 512, runs: 5),
            MatrixProductRate.Gflops(ScalarType.BFloat16, 512, runs: 5),
            variables);
    }

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["vlsm_version"] = VlsmVersion,
            ["commit"] = Commit,
            ["dotnet"] = DotNet,
            ["torchsharp"] = TorchSharp,
            ["libtorch"] = LibTorch,
            ["os"] = Os,
            ["cpu"] = Cpu.ToJson(),
            ["logical_processors"] = LogicalProcessors,
            ["torch_threads"] = TorchThreads,
            ["convolution_path"] = SafeConvolution.Name(ConvolutionPath),
            ["convolution_detail"] = ConvolutionDetail,
            ["gemm_gflops_fp32"] = Math.Round(GemmFp32Gflops, 1),
            ["gemm_gflops_bf16"] = Math.Round(GemmBf16Gflops, 1),
            ["bf16_fast"] = Bf16IsFast,
            ["bf16_slow"] = Bf16IsSlow,
            ["native_allocator"] = Vlsm.Tensors.NativeHeap.Setting,
            ["mkl_float32_kernels"] = MklFloatKernels.Setting,
            ["mkl_cpu_code"] = MklFloatKernels.MklCpuCode,
            ["environment"] = new JsonObject(EnvironmentVariables.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        };
        if (Probe is { } p)
        {
            o["convolution_probe"] = new JsonObject
            {
                ["direct_is_correct"] = p.DirectIsCorrect,
                ["max_relative_error"] = double.IsNaN(p.MaxRelativeError) ? null : p.MaxRelativeError,
                ["failing_case"] = p.FailingCase,
                ["milliseconds"] = Math.Round(p.Milliseconds, 2),
            };
        }
        return o;
    }
}

/// <summary>The CPU as Linux describes it in /proc/cpuinfo (model name, family, model), and the instruction sets vlsm cares about.</summary>
public sealed record CpuDescription(string Model, string? Vendor, int? Family, int? ModelNumber, IReadOnlyList<string> InstructionSets)
{
    /// <summary>Flags worth reporting: vector width (and the AVX-512 subsets MKL's AVX-512 kernels need), bf16/fp16/int8 dot products, matrix tiles.</summary>
    public static readonly string[] InterestingFlags =
        ["avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16"];

    public static CpuDescription Read()
    {
        const string path = "/proc/cpuinfo";
        if (File.Exists(path))
        {
            try
            {
                return Parse(File.ReadLines(path));
            }
            catch (IOException)
            {
                // fall through to what .NET knows
            }
        }
        return new CpuDescription(RuntimeInformation.ProcessArchitecture.ToString(), null, null, null, FromIntrinsics());
    }

    /// <summary>Reads the first processor's block of /proc/cpuinfo lines.</summary>
    public static CpuDescription Parse(IEnumerable<string> lines)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            if (line.Length == 0 && fields.Count > 0) break;
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            fields.TryAdd(key, value);
        }
        var flags = fields.TryGetValue("flags", out var f) ? f.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal) : [];
        return new CpuDescription(
            fields.GetValueOrDefault("model name") ?? RuntimeInformation.ProcessArchitecture.ToString(),
            fields.GetValueOrDefault("vendor_id"),
            int.TryParse(fields.GetValueOrDefault("cpu family"), out var family) ? family : null,
            int.TryParse(fields.GetValueOrDefault("model"), out var model) ? model : null,
            InterestingFlags.Where(flags.Contains).ToList());
    }

    public JsonObject ToJson() => new()
    {
        ["model"] = Model,
        ["vendor"] = Vendor,
        ["family"] = Family,
        ["model_number"] = ModelNumber,
        ["instruction_sets"] = new JsonArray(InstructionSets.Select(s => (JsonNode)s).ToArray()),
    };

    private static List<string> FromIntrinsics()
    {
        var sets = new List<string>();
        if (System.Runtime.Intrinsics.X86.Avx.IsSupported) sets.Add("avx");
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported) sets.Add("avx2");
        if (System.Runtime.Intrinsics.X86.Fma.IsSupported) sets.Add("fma");
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) sets.Add("avx512f");
        if (System.Runtime.Intrinsics.X86.Avx512BW.IsSupported) sets.Add("avx512bw");
        return sets;
    }
}
