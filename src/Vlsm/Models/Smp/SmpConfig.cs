using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vlsm.Models.Smp;

/// <summary>The three segmentation_models_pytorch (smp) architectures medvlsm uses as image-only baselines.</summary>
public enum SmpArchitecture { Unet, UnetPlusPlus, DeepLabV3Plus }

/// <summary>The residual block of a ResNet encoder: torchvision's BasicBlock (resnet18/34) or Bottleneck (resnet50/101, "v1.5", stride on the 3x3).</summary>
public enum ResNetBlock { Basic, Bottleneck }

/// <summary>
/// A ResNet encoder as smp builds it from torchvision's <c>ResNet</c>: the stem width, four stages
/// of <see cref="Layers"/> blocks of <see cref="Widths"/> planes. With a Bottleneck block, stem 64,
/// widths [64, 128, 256, 512] and layers [3, 4, 6, 3] it is smp's <c>resnet50</c>.
/// </summary>
public sealed record ResNetEncoderConfig
{
    public ResNetBlock Block { get; init; } = ResNetBlock.Bottleneck;
    public IReadOnlyList<int> Layers { get; init; } = [3, 4, 6, 3];
    public int StemWidth { get; init; } = 64;
    public IReadOnlyList<int> Widths { get; init; } = [64, 128, 256, 512];

    /// <summary>Output channels of a block per plane: 1 (basic) or 4 (bottleneck).</summary>
    public int Expansion => Block == ResNetBlock.Bottleneck ? 4 : 1;

    /// <summary>Channels of smp's six encoder features: the input, the stem, then each stage.</summary>
    public IReadOnlyList<int> OutChannels(int inChannels) =>
        [inChannels, StemWidth, .. Widths.Select(w => w * Expansion)];

    public static ResNetEncoderConfig ResNet18 => new() { Block = ResNetBlock.Basic, Layers = [2, 2, 2, 2] };
    public static ResNetEncoderConfig ResNet34 => new() { Block = ResNetBlock.Basic, Layers = [3, 4, 6, 3] };
    public static ResNetEncoderConfig ResNet50 => new();
    public static ResNetEncoderConfig ResNet101 => new() { Layers = [3, 4, 23, 3] };

    /// <summary>torchvision's name for this encoder when it is one of its ResNets, else null.</summary>
    public string? TorchvisionName =>
        StemWidth == 64 && Widths.SequenceEqual([64, 128, 256, 512])
            ? (Block, string.Join(",", Layers)) switch
            {
                (ResNetBlock.Basic, "2,2,2,2") => "resnet18",
                (ResNetBlock.Basic, "3,4,6,3") => "resnet34",
                (ResNetBlock.Bottleneck, "3,4,6,3") => "resnet50",
                (ResNetBlock.Bottleneck, "3,4,23,3") => "resnet101",
                _ => null,
            }
            : null;

    public string Describe() => (TorchvisionName ?? $"ResNet ({(Block == ResNetBlock.Basic ? "basic" : "bottleneck")} blocks [{string.Join(", ", Layers)}], stem {StemWidth}, widths [{string.Join(", ", Widths)}])");
}

/// <summary>
/// An smp model as medvlsm runs it: a ResNet encoder, the decoder of <see cref="Architecture"/>,
/// a segmentation head of <see cref="Classes"/> channels, and medvlsm's image preprocessing. The
/// folder format (<c>config.json</c>) is the one the parity fixtures use (shared/parity/smp-README.md).
/// </summary>
public sealed record SmpConfig
{
    public static readonly double[] ImageNetMean = [0.485, 0.456, 0.406];
    public static readonly double[] ImageNetStd = [0.229, 0.224, 0.225];

    public SmpArchitecture Architecture { get; init; } = SmpArchitecture.Unet;
    public ResNetEncoderConfig Encoder { get; init; } = ResNetEncoderConfig.ResNet50;
    public int InChannels { get; init; } = 3;
    public int Classes { get; init; } = 1;

    /// <summary>Unet and Unet++: the five decoder stages' widths.</summary>
    public IReadOnlyList<int> DecoderChannels { get; init; } = [256, 128, 64, 32, 16];

    /// <summary>DeepLabV3+: the decoder's width.</summary>
    public int DeepLabChannels { get; init; } = 256;
    public IReadOnlyList<int> AtrousRates { get; init; } = [12, 24, 36];

    /// <summary>DeepLabV3+: 16 (layer4 dilated) or 8 (layer3 and layer4 dilated).</summary>
    public int OutputStride { get; init; } = 16;

    /// <summary>DeepLabV3+: the head's final bilinear upsampling factor.</summary>
    public int Upsampling { get; init; } = 4;

    public IReadOnlyList<double> ImageMean { get; init; } = ImageNetMean;
    public IReadOnlyList<double> ImageStd { get; init; } = ImageNetStd;

