using System.CommandLine;
using Vlsm.Models.Smp;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm init</c>: a trainable UNet, UNet++ or DeepLabV3+ folder with smp's initial weights, optionally an ImageNet encoder.</summary>
internal static class InitCommand
{
    public static Command Build()
    {
        var names = SmpFamily.All.SelectMany(f => f.Architectures).ToList();
        var arch = new Option<string?>("--arch") { Description = $"Built-in architecture: {string.Join(", ", names)}." };
        var config = new Option<string?>("--config") { Description = "Or a config.json of any encoder and decoder sizes (the format of shared/parity/smp-*/config.json)." };
        var outDir = new Option<string>("--out") { Description = "Model folder to write, new or empty (config.json, model.safetensors).", Required = true };
        var encoder = new Option<string?>("--encoder-weights")
        {
            Description = "torchvision's ImageNet ResNet weights (e.g. resnet50-19c8e357.pth, the file smp downloads for encoder_weights=\"imagenet\"; legacy or zip torch.save, or safetensors). Without it the encoder is random (torchvision's initialisation).",
        };
        var classes = new Option<int?>("--classes") { Description = "Output channels of the head (default 1, as medvlsm)." };
        var imgSize = new Option<int?>("--img-size") { Description = "Input side (default 256, medvlsm's Resize(256))." };
        var seed = new Option<long>("--seed") { Description = "Seed of the random initial weights.", DefaultValueFactory = _ => 42 };
        var cmd = new Command("init", "Create a trainable UNet, UNet++ or DeepLabV3+ model folder: smp's initial weights, the encoder from ImageNet weights when given.")
        {
            arch, config, outDir, encoder, classes, imgSize, seed,
        };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string? name = parse.GetValue(arch), configPath = parse.GetValue(config);
            if ((name is null) == (configPath is null)) throw new VlsmException("give exactly one of --arch NAME or --config FILE.");
            var c = configPath is not null
                ? SmpLoader.ReadConfigFile(configPath)
                : SmpFamily.All.Select(f => f.BuiltIn(name!)).FirstOrDefault(b => b is not null)
                    ?? throw new VlsmException($"--arch {name}: not one of {string.Join(", ", names)}.");
            if (parse.GetValue(classes) is { } n) c = c with { Classes = n };
            if (parse.GetValue(imgSize) is { } size) c = c with { ImgSize = size };
            try
            {
                c = c.Checked();
            }
            catch (FormatException e)
            {
                throw new VlsmException($"--classes/--img-size: {e.Message}", e);
            }
            var r = SmpWeights.Initialize(c, parse.GetValue(outDir)!, parse.GetValue(encoder), parse.GetValue(seed));
            Console.WriteLine(ConvertCommand.Written(r));
            return 0;
        }));
        return cmd;
    }
}
