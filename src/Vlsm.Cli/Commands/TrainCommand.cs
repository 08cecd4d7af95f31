using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using Vlsm.Training;

namespace Vlsm.Cli.Commands;

internal static class TrainCommand
{
    public static Command Build()
    {
        var model = new Option<string?>("--model") { Description = "Model folder to fine-tune: HF CLIPSeg, or CRIS (full or decoder mode)." };
        var data = new Option<string[]>("--data") { Description = "Dataset root (medvlsm layout); repeat to pool datasets.", AllowMultipleArgumentsPerToken = false };
        var preset = new Option<string?>("--preset") { Description = $"Reference experiment: {string.Join(", ", TrainConfig.Presets.Keys)}." };
        var mode = new Option<string?>("--mode") { Description = "shallow, dense, decoder or full (instead of --preset); CRIS: full or decoder." };
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
        var loss = new Option<string?>("--loss") { Description = "reference (default: as the Python reference, sigmoid fed to BCE-with-logits) or dice-bce." };
        var maskThreshold = new Option<string?>("--mask-threshold") { Description = "Mask pixels above this value are foreground (default 127); \"soft\" keeps value/255 targets." };
        var augment = new Option<bool>("--augment") { Description = "Flips, rotation, scale and colour jitter (off by default, as in the reference)." };
        var onError = new Option<string?>("--on-error") { Description = "fail (default) stops at an unusable record (e.g. image and mask sizes differ); skip skips and counts it." };
        var noCache = new Option<bool>("--no-feature-cache") { Description = "Recompute frozen tower outputs every epoch." };
        var padMask = ModelOptions.CrisPadMask();
        var configFile = new Option<string?>("--config") { Description = "A run's config.yaml; flags override it." };
        var output = new Option<string?>("--out") { Description = "Run folder to create." };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder after its last completed epoch." };
        var cmd = new Command("train", "Fine-tune CLIPSeg with adapters (or decoder/full), or CRIS (full/decoder), on medvlsm-format datasets.")
        {
            model, data, preset, mode, parts, adapterDim, condDim, zeroInit, freezeText, epochs, batch, lr, prompt, seed, precision, loss,
            maskThreshold, augment, onError, noCache, padMask, configFile, output, resume,
        };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            TrainConfig config;
            RunFolder run;
            bool resuming = parse.GetValue(resume) is not null;
            if (resuming)
            {
                run = new RunFolder(parse.GetValue(resume)!);
                if (!run.HasState) throw new VlsmException($"{run.Path}: no state.json; nothing to resume (a run folder gets one after its first epoch).");
                config = TrainConfig.FromYaml(run.ConfigFile);
            }
            else
            {
                config = parse.GetValue(configFile) is { } file ? TrainConfig.FromYaml(file) : new TrainConfig();
                if (parse.GetValue(preset) is { } name) config.ApplyPreset(name);
                if (parse.GetValue(model) is { } md) config.Model = md;
                if (parse.GetValue(mode) is { } m)
                {
                    config.Preset = null;
                    config.Mode = m;
                    config.Parts = null;
                    config.Lr = TrainConfig.DefaultLr(Adapters.FineTuneSpec.ParseMode(m), Models.Cris.CrisLoader.IsCrisFolder(config.Model));
                }
                if (parse.GetValue(data) is { Length: > 0 } roots) config.Data = roots.ToList();
                if (parse.GetValue(parts) is { } p) config.Parts = p;
                if (parse.GetValue(adapterDim) is { } r) config.AdapterDim = r;
                if (parse.GetValue(condDim) is { } c) config.CondAdapterDim = c;
                if (parse.GetValue(zeroInit)) config.ZeroInitFc2 = true;
                if (parse.GetValue(freezeText)) config.FreezeText = true;
                if (parse.GetValue(epochs) is { } e) config.SetEpochs(e);
                if (parse.GetValue(batch) is { } b) config.BatchSize = b;
                if (parse.GetValue(lr) is { } l) config.Lr = l;
                if (parse.GetValue(prompt) is { } pr) config.Prompt = pr;
                if (parse.GetValue(seed) is { } s) config.Seed = s;
                if (parse.GetValue(precision) is { } pc) config.Precision = pc;
                if (parse.GetValue(loss) is { } ls) config.Loss = ls;
                if (parse.GetValue(maskThreshold) is { } mt) config.MaskThreshold = mt;
                if (parse.GetValue(augment)) config.Augment = true;
                if (parse.GetValue(noCache)) config.FeatureCache = false;
                if (parse.GetValue(onError) is { } oe) config.OnError = oe;
                if (parse.GetValue(padMask) is { } pm) config.CrisPadMask = pm;
                string outDir = parse.GetValue(output) ?? throw new VlsmException("--out RUN is required: the folder where the run is written.");
                run = new RunFolder(outDir);
                if (run.HasState) throw new VlsmException($"{run.Path} already holds a run; use --resume {outDir} to continue it, or another --out.");
                config.Validate();
            }
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