    /// <summary>medvlsm's <c>Resize(256)</c>: the shorter side of every image (see <see cref="SmpFamily.InputOption"/>).</summary>
    public int ImgSize { get; init; } = 256;

    /// <summary>config.json's <c>model_type</c>.</summary>
    public string ModelType => TypeName(Architecture);

    public static string TypeName(SmpArchitecture a) => a switch
    {
        SmpArchitecture.Unet => "unet",
        SmpArchitecture.UnetPlusPlus => "unetplusplus",
        _ => "deeplabv3plus",
    };

    /// <summary>smp's class name.</summary>
    public static string SmpClass(SmpArchitecture a) => a switch
    {
        SmpArchitecture.Unet => "Unet",
        SmpArchitecture.UnetPlusPlus => "UnetPlusPlus",
        _ => "DeepLabV3Plus",
    };

    /// <summary>medvlsm's wrapper class.</summary>
    public static string MedvlsmClass(SmpArchitecture a) => a switch
    {
        SmpArchitecture.Unet => "src.models.UNet",
        SmpArchitecture.UnetPlusPlus => "src.models.UNetPP",
        _ => "src.models.DeepLabV3Plus",
    };

    public bool IsDeepLab => Architecture == SmpArchitecture.DeepLabV3Plus;

    /// <summary>Input height and width must be multiples of this (smp refuses others and never pads).</summary>
    public int SizeDivisor => IsDeepLab ? OutputStride : 32;

    /// <summary>medvlsm's baselines: the architecture with a ResNet-50 encoder, 3 input channels and 1 class.</summary>
    public static SmpConfig Medvlsm(SmpArchitecture architecture) => new() { Architecture = architecture };

    /// <summary>The sizes trained weights depend on; checkpoint files record it.</summary>
    public string Fingerprint
    {
        get
        {
            string encoder = $"{(Encoder.Block == ResNetBlock.Basic ? "basic" : "bottleneck")}{string.Join(",", Encoder.Layers)}s{Encoder.StemWidth}w{string.Join(",", Encoder.Widths)}";
            string decoder = IsDeepLab
                ? $"c{DeepLabChannels}r{string.Join(",", AtrousRates)}os{OutputStride}"
                : $"c{string.Join(",", DecoderChannels)}";
            return $"{ModelType};in={InChannels};enc={encoder};dec={decoder};classes={Classes}";
        }
    }

    /// <summary>
    /// The sizes this config gives smp's tensors, for <see cref="WeightShapes"/> before building: the
    /// stem and each stage's width and block count, each decoder width, and the classes. The
    /// atrous rates, output stride, upsampling and img_size shape no tensor.
    /// </summary>
    public (IReadOnlyList<ShapeClaim> Shapes, IReadOnlyList<CountClaim> Counts) WeightClaims()
    {
        int k = Encoder.Block == ResNetBlock.Basic ? 3 : 1; // a stage's first convolution: 3x3 in a basic block, 1x1 in a bottleneck
        var shapes = new List<ShapeClaim> { new("encoder.stem_width", Encoder.StemWidth, "encoder.conv1.weight", [Encoder.StemWidth, InChannels, 7, 7]) };
        var counts = new List<CountClaim>();
        long previous = Encoder.StemWidth;
        for (int i = 0; i < 4; i++)
        {
            long width = Encoder.Widths[i];
            shapes.Add(new($"encoder.widths[{i}]", width, $"encoder.layer{i + 1}.0.conv1.weight", [width, previous, k, k]));
            counts.Add(new($"encoder.layers[{i}]", Encoder.Layers[i], $"encoder.layer{i + 1}."));
            previous = width * Encoder.Expansion;
        }
        long headIn;
        if (IsDeepLab)
        {
            headIn = DeepLabChannels;
            shapes.Add(new("decoder_channels", DeepLabChannels, "decoder.aspp.0.convs.0.0.weight", [DeepLabChannels, previous, 1, 1]));
        }
        else
        {
            for (int i = 0; i < DecoderChannels.Count; i++)
            {
                long width = DecoderChannels[i];
                string block = Architecture == SmpArchitecture.Unet ? $"{i}" : $"x_0_{i}";
                shapes.Add(new($"decoder_channels[{i}]", width, $"decoder.blocks.{block}.conv2.0.weight", [width, width, 3, 3]));
            }
            headIn = DecoderChannels[^1];
        }
        int head = IsDeepLab ? 1 : 3;
        shapes.Add(new("classes", Classes, "segmentation_head.0.weight", [Classes, headIn, head, head]));
        return (shapes, counts);
    }

