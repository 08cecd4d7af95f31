using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using Vlsm.Training;

namespace Vlsm.Cli.Commands;

internal static class TrainCommand
{
    public static Command Build()
    {
        var model = new Option<string?>("--model") { Description = "Model folder to fine-tune, of any family vlsm knows (config.json's model_type)." };
        var data = new Option<string[]>("--data") { Description = "Dataset root (medvlsm layout); repeat to pool datasets.", AllowMultipleArgumentsPerToken = false };
        var preset = new Option<string?>("--preset") { Description = $"Reference experiment: {string.Join(", ", Models.Registry.ModelFamilies.Presets.Select(p => p.Name))}." };
        var mode = new Option<string?>("--mode") { Description = "shallow, dense, decoder or full (instead of --preset); CRIS, UNet, UNet++, DeepLabV3+: full or decoder; SAN: full." };
        var parts = new Option<string?>("--parts") { Description = "Adapter placements for shallow/dense: any of v, l, c." };
        var adapterDim = new Option<int?>("--adapter-dim") { Description = "Adapter width (default 512 shallow, 64 dense)." };
        var condDim = new Option<int?>("--cond-adapter-dim") { Description = "Conditional adapter width (default 256)." };
        var zeroInit = new Option<bool>("--zero-init") { Description = "Zero-initialise each adapter's fc2 so training starts from the base model." };
        var freezeText = new Option<bool>("--freeze-text") { Description = "Full mode: keep the text tower fixed and train vision and decoder (for training from scratch)." };
        var epochs = new Option<int?>("--epochs") { Description = "Maximum epochs (default 200); also lowers the minimum (10) to it when smaller." };
        var batch = new Option<int?>("--batch-size") { Description = "Batch size (default 32)." };
        var lr = new Option<double?>("--lr") { Description = "Learning rate (default by mode: shallow 3e-4, dense 1e-3, decoder 1e-3, full 1e-5; CRIS full 1e-4)." };
        var prompt = new Option<string?>("--prompt") { Description = "Prompt key (p3), random (p1..pN per sample, default) or literal text." };
        var seed = new Option<int?>("--seed") { Description = "Seed for initialisation, shuffling and prompt choice (default 42)." };
        var precision = new Option<string?>("--precision") { Description = "fp32 (default) or bf16." };
        var loss = new Option<string?>("--loss") { Description = $"reference (default: as the Python reference, sigmoid fed to BCE-with-logits), or one of {string.Join(", ", SegmentationLosses.Names.Where(n => n != "reference"))}." };
        var maskThreshold = new Option<string?>("--mask-threshold") { Description = "Mask pixels above this value are foreground (default 127); \"soft\" keeps value/255 targets." };
        var augment = new Option<bool>("--augment") { Description = "Flips, rotation, scale and colour jitter (off by default, as in the reference)." };
        var onError = new Option<string?>("--on-error") { Description = "fail (default) stops at an unusable record (e.g. image and mask sizes differ); skip skips and counts it." };
        var noCache = new Option<bool>("--no-feature-cache") { Description = "Recompute frozen tower outputs every epoch." };
        var familyFlags = ModelOptions.FamilyOptionFlags(training: true);
        var configFile = new Option<string?>("--config") { Description = "A run's config.yaml; flags override it." };
        var output = new Option<string?>("--out") { Description = "Run folder to create." };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder after its last completed epoch." };
        var cmd = new Command("train", "Fine-tune CLIPSeg with adapters (or decoder/full), CRIS (full/decoder), SAN (its side network), BiomedCLIPSeg, or train the image-only UNet, UNet++ and DeepLabV3+ baselines, on medvlsm-format datasets.")
        {
            model, data, preset, mode, parts, adapterDim, condDim, zeroInit, freezeText, epochs, batch, lr, prompt, seed, precision, loss,
            maskThreshold, augment, onError, noCache, configFile, output, resume,
        };
        foreach (var flag in familyFlags) cmd.Options.Add(flag);
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var request = new TrainingRequest
            {
                ConfigFile = parse.GetValue(configFile),
                Out = parse.GetValue(output),
                Resume = parse.GetValue(resume),
                Preset = parse.GetValue(preset),
                Model = parse.GetValue(model),
                Mode = parse.GetValue(mode),
                Data = parse.GetValue(data),
                Parts = parse.GetValue(parts),
                AdapterDim = parse.GetValue(adapterDim),
                CondAdapterDim = parse.GetValue(condDim),
                ZeroInit = parse.GetValue(zeroInit),
                FreezeText = parse.GetValue(freezeText),
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch),
                Lr = parse.GetValue(lr),
                Prompt = parse.GetValue(prompt),
                Seed = parse.GetValue(seed),
                Precision = parse.GetValue(precision),
                Loss = parse.GetValue(loss),
                MaskThreshold = parse.GetValue(maskThreshold),
                Augment = parse.GetValue(augment),
                NoFeatureCache = parse.GetValue(noCache),
                OnError = parse.GetValue(onError),
                FamilyOptions = ModelOptions.FamilyOptions(parse, familyFlags),
            };
            var (config, run, resuming) = request.Prepare();
            TrainResult result;
            if (ProgressReporter.Interactive)
            {
                TrainResult? r = null;
                AnsiConsole.Progress().AutoClear(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx => r = new Trainer(config, run, new TrainingObservers.LiveObserver(ctx)).Run(resuming));
                result = r!;
            }
            else
            {
                result = new Trainer(config, run, new TrainingObservers.LogObserver()).Run(resuming);
            }
            Console.WriteLine($"done: {result.EpochsCompleted} epochs, best validation Dice {result.BestValDice:0.0000} at epoch {result.BestEpoch + 1}"
                + (result.StartValDice is { } start ? $" (before training {start:0.0000})" : "") + $"; {result.StopReason}; weights in {run.BestFile}");
            return 0;
        }));
        return cmd;
    }
}
