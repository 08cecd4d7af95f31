using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Models.Smp;

/// <summary>
/// medvlsm's image-only baselines, one family per smp architecture (<c>model_type</c> unet,
/// unetplusplus, deeplabv3plus): a ResNet encoder, smp's decoder, no text. They train in full mode
/// with medvlsm's recipe (the presets), or in decoder mode over a frozen encoder.
/// </summary>
public sealed class SmpFamily : IModelFamily
{
    // Declared before the instances, whose constructors read it.
    /// <summary>The encoders of the built-in architectures (<c>info --arch unet-resnet50</c>, <c>vlsm init</c>).</summary>
    public static IReadOnlyDictionary<string, ResNetEncoderConfig> Encoders { get; } = new Dictionary<string, ResNetEncoderConfig>
    {
        ["resnet18"] = ResNetEncoderConfig.ResNet18,
        ["resnet34"] = ResNetEncoderConfig.ResNet34,
        ["resnet50"] = ResNetEncoderConfig.ResNet50,
        ["resnet101"] = ResNetEncoderConfig.ResNet101,
    };

    public static SmpFamily Unet { get; } = new(SmpArchitecture.Unet, "UNet");
    public static SmpFamily UnetPlusPlus { get; } = new(SmpArchitecture.UnetPlusPlus, "UNet++");
    public static SmpFamily DeepLabV3Plus { get; } = new(SmpArchitecture.DeepLabV3Plus, "DeepLabV3+");

    /// <summary>The three families, for the registry.</summary>
    public static IReadOnlyList<SmpFamily> All { get; } = [Unet, UnetPlusPlus, DeepLabV3Plus];

    /// <summary>The option that chooses how images are sized (config.yaml key).</summary>
    public const string InputOption = "smp_input";

    /// <summary>The command-line flag of <see cref="InputOption"/>.</summary>
    public const string InputFlag = "--smp-input";

    private SmpFamily(SmpArchitecture architecture, string name)
    {
        Architecture = architecture;
        Name = name;
        ModelType = SmpConfig.TypeName(architecture);
        Architectures = Encoders.Keys.Select(e => $"{ModelType}-{e}").ToList();
        // medvlsm's recipe (configs/experiment, configs/model): Adam at 1e-3 over all parameters, no
        // scheduler, batch 16, gradient clipping 0.5, early stopping on validation Dice (patience 20),
        // 10 to 1000 epochs, TunedDiceLoss.
        Presets = new Dictionary<string, TrainingPreset>
        {
            [ModelType] = new(FineTuneMode.Full, null, 1e-3)
            {
                WeightDecay = 0,
                BatchSize = 16,
                Loss = "tuned-dice",
                Scheduler = "none",
                EarlyStoppingPatience = 20,
                MinEpochs = 10,
                MaxEpochs = 1000,
                GradClip = 0.5,
            },
        };
    }

    public SmpArchitecture Architecture { get; }
    public string ModelType { get; }
    public string Name { get; }
    public bool TakesText => false;
    public IReadOnlyList<FineTuneMode> Modes { get; } = [FineTuneMode.Full, FineTuneMode.Decoder];
    public IReadOnlyList<ComputePrecision> Precisions { get; } = [ComputePrecision.Fp32, ComputePrecision.Bf16];
    public IReadOnlyList<string> Architectures { get; }
    public IReadOnlyDictionary<string, TrainingPreset> Presets { get; }

    public IReadOnlyList<FamilyOption> Options { get; } =
    [
        new(InputOption, "reference resizes the shorter side to img_size with the aspect kept, as medvlsm does (only images that come out square are taken); square resizes every image to img_size x img_size",
            ["reference", "square"], "reference"),
    ];

    /// <summary>medvlsm trains everything at 1e-3; decoder mode uses the same rate.</summary>
    public double DefaultLearningRate(FineTuneMode mode) => 1e-3;

    /// <summary>smp folders have carried model_type from the start.</summary>
    public bool RecognizesLegacy(JsonObject config) => false;

    public FineTuneSpec CheckSpec(FineTuneSpec spec)
    {
        SmpCheckpointFile.CheckMode(spec.Mode, Name);
        return spec;
    }

    /// <summary>The input sizing a request's options choose.</summary>
    public SmpInput Input(ModelRequest request) =>
        FamilyChecks.Options(this, request.Options)[InputOption] == "square" ? SmpInput.Square : SmpInput.Reference;

    /// <summary>The config of a built-in architecture name (<c>unet-resnet50</c>), or null when the name is not this family's.</summary>
    public SmpConfig? BuiltIn(string name) =>
        name.StartsWith(ModelType + "-", StringComparison.Ordinal) && Encoders.TryGetValue(name[(ModelType.Length + 1)..], out var encoder)
            ? SmpConfig.Medvlsm(Architecture) with { Encoder = encoder }
            : null;

    private SmpConfig ConfigOf(ModelSource source) =>
        source.Config(this, SmpLoader.ReadConfig, Architectures.ToDictionary(a => a, a => (Func<SmpConfig>)(() => BuiltIn(a)!)));

    public ModelSummary Describe(ModelSource source, FineTuneSpec? spec)
    {
        var config = ConfigOf(source);
        using var model = new SmpModel(config);
        static long Count(TorchSharp.torch.nn.Module m) => m.parameters().Sum(p => p.numel());
        long? trainable = spec is null ? null : SmpCheckpointFile.TrainableParameterCount(model, SmpCheckpointFile.CheckMode(spec.Mode, Name));
        string decoder = config.IsDeepLab
            ? $"ASPP rates [{string.Join(", ", config.AtrousRates)}], width {config.DeepLabChannels}, output stride {config.OutputStride}"
            : $"{(config.Architecture == SmpArchitecture.Unet ? "5 blocks" : "11 nested blocks")}, widths [{string.Join(", ", config.DecoderChannels)}]";
        return new ModelSummary(source.ToString(), this,
        [
            new("encoder", "encoder", Count(model.Encoder), $"{config.Encoder.Describe()}, features [{string.Join(", ", config.Encoder.OutChannels(config.InChannels))}]"),
            new("decoder", "decoder", Count(model.Decoder), decoder),
            new("head", "segmentation head", Count(model.Head), $"{config.Classes} class(es){(config.IsDeepLab ? $", x{config.Upsampling} bilinear" : "")}; input {config.ImgSize} px"),
        ], Count(model), JsonNode.Parse(config.ToJson())!, spec, trainable);
    }

    /// <summary>img_size, or any multiple of the encoder's output stride (smp refuses other sizes and never pads); the side replaces img_size in both input sizings.</summary>
    public ImageSizeRule ImageSizes(string modelDir)
    {
        var config = SmpLoader.ReadConfig(modelDir);
        return new ImageSizeRule(config.ImgSize, config.ImgSize, config.SizeDivisor, $"the encoder's output stride, which smp's {SmpConfig.SmpClass(config.Architecture)} needs");
    }

    public ISegmenter OpenSegmenter(ModelRequest request) =>
        SmpPredictor.FromFolder(request.Directory, request.Weights, this, Input(request), request.Precision, request.ImageSize);

    public ITrainableModel OpenTrainable(ModelRequest request, TrainingSetup training) => new SmpTraining(this, request, training);

    public IReadOnlyList<TensorComparison> Verify(string modelDir, string referencePath, string? weightsFile)
    {
        using var model = SmpLoader.Load(modelDir);
        if (weightsFile is not null) SmpCheckpointFile.Apply(model, weightsFile, Name);
        using var reference = SafetensorsFile.Open(referencePath);
        return SmpReferenceVerifier.Verify(model, reference);
    }
}