    /// <exception cref="FormatException">A field is out of range or inconsistent (the message names it).</exception>
    public SmpConfig Checked()
    {
        static void Require(bool ok, string message)
        {
            if (!ok) throw new FormatException(message);
        }
        Require(Encoder.Layers.Count == 4 && Encoder.Layers.All(n => n >= 1), $"encoder.layers must be 4 positive block counts, got [{string.Join(", ", Encoder.Layers)}].");
        Require(Encoder.Widths.Count == 4 && Encoder.Widths.All(n => n >= 1), $"encoder.widths must be 4 positive widths, got [{string.Join(", ", Encoder.Widths)}].");
        Require(Encoder.StemWidth >= 1, $"encoder.stem_width must be positive, got {Encoder.StemWidth}.");
        Require(InChannels == 3, $"in_channels must be 3 (RGB images), got {InChannels}.");
        Require(Classes >= 1, $"classes must be at least 1, got {Classes}.");
        Require(ImgSize >= SizeDivisor && ImgSize % SizeDivisor == 0,
            $"img_size must be a positive multiple of {SizeDivisor} ({SmpClass(Architecture)} refuses other sizes), got {ImgSize}.");
        Require(ImageMean.Count == 3 && ImageStd.Count == 3 && ImageStd.All(s => s > 0), "image_mean and image_std must be 3 numbers each, the std positive.");
        if (IsDeepLab)
        {
            Require(OutputStride is 8 or 16, $"encoder_output_stride must be 8 or 16, got {OutputStride}.");
            Require(DeepLabChannels >= 1, $"decoder_channels must be a positive width, got {DeepLabChannels}.");
            Require(AtrousRates.Count == 3 && AtrousRates.All(r => r >= 1), $"decoder_atrous_rates must be 3 positive rates, got [{string.Join(", ", AtrousRates)}].");
            Require(Upsampling >= 1, $"upsampling must be positive, got {Upsampling}.");
        }
        else
        {
            Require(DecoderChannels.Count == 5 && DecoderChannels.All(c => c >= 1), $"decoder_channels must be 5 positive widths, got [{string.Join(", ", DecoderChannels)}].");
        }
        return this;
    }

    /// <summary>Reads a config.json of this format; <paramref name="architecture"/> is its model_type, already known.</summary>
    /// <exception cref="FormatException">A field is missing, of the wrong type or out of range.</exception>
    public static SmpConfig Parse(JsonObject o, SmpArchitecture architecture)
    {
        var encoder = o["encoder"] as JsonObject ?? throw new FormatException("no \"encoder\" object (type, block, layers, stem_width, widths).");
        string type = String(encoder, "type", "resnet");
        if (type != "resnet") throw new FormatException($"encoder.type \"{type}\" is not supported; vlsm builds ResNet encoders (\"resnet\").");
        string blockName = String(encoder, "block", null);
        var block = blockName switch
        {
            "basic" => ResNetBlock.Basic,
            "bottleneck" => ResNetBlock.Bottleneck,
            _ => throw new FormatException($"encoder.block \"{blockName}\" is not one of basic, bottleneck."),
        };
        var enc = new ResNetEncoderConfig
        {
            Block = block,
            Layers = Ints(encoder, "layers", "encoder.layers"),
            StemWidth = ConfigJson.Int(encoder, "stem_width", 64, "encoder.stem_width"),
            Widths = Ints(encoder, "widths", "encoder.widths"),
        };
        if (encoder["expansion"] is not null && ConfigJson.Int(encoder, "expansion", enc.Expansion, "encoder.expansion") != enc.Expansion)
            throw new FormatException($"encoder.expansion must be {enc.Expansion} for {blockName} blocks.");
        int inChannels = ConfigJson.Int(o, "in_channels", 3, "in_channels");
        if (encoder["out_channels"] is not null)
        {
            var given = Ints(encoder, "out_channels", "encoder.out_channels");
            var derived = enc.OutChannels(inChannels);
            if (!given.SequenceEqual(derived))
                throw new FormatException($"encoder.out_channels [{string.Join(", ", given)}] disagree with the encoder's block, stem and widths, which give [{string.Join(", ", derived)}].");
        }
        if (ConfigJson.Int(o, "encoder_depth", 5, "encoder_depth") != 5) throw new FormatException("encoder_depth must be 5 (medvlsm's and smp's default).");
        if (o["activation"] is JsonValue act && act.GetValueKind() != JsonValueKind.Null)
            throw new FormatException($"activation {act.ToJsonString()} is not supported; the model returns logits (activation null), as medvlsm builds it.");
        if (o["aux_params"] is JsonNode aux && aux.GetValueKind() != JsonValueKind.Null)
            throw new FormatException("aux_params (smp's classification head) is not supported; medvlsm builds none (null).");

        var config = new SmpConfig
        {
            Architecture = architecture,
            Encoder = enc,
            InChannels = inChannels,
            Classes = ConfigJson.Int(o, "classes", 1, "classes"),
            ImgSize = ConfigJson.Int(o, "img_size", 256, "img_size"),
            ImageMean = o["image_mean"] is null ? ImageNetMean : Doubles(o, "image_mean"),
            ImageStd = o["image_std"] is null ? ImageNetStd : Doubles(o, "image_std"),
        };
        if (architecture == SmpArchitecture.DeepLabV3Plus)
        {
            config = config with
            {
                DeepLabChannels = ConfigJson.Int(o, "decoder_channels", 256, "decoder_channels"),
                AtrousRates = o["decoder_atrous_rates"] is null ? [12, 24, 36] : Ints(o, "decoder_atrous_rates", "decoder_atrous_rates"),
                OutputStride = ConfigJson.Int(o, "encoder_output_stride", 16, "encoder_output_stride"),
                Upsampling = ConfigJson.Int(o, "upsampling", 4, "upsampling"),
            };
        }
        else
        {
            if (o["decoder_use_batchnorm"] is JsonValue bn && !(bn.TryGetValue<bool>(out var useBn) && useBn))
                throw new FormatException($"decoder_use_batchnorm {bn.ToJsonString()} is not supported; medvlsm's decoders use BatchNorm (true).");
            if (o["decoder_attention_type"] is JsonValue att && att.GetValueKind() != JsonValueKind.Null)
                throw new FormatException($"decoder_attention_type {att.ToJsonString()} is not supported; medvlsm's decoders have no attention (null).");
            config = config with
            {
                DecoderChannels = o["decoder_channels"] is null ? [256, 128, 64, 32, 16] : Ints(o, "decoder_channels", "decoder_channels"),
            };
        }
        return config.Checked();
    }

