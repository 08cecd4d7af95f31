using Vlsm.Apps.Demo;
using Vlsm.IO;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Models.ClipSeg;
using Vlsm.Models.Cris;
using Vlsm.Models.San;
using Vlsm.Models.Smp;
using Vlsm.Tensors;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// Every convolution every model computes, for the parity fixtures and the real architectures at
/// their real input sizes: each shape a forward pass of batch 2 uses is recorded, then repeated on
/// random data through the convolution path, forward and backward (input, weight and bias
/// gradients), against float64. On a CPU with libtorch's oneDNN bug this fails for CRIS's
/// CoordConv (66 or 514 input channels) unless the channel-padded path is in use.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class ModelConvolutionTests
{
    private readonly ITestOutputHelper output;

    public ModelConvolutionTests(ITestOutputHelper output) => this.output = output;

    public static IEnumerable<object[]> Models() =>
        new[]
        {
            "clipseg-tiny", "clipseg-geometry", "clipseg-adapter-base", "demo", "clipseg-rd64-refined", "cris-tiny", "cris-rn50",
            "san-tiny", "san-vit-b16", "biomedclipseg-tiny", "biomedclipseg",
            "smp-unet-tiny", "smp-unet-tiny-basic", "smp-unetplusplus-tiny", "smp-unetplusplus-tiny-basic", "smp-deeplabv3plus-tiny", "smp-deeplabv3plus-tiny-basic",
            "unet-resnet50", "unetplusplus-resnet50", "deeplabv3plus-resnet50",
        }.Select(m => new object[] { m });

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryConvolutionShapeMatchesFloat64(string model)
    {
        var calls = RecordConvolutions(model);
        Assert.NotEmpty(calls);
        var failures = new List<string>();
        ulong seed = 0;
        foreach (var call in calls)
        {
            foreach (var path in ConvolutionPathTests.Paths())
            {
                var errors = ConvolutionCheck.Run(call, path, ++seed);
                output.WriteLine($"{SafeConvolution.Name(path)} {call.Key}: {errors}");
                if (!(errors.Max <= ConvolutionPathTests.Tolerance)) failures.Add($"{SafeConvolution.Name(path)}: {call.Key}: {errors}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {calls.Count} shapes off: {string.Join("; ", failures)}");
    }

    /// <summary>The distinct convolutions of one batch-2 forward pass of <paramref name="model"/>, in float32.</summary>
    internal static List<ConvolutionCall> RecordConvolutions(string model)
    {
        var seen = new Dictionary<string, ConvolutionCall>();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(1);
        SafeConvolution.Observer = call => seen.TryAdd(call.Key, call);
        try
        {
            switch (model)
            {
                case "cris-tiny":
                    RunCris(new CrisModel(CrisLoader.ReadConfig(Path.Combine(Fixtures.Parity, model))));
                    break;
                case "cris-rn50":
                    RunCris(new CrisModel(CrisConfig.Rn50));
                    break;
                case "san-tiny":
                    RunSan(new SanModel(SanLoader.ReadConfig(Path.Combine(Fixtures.Parity, model))));
                    break;
                case "san-vit-b16":
                    RunSan(new SanModel(SanConfig.VitB16));
                    break;
                case "biomedclipseg-tiny":
                    RunBiomedClipSeg(new BiomedClipSegModel(BiomedClipSegLoader.ReadConfig(Path.Combine(Fixtures.Parity, model))));
                    break;
                case "biomedclipseg":
                    RunBiomedClipSeg(new BiomedClipSegModel(BiomedClipSegConfig.Real));
                    break;
                case "demo":
                    RunClipSeg(new ClipSegModel(DemoRecipe.Full.ModelConfig()), DemoRecipe.Full.ImageSize);
                    break;
                case "clipseg-rd64-refined":
                    RunClipSeg(new ClipSegModel(ClipSegConfig.Rd64Refined), 352);
                    break;
                case var smp when smp.StartsWith("smp-", StringComparison.Ordinal):
                {
                    // The reference's two inputs (square and non-square), at batch 2.
                    string folder = Path.Combine(Fixtures.Parity, model);
                    using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
                    var shapes = new[] { "pixel_values", SmpReferenceVerifier.NonSquareInput }.Select(n => reference.Entry(n).Shape).Select(s => (s[2], s[3])).ToList();
                    RunSmp(SmpLoader.ReadConfig(folder), shapes);
                    break;
                }
                case var real when SmpFamily.All.Any(f => f.BuiltIn(real) is not null):
                {
                    var config = SmpFamily.All.Select(f => f.BuiltIn(real)).First(c => c is not null)!;
                    long size = config.ImgSize;
                    RunSmp(config, [(size, size)]);
                    break;
                }
                default:
                    string dir = Path.Combine(Fixtures.Parity, model);
                    using (var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors")))
                        RunClipSeg(new ClipSegModel(ClipSegLoader.ReadConfig(dir)), (int)reference.Entry("pixel_values").Shape[2]);
                    break;
            }
        }
        finally
        {
            SafeConvolution.Observer = null;
        }
        return seen.Values.ToList();
    }

    private static void RunClipSeg(ClipSegModel model, int size)
    {
        using (model)
        {
            model.eval();
            var ids = full([2, 6], 49407L, dtype: ScalarType.Int64);
            ids[TensorIndex.Colon, 0] = tensor(49406L);
            ids[TensorIndex.Colon, 1] = tensor(320L);
            model.Forward(randn(2, 3, size, size), ids, ones(2, 6, dtype: ScalarType.Int64));
        }
    }

    private static void RunSan(SanModel model)
    {
        using (model)
        {
            model.eval();
            var ids = full([2, model.Config.Clip.ContextLength], 49407L, dtype: ScalarType.Int64);
            ids[TensorIndex.Colon, 0] = tensor(49406L);
            ids[TensorIndex.Colon, 1] = tensor(320L);
            model.Forward(randn(2, 3, model.Config.ImageHeight, model.Config.ImageWidth), ids);
        }
    }

    private static void RunBiomedClipSeg(BiomedClipSegModel model)
    {
        using (model)
        {
            model.eval();
            long size = model.Config.Vision.ImageSize;
            var ids = tensor(new long[] { 2, 6240, 3, 2, 3, 0 }, [2, 3]);
            var mask = tensor(new long[] { 1, 1, 1, 1, 1, 0 }, [2, 3]);
            model.Forward(randn(2, 3, size, size), ids, mask);
        }
    }

    private static void RunSmp(SmpConfig config, IEnumerable<(long Height, long Width)> sizes)
    {
        using var model = new SmpModel(config);
        model.eval();
        foreach (var (h, w) in sizes) model.Forward(randn(2, 3, h, w)).Dispose();
    }

    private static void RunCris(CrisModel model)
    {
        using (model)
        {
            model.eval();
            long size = model.Config.ImgSize;
            var ids = zeros([2, model.Config.WordLen], dtype: ScalarType.Int64);
            ids[TensorIndex.Colon, 0] = tensor(49406L);
            ids[TensorIndex.Colon, 1] = tensor(320L);
            ids[TensorIndex.Colon, 2] = tensor(49407L);
            model.Forward(randn(2, 3, size, size), ids);
        }
    }
}
