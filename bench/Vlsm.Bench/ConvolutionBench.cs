using System.Text.Json.Nodes;
using Vlsm.Models.Cris;
using Vlsm.Platform;
using Vlsm.Tensors;
using static TorchSharp.torch;

namespace Vlsm.Bench;

/// <summary>
/// What the convolution workaround costs: the start-up probe, and a CRIS RN50 forward pass at 416
/// px through the direct and the channel-padded path, measured back to back in one process (on a
/// CPU with the oneDNN bug the direct path's numbers are wrong, but its time is still the baseline).
/// </summary>
internal static class ConvolutionBench
{
    /// <summary>The machine description every bench document carries, so figures are never compared blind.</summary>
    public static void DescribeMachine(JsonObject machine, double firstProbeMs)
    {
        var cpu = CpuDescription.Read();
        machine["cpu"] = cpu.ToJson();
        machine["libtorch"] = TorchSharp.torch.__version__;
        machine["convolution_path"] = SafeConvolution.Name(SafeConvolution.Path);
        machine["convolution_probe_first_ms"] = Math.Round(firstProbeMs, 2);
        // Both change every figure by tens of percent on this project's virtual machines, so they are recorded with them.
        machine["native_allocator"] = NativeHeap.Setting;
        machine["omp_wait_policy"] = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "libgomp default";
        // MKL's AVX2 or AVX-512 float32 kernels: about 2x on every float32 figure of an AMD CPU with AVX-512.
        machine["mkl_float32_kernels"] = Vlsm.Platform.MklFloatKernels.Setting;
    }

    public static void Measure(JsonObject extra, int repeats, bool warmUp)
    {
        double probeMs = Bench.Median(Math.Max(repeats, 3), () => ConvolutionProbe.Run(ConvolutionProbe.LibTorch).Milliseconds / 1000.0, warmUp) * 1000;
        extra["convolution_probe_ms"] = Math.Round(probeMs, 2);
        Console.WriteLine($"convolution probe: {probeMs:0.0} ms (warm); path {SafeConvolution.Describe()}");

        using var scope = NewDisposeScope();
        using var model = new CrisModel(CrisConfig.Rn50);
        model.eval();
        foreach (var parameter in model.parameters()) parameter.requires_grad = false;
        const int batch = 2;
        long size = model.Config.ImgSize;
        var pixels = randn(batch, 3, size, size);
        var ids = zeros([batch, model.Config.WordLen], dtype: ScalarType.Int64);
        ids[TensorIndex.Colon, 0] = tensor(49406L);
        ids[TensorIndex.Colon, 1] = tensor(320L);
        ids[TensorIndex.Colon, 2] = tensor(49407L);

        double Forward(ConvolutionPath path)
        {
            using var forced = SafeConvolution.Force(path);
            return Bench.Time(() =>
            {
                using var _ = inference_mode();
                using var logits = model.Forward(pixels, ids);
                logits.sum().item<float>();
            });
        }

        // Alternate the two paths so drift in the machine's speed falls on both alike.
        if (warmUp)
        {
            Forward(ConvolutionPath.Direct);
            Forward(ConvolutionPath.ChannelPadded);
        }
        var direct = new List<double>();
        var padded = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            direct.Add(Forward(ConvolutionPath.Direct));
            padded.Add(Forward(ConvolutionPath.ChannelPadded));
        }
        double d = direct.Order().ElementAt(repeats / 2), p = padded.Order().ElementAt(repeats / 2);
        extra["cris_rn50_forward_b2_direct_s"] = Math.Round(d, 4);
        extra["cris_rn50_forward_b2_padded_s"] = Math.Round(p, 4);
        extra["cris_rn50_forward_padded_over_direct"] = Math.Round(p / d, 3);
        Console.WriteLine($"CRIS RN50 forward, batch {batch}, {size}x{size}: direct {d:0.000} s, channel-padded {p:0.000} s ({p / d:0.000}x)");
    }
}