    /// <summary>config.json in the fixtures' format (what <see cref="Parse"/> reads).</summary>
    public string ToJson()
    {
        var encoder = new JsonObject
        {
            ["type"] = "resnet",
            ["block"] = Encoder.Block == ResNetBlock.Basic ? "basic" : "bottleneck",
            ["layers"] = Array(Encoder.Layers),
            ["stem_width"] = Encoder.StemWidth,
            ["widths"] = Array(Encoder.Widths),
            ["out_channels"] = Array(Encoder.OutChannels(InChannels)),
            ["expansion"] = Encoder.Expansion,
        };
        var o = new JsonObject
        {
            ["model_type"] = ModelType,
            ["smp_class"] = SmpClass(Architecture),
            ["medvlsm_class"] = MedvlsmClass(Architecture),
        };
        if (Encoder.TorchvisionName is { } name) o["encoder_name"] = name;
        o["encoder"] = encoder;
        o["encoder_depth"] = 5;
        if (IsDeepLab)
        {
            o["encoder_output_stride"] = OutputStride;
            o["decoder_channels"] = DeepLabChannels;
            o["decoder_atrous_rates"] = Array(AtrousRates);
            o["upsampling"] = Upsampling;
        }
        else
        {
            o["decoder_channels"] = Array(DecoderChannels);
            o["decoder_use_batchnorm"] = true;
            o["decoder_attention_type"] = null;
        }
        o["in_channels"] = InChannels;
        o["classes"] = Classes;
        o["activation"] = null;
        o["aux_params"] = null;
        o["prompt_free"] = true;
        o["image_mean"] = new JsonArray(ImageMean.Select(v => (JsonNode)v).ToArray());
        o["image_std"] = new JsonArray(ImageStd.Select(v => (JsonNode)v).ToArray());
        o["img_size"] = ImgSize;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    private static JsonArray Array(IEnumerable<int> values) => new(values.Select(v => (JsonNode)v).ToArray());

    private static string String(JsonObject o, string key, string? fallback)
    {
        var node = o[key];
        if (node is null) return fallback ?? throw new FormatException($"no \"{key}\" field.");
        return node is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new FormatException($"\"{key}\" must be a string, got {node.ToJsonString()}.");
    }

    private static int[] Ints(JsonObject o, string key, string label)
    {
        if (o[key] is not JsonArray array) throw new FormatException($"{label} must be a list of integers, got {o[key]?.ToJsonString() ?? "nothing"}.");
        return array.Select(n => n is JsonValue v && v.TryGetValue<int>(out var i)
            ? ConfigJson.Bounded(i, label)
            : throw new FormatException($"{label} must be a list of integers, got {Vlsm.IO.Printable.Clip(array.ToJsonString())}.")).ToArray();
    }

    private static double[] Doubles(JsonObject o, string key)
    {
        if (o[key] is not JsonArray array) throw new FormatException($"{key} must be a list of numbers, got {o[key]?.ToJsonString()}.");
        return array.Select(n => n is JsonValue v && v.TryGetValue<double>(out var d) ? d : throw new FormatException($"{key} must be a list of numbers, got {array.ToJsonString()}.")).ToArray();
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{SmpClass(Architecture)} {Encoder.Describe()}, {Classes} class(es)");
}
