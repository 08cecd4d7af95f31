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

    public static SmpConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir))
            throw new VlsmException($"model folder {dir} does not exist; pass an smp folder (config.json, model.safetensors), e.g. one written by vlsm init or vlsm convert smp.");
        return ReadConfigFile(Path.Combine(dir, ConfigFile));
    }

    /// <summary>The model with the folder's weights, in float32 and eval mode.</summary>
    /// <exception cref="VlsmException">The weights are missing, or their keys or shapes do not fit the config (named).</exception>
    public static SmpModel Load(string dir)
    {
        var config = ReadConfig(dir);
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
