using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Models.Smp;

/// <summary>
/// smp model folders: <c>config.json</c> (the fixtures' format, <c>model_type</c> unet,
/// unetplusplus or deeplabv3plus) and <c>model.safetensors</c> (smp's state dict).
/// </summary>
public static class SmpLoader
{
    public const string WeightsFile = "model.safetensors";
    public const string ConfigFile = "config.json";

    /// <summary>The architecture a model_type names, or null.</summary>
    public static SmpArchitecture? ArchitectureOf(string modelType) => modelType switch
    {
        "unet" => SmpArchitecture.Unet,
        "unetplusplus" => SmpArchitecture.UnetPlusPlus,
        "deeplabv3plus" => SmpArchitecture.DeepLabV3Plus,
        _ => null,
    };

    /// <summary>Reads a config.json of an smp folder (or any path to one).</summary>
    /// <exception cref="VlsmException">The file is missing, is not an smp config, or a field is wrong (named).</exception>
    public static SmpConfig ReadConfigFile(string path) =>
        ConfigJson.ParseFile(path, "not found; an smp model folder needs config.json (write one with vlsm init --arch unet-resnet50 or vlsm convert smp).", o =>
        {
            string type = o["model_type"] is JsonValue v && v.TryGetValue<string>(out var s) ? s
                : throw new FormatException("no \"model_type\" (unet, unetplusplus or deeplabv3plus).");
            var architecture = ArchitectureOf(type) ?? throw new FormatException($"model_type \"{type}\" is not one of unet, unetplusplus, deeplabv3plus.");
            return SmpConfig.Parse(o, architecture);
        });

    /// <summary>The folder's config, checked against model.safetensors' header when the folder has one (<see cref="CheckWeights"/>), before anything is built from it.</summary>
    public static SmpConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir))
            throw new VlsmException($"model folder {dir} does not exist; pass an smp folder (config.json, model.safetensors), e.g. one written by vlsm init or vlsm convert smp.");
        string configPath = Path.Combine(dir, ConfigFile);
        var config = ReadConfigFile(configPath);
        string weights = Path.Combine(dir, WeightsFile);
        if (File.Exists(weights))
        {
            using var file = SafetensorsFile.Open(weights); // the header only; no tensor is read
            CheckWeights(config, configPath, weights, file.Names, k => file.Contains(k) ? (file.Entry(k).Dtype, file.Entry(k).Shape) : null);
        }
        return config;
    }

    /// <summary>
    /// Checks weights against what <paramref name="config"/> gives before a model is built from it, so
    /// a config that does not describe them (a wrong or absurd width, depth or class count, another
    /// architecture or block) is one line naming config.json's field and the tensor with both
    /// shapes, not seconds and gigabytes of building or libtorch's allocator. Every tensor's dtype
    /// must be of its kind: floating point, or an integer for BatchNorm's step counters. Reads
    /// names, dtypes and shapes only; the strict loader still checks every key after building.
    /// </summary>
    /// <param name="entryOf">A key's stored dtype and shape, or null when the weights lack it.</param>
    /// <exception cref="VlsmException">A claimed tensor is absent or of another shape, a block count differs, or a dtype is of the wrong kind.</exception>
    public static void CheckWeights(SmpConfig config, string configPath, string weights, IEnumerable<string> keys,
        Func<string, (SafetensorsDtype Dtype, long[] Shape)?> entryOf)
    {
        var names = keys as IReadOnlyCollection<string> ?? keys.ToList();
        foreach (var key in names)
        {
            var dtype = entryOf(key)!.Value.Dtype;
            bool counter = StateDictLoader.IsStepCounter(key);
            if (SafetensorsDtypes.IsFloat(dtype) == counter)
                throw new VlsmException($"{weights}: tensor {Printable.Quote(key)} is stored as {dtype}, but an smp model's is {(counter ? "an integer step counter" : "a floating-point weight")}; "
                    + "the file was not written for this model. Nothing was built.");
        }
        var (shapes, counts) = config.WeightClaims();
        string? bottleneck = names.Contains("encoder.layer1.0.conv1.weight") ? "encoder.layer1.0.conv3.weight" : null; // only bottleneck blocks have a third convolution
        if (bottleneck is not null && names.Contains(bottleneck) != (config.Encoder.Block == ResNetBlock.Bottleneck))
            throw new VlsmException($"{configPath}: encoder.block is {(config.Encoder.Block == ResNetBlock.Basic ? "basic" : "bottleneck")}, but {weights} "
                + $"{(names.Contains(bottleneck) ? "holds" : "has no")} {Printable.Quote(bottleneck)} (the third convolution of a bottleneck block); the config does not describe these weights. Nothing was built.");
        foreach (var claim in shapes.Where(c => entryOf(c.Key) is null))
            throw new VlsmException($"{configPath}: {claim.Field} gives {Printable.Quote(claim.Key)} of shape [{string.Join(", ", claim.Shape)}], which {weights} lacks; "
                + $"the weights are not those of {SmpConfig.SmpClass(config.Architecture)} (model_type {config.ModelType}). Nothing was built.");
        WeightShapes.Check(configPath, weights, k => entryOf(k)?.Shape, names, shapes, counts);
    }

    /// <summary>The model with the folder's weights, in float32 and eval mode.</summary>
    /// <exception cref="VlsmException">The weights are missing, or their keys or shapes do not fit the config (named).</exception>
    /// <param name="imageSize">The input side other than config.json's img_size (<see cref="ModelRequest.ImageSize"/>): the preprocessor's.</param>
    public static SmpModel Load(string dir, int? imageSize = null)
    {
        var config = imageSize is int side ? ReadConfig(dir) with { ImgSize = side } : ReadConfig(dir);
        string weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights))
        {
            string hint = Directory.EnumerateFiles(dir, "*.pth").Concat(Directory.EnumerateFiles(dir, "*.ckpt")).Any()
                ? " The folder has a .pth/.ckpt checkpoint; convert it with vlsm convert smp --checkpoint FILE --out DIR."
                : " Create weights with vlsm init --arch NAME --out DIR (random, or --encoder-weights FILE for ImageNet).";
            throw new VlsmException($"{weights} not found.{hint}");
        }
        var model = new SmpModel(config);
        try
        {
            using var file = SafetensorsFile.Open(weights);
            StateDictLoader.LoadStrict(model, file, optional: StateDictLoader.IsStepCounter);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }
}
