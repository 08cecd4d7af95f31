using System.CommandLine;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Models.Cris;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm convert …</c>: checkpoints in other formats to model folders.</summary>
internal static class ConvertCommand
{
    public static Command Build() => new("convert", "Convert checkpoints to model folders (safetensors + config.json).")
    {
        BuildCris(),
        BuildBiomedClip(),
    };

    private static Command BuildBiomedClip()
    {
        var biomedclip = new Option<string?>("--biomedclip") { Description = "BiomedCLIP as distributed: the folder with open_clip_config.json and open_clip_pytorch_model.bin (or open_clip_model.safetensors)." };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Instead of --biomedclip: a medvlsm BiomedCLIPSeg checkpoint (Lightning .ckpt or torch.save state dict; the net. prefix is removed)." };
        var clipseg = new Option<string?>("--clipseg") { Description = "An HF CLIPSeg folder (e.g. clipseg-rd64-refined) whose decoder starts the model, as biomed_clipseg_d; default: a random decoder, as biomed_clipseg." };
        var config = new Option<string?>("--config") { Description = "A BiomedCLIPSeg config.json with every size (as shared/parity/biomedclipseg-tiny's); default: BiomedCLIP's real architecture." };
        var vocab = new Option<string?>("--vocab") { Description = "PubMedBERT vocab.txt; default: the one beside the weights, else vlsm's embedded copy." };
        var seed = new Option<long?>("--seed") { Description = "Seed of the random decoder (default 42)." };
        var outDir = new Option<string>("--out") { Description = "Model folder to write (config.json, model.safetensors, vocab.txt).", Required = true };
        var cmd = new Command("biomedclip", "Build a BiomedCLIPSeg model folder from BiomedCLIP's weights (read without running their pickle) and a decoder.")
        {
            biomedclip, checkpoint, clipseg, config, vocab, seed, outDir,
        };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var r = BiomedClipConverter.Convert(new BiomedClipSources
            {
                BiomedClip = parse.GetValue(biomedclip),
                Checkpoint = parse.GetValue(checkpoint),
                ClipSeg = parse.GetValue(clipseg),
                Config = parse.GetValue(config),
                Vocab = parse.GetValue(vocab),
                Seed = parse.GetValue(seed) ?? 42,
            }, parse.GetValue(outDir)!);
            var c = r.Config;
            Console.WriteLine($"wrote {r.OutDir}: {r.Tensors} tensors; towers from {r.TowersFrom} (ViT width {c.Vision.Width} x {c.Vision.Depth}, BERT {c.Text.HiddenSize} x {c.Text.NumHiddenLayers}, embed {c.EmbedDim}); decoder from {r.DecoderFrom}");
            return 0;
        }));
        return cmd;
    }

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
