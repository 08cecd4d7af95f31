using System.CommandLine;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Models.Cris;
using Vlsm.Models.San;
using Vlsm.Models.Smp;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm convert …</c>: checkpoints in other formats to model folders.</summary>
internal static class ConvertCommand
{
    public static Command Build() => new("convert", "Convert checkpoints to model folders (safetensors + config.json).")
    {
        BuildCris(),
        BuildSan(),
        BuildBiomedClip(),
        BuildSmp(),
    };

    private static Command BuildSan()
    {
        var clip = new Option<string?>("--clip") { Description = "OpenAI's CLIP weights as open_clip downloads them (ViT-B-16.pt, a TorchScript archive): a SAN to train, its side network initialised as the reference does." };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "A trained SAN: the benchmark's Lightning .ckpt (keys net.*) or a torch.save state dict." };
        var config = new Option<string?>("--config") { Description = "SAN config.json (model_type san, a net object as configs/model/san.yaml); default: the benchmark's SAN (ViT-B/16 CLIP, 640 px)." };
        var seed = new Option<long>("--seed") { Description = "Seed of the side network's initialisation (with --clip).", DefaultValueFactory = _ => 42 };
        var outDir = new Option<string>("--out") { Description = "Model folder to write, new or empty (model.safetensors, config.json, vocab.json, merges.txt).", Required = true };
        var cmd = new Command("san", "Make a SAN model folder from OpenAI's CLIP archive or from a trained SAN checkpoint, read without running their pickles.") { clip, checkpoint, config, seed, outDir };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string? clipFile = parse.GetValue(clip), ckpt = parse.GetValue(checkpoint);
            if ((clipFile is null) == (ckpt is null))
                throw new VlsmException("give exactly one of --clip ViT-B-16.pt (CLIP weights, a new side network) or --checkpoint FILE (a trained SAN).");
            var r = clipFile is not null
                ? SanConverter.FromClip(clipFile, parse.GetValue(config), parse.GetValue(outDir)!, parse.GetValue(seed))
                : SanConverter.FromCheckpoint(ckpt!, parse.GetValue(config), parse.GetValue(outDir)!);
            var c = r.Config;
            Console.WriteLine($"wrote {r.OutDir}: {r.Tensors} tensors, {r.FromSource} from {r.Source}"
                + (clipFile is not null ? $", the side network initialised (seed {parse.GetValue(seed)})" : "")
                + (r.StrippedPrefix is not null ? $" ({r.StrippedPrefix} prefix removed)" : "")
                + (r.AliasesChecked > 0 ? $"; {r.AliasesChecked} aliased CLIP copies checked equal and left out" : "")
                + (r.DroppedKeys.Count > 0 ? $"; left out {string.Join(", ", r.DroppedKeys)}" : "")
                + (r.SkippedObjects.Count > 0 ? $"; objects beside the state dict not read: {string.Join(", ", r.SkippedObjects)}" : "")
                + $"; CLIP ViT {c.Clip.VisionLayers}x{c.Clip.VisionWidth}/{c.Clip.PatchSize}, side {c.Side.Depth}x{c.Side.EmbedDim}, {c.ImageHeight} px");
            return 0;
        }));
        return cmd;
    }

    private static Command BuildBiomedClip()
    {
        var biomedclip = new Option<string?>("--biomedclip") { Description = "BiomedCLIP as distributed: the folder with open_clip_config.json and open_clip_pytorch_model.bin (or open_clip_model.safetensors)." };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Instead of --biomedclip: a medvlsm BiomedCLIPSeg checkpoint (Lightning .ckpt or torch.save state dict; the net. prefix is removed)." };
        var clipseg = new Option<string?>("--clipseg") { Description = "An HF CLIPSeg folder (e.g. clipseg-rd64-refined) whose decoder starts the model, as biomed_clipseg_d; default: a random decoder, as biomed_clipseg." };
        var config = new Option<string?>("--config") { Description = "A BiomedCLIPSeg config.json with every size (as shared/parity/biomedclipseg-tiny's); default: BiomedCLIP's real architecture." };
        var vocab = new Option<string?>("--vocab") { Description = "PubMedBERT vocab.txt; default: the one beside the weights, else vlsm's embedded copy." };
        var seed = new Option<long?>("--seed") { Description = "Seed of the random decoder (default 42)." };
        var outDir = new Option<string>("--out") { Description = "Model folder to write, new or empty (config.json, model.safetensors, vocab.txt).", Required = true };
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

    private static Command BuildSmp()
    {
        var checkpoint = new Option<string>("--checkpoint")
        {
            Description = "A medvlsm UNet/UNet++/DeepLabV3+ Lightning checkpoint (.ckpt/.pth; its net. prefix is removed and its other entries are skipped without running them), or an smp state dict.",
            Required = true,
        };
        var config = new Option<string?>("--config") { Description = "The model's config.json (model_type unet, unetplusplus or deeplabv3plus, encoder, decoder, classes); default: config.json beside the checkpoint." };
        var outDir = new Option<string>("--out") { Description = "Model folder to write, new or empty (model.safetensors, config.json).", Required = true };
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
        + (r.AddedStepCounters > 0 ? $"; {r.AddedStepCounters} missing num_batches_tracked set to 0" : "")
        + (r.SkippedObjects.Count > 0 ? $"; objects beside the state dict not read: {string.Join(", ", r.SkippedObjects)}" : "");

    private static Command BuildCris()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "CRIS checkpoint as torch.save wrote it (.pth/.bin state dict; a module. prefix is removed).", Required = true };
        var config = new Option<string?>("--config") { Description = "CRIS config.json (\"clip\" and \"cris\" objects); default: config.json beside the checkpoint." };
        var outDir = new Option<string>("--out") { Description = "Model folder to write, new or empty (model.safetensors, config.json, vocab.json, merges.txt).", Required = true };
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
