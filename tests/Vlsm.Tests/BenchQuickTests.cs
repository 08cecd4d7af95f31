using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Vlsm.Tests;

/// <summary>
/// The benchmark's --quick mode (the CI smoke test of bench/Vlsm.Bench) runs to the end and writes
/// the JSON document with every key. Timings are not asserted: they depend on the machine and its
/// load. The bf16 accuracy figures are: bf16 towers must agree with fp32 on the same input.
/// </summary>
public sealed class BenchQuickTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-bench-quick-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static readonly string[] ResultKeys =
    {
        "infer_b1_fp32_s", "infer_b8_fp32_s", "infer_b8_bf16_s",
        "train_shallow_vlc_b4_s", "train_shallow_vlc_b4_bf16_s", "train_shallow_vlc_b4_cached_s",
        "train_dense_vl_b4_s", "train_dense_vl_b4_bf16_s", "train_dense_vl_b4_peak_rss_mb", "train_dense_vl_b4_bf16_peak_rss_mb",
        "loader_images_per_s",
        "bf16_vs_fp32_logits_max_abs_diff", "bf16_vs_fp32_mask_agreement",
    };

    [Fact]
    public void QuickModeWritesEveryKeyWithAPositiveNumber()
    {
        string json = Path.Combine(tmp, "bench.json");
        var psi = new ProcessStartInfo("dotnet");
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Vlsm.Bench.dll"), "--quick", "--json", json }) psi.ArgumentList.Add(a);
        var r = CliRunner.RunProcess(psi, TimeSpan.FromMinutes(10), "the quick bench");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var root = JsonNode.Parse(File.ReadAllText(json))!;
        var machine = root["machine"]!.AsObject();
        // Where libtorch's bf16 products are slow (its reference kernel: AVX2-only CPUs) the bench leaves the bf16 figures
        // out and says why; this process decides the same way, with its own measurement.
        bool bf16Measured = !Vlsm.Platform.Bf16Speed.IsSlow;
        Assert.Equal(["threads", "gemm_gflops_fp32", "gemm_gflops_bf16", .. bf16Measured ? Array.Empty<string>() : ["bf16_not_measured"], "cpu", "libtorch", "convolution_path", "convolution_probe_first_ms", "native_allocator", "omp_wait_policy", "mkl_float32_kernels"], machine.Select(kv => kv.Key));
        // The test process sets neither VLSM_MALLOC nor glibc's variables, so the library's setting applies (and is named).
        Assert.StartsWith("freed memory kept", machine["native_allocator"]!.GetValue<string>());
        // The bench loads vlsm before its first float32 product, so MKL's Intel path is arranged wherever it applies.
        Assert.StartsWith(MklFloatKernelsTests.ExpectedSettingStart, machine["mkl_float32_kernels"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(machine["cpu"]!["model"]!.GetValue<string>()));
        Assert.Contains(machine["convolution_path"]!.GetValue<string>(), new[] { "direct", "padded" });
        Assert.True(machine["convolution_probe_first_ms"]!.GetValue<double>() > 0);
        Assert.Equal(2, machine["threads"]!.GetValue<int>());
        Assert.True(machine["gemm_gflops_fp32"]!.GetValue<double>() > 0);
        Assert.True(machine["gemm_gflops_bf16"]!.GetValue<double>() > 0);

        var results = root["results"]!.AsObject();
        Assert.Equal(ResultKeys.Order(StringComparer.Ordinal), results.Select(kv => kv.Key).Order(StringComparer.Ordinal));
        var bf16Keys = ResultKeys.Where(k => k.Contains("bf16", StringComparison.Ordinal)).ToArray();
        Assert.Equal(6, bf16Keys.Length);
        foreach (var key in ResultKeys.Except(bf16Measured ? [] : bf16Keys))
            Assert.True(results[key]!.GetValue<double>() > 0, $"{key} = {results[key]}");
        if (bf16Measured)
        {
            // Random weights, batch 8 at 352x352: bf16 towers must stay close to fp32 (measured: 0.0021, 99.998 %).
            Assert.True(results["bf16_vs_fp32_logits_max_abs_diff"]!.GetValue<double>() < 5e-2);
            Assert.InRange(results["bf16_vs_fp32_mask_agreement"]!.GetValue<double>(), 0.99, 1.0);
            // Both runs really happened, in the child processes that measure peak RSS.
            Assert.True(results["train_dense_vl_b4_bf16_peak_rss_mb"]!.GetValue<double>() > 100);
        }
        else
        {
            Assert.All(bf16Keys, key => Assert.Null(results[key]));
            Assert.StartsWith("bf16 products are slow on this CPU", machine["bf16_not_measured"]!.GetValue<string>());
        }

        // The convolution workaround's cost was measured on both paths.
        var extra = root["extra"]!.AsObject();
        foreach (var key in new[] { "convolution_probe_ms", "cris_rn50_forward_b2_direct_s", "cris_rn50_forward_b2_padded_s", "cris_rn50_forward_padded_over_direct" })
            Assert.True(extra[key]!.GetValue<double>() > 0, $"{key} = {extra[key]}");
        // The cached step's time is broken into its parts (#21: where the cached step's time goes).
        var parts = extra["train_shallow_vlc_b4_cached_parts_s"]!.AsObject();
        Assert.Equal(["forward", "loss", "backward", "clip", "optimizer", "release"], parts.Select(kv => kv.Key));
        // Freeing the step's tensors takes well under a millisecond: rounded to 0.1 ms it may show as 0.
        Assert.All(parts, kv => Assert.True(kv.Key == "release" ? kv.Value!.GetValue<double>() >= 0 : kv.Value!.GetValue<double>() > 0, kv.Key));
        // The sweep runner's cost per cell was measured (a difference of two timings: its sign is noise-prone).
        Assert.Equal(8, extra["sweep_cells"]!.GetValue<int>());
        Assert.True(extra["sweep_runner_s"]!.GetValue<double>() > 0 && extra["sweep_direct_s"]!.GetValue<double>() > 0);
        // vlsm serve under load: every request answered 200 (no 4xx, no 5xx), and the soak ran to its end.
        Assert.True(extra["serve_responses_200"]!.GetValue<long>() > 0);
        foreach (var key in new[] { "serve_responses_other_2xx", "serve_responses_4xx", "serve_responses_5xx", "serve_responses_other" })
            Assert.True(extra[key]!.GetValue<long>() == 0, $"{key} = {extra[key]}");
        Assert.Equal(50, extra["serve_soak_requests"]!.GetValue<int>());
    }
}
