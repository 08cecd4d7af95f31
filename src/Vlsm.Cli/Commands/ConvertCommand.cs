using System.CommandLine;
using Vlsm.Models.Cris;
using Vlsm.Models.Smp;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm convert …</c>: checkpoints in other formats to model folders.</summary>
internal static class ConvertCommand
{
    public static Command Build() => new("convert", "Convert checkpoints to model folders (safetensors + config.json).")
    {
        BuildCris(),
        BuildSmp(),
    };

    private static Command BuildSmp()
    {
        var checkpoint = new Option<string>("--checkpoint")
        {
            Description = "A medvlsm UNet/UNet++/DeepLabV3+ Lightning checkpoint (.ckpt/.pth; its net. prefix is removed and its other entries are skipped without running them), or an smp state dict.",
            Required = true,
        };
        var config = new Option<string?>("--config") { Description = "The model's config.json (model_type unet, unetplusplus or deeplabv3plus, encoder, decoder, classes); default: config.json beside the checkpoint." };
        var outDir = new Option<string>("--out") { Description = "Model folder to write (model.safetensors, config.json).", Required = true };
        var cmd = new Command("smp", "Convert a medvlsm smp checkpoint (UNet, UNet++, DeepLabV3+), read without running its pickle, to a checked model folder.") { checkpoint, config, outDir };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var r = SmpWeights.Convert(parse.GetValue(checkpoint)!, parse.GetValue(config), parse.GetValue(outDir)!);
            Console.WriteLine(Written(r));
            return 0;
        }));
        return cmd;
    }

    /// <summary>One line about an smp folder vlsm convert or vlsm init wrote.</summary>
    internal static string Written(SmpFolderWritten r) =>
        $"wrote {r.OutDir}: {r.Config}, {r.Tensors} tensors from {r.Source}"
        + (r.StrippedPrefix is { } prefix ? $" ({prefix} prefix removed)" : "")
        + (r.DroppedKeys.Count > 0 ? $"; dropped {string.Join(", ", r.DroppedKeys)}" : "")
        + (r.AddedStepCounters > 0 ? $"; {r.AddedStepCounters} missing num_batches_tracked set to 0" : "");

    private static Command BuildCris()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "CRIS checkpoint as torch.save wrote it (.pth/.bin state dict; a module. prefix is removed).", Required = true };
        var config = new Option<string?>("--config") { Description = "CRIS config.json (\"clip\" and \"cris\" objects); default: config.json beside the checkpoint." };
        var outDir = new Option<string>("--out") { Description = "Model folder to write (model.safetensors, config.json, vocab.json, merges.txt).", Required = true };
        var cmd = new Command("cris", "Convert a PyTorch CRIS checkpoint, read without running its pickle, to a CRIS model folder.") { checkpoint, config, outDir };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var r = CrisConverter.Convert(parse.GetValue(checkpoint)!, parse.GetValue(config), parse.GetValue(outDir)!);
            var clip = r.Config.Clip;
            Console.WriteLine($"wrote {r.OutDir}: {r.Tensors} tensors" + (r.StrippedPrefix ? " (module. prefix removed)" : "")
                + (r.AddedStepCounters > 0 ? $", {r.AddedStepCounters} missing num_batches_tracked set to 0" : "")
                + $"; CLIP ResNet [{string.Join(", ", clip.VisionLayers)}] width {clip.VisionWidth}, text {clip.TransformerLayers}x{clip.TransformerWidth}, "
                + $"img_size {r.Config.ImgSize}; settings from {r.ConfigSource}");
            return 0;
        }));
        return cmd;
    }
}
