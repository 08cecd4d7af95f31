using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Training;

namespace Vlsm.Cli.Commands;

internal static class TrainCommand
{
    public static Command Build()
    {
        var model = new Option<string?>("--model") { Description = "Model folder to fine-tune, of any family vlsm knows (config.json's model_type)." };
        var data = new Option<string[]>("--data") { Description = "Dataset root (medvlsm layout); repeat to pool datasets.", AllowMultipleArgumentsPerToken = false };
        var preset = new Option<string?>("--preset") { Description = $"Reference experiment: {string.Join(", ", Models.Registry.ModelFamilies.Presets.Select(p => p.Name))}." };
        var mode = new Option<string?>("--mode") { Description = "shallow, dense, decoder or full (instead of --preset); CRIS, UNet, UNet++, DeepLabV3+: full or decoder; SAN: full. Without --preset or --mode: dense VLC (dense adapters on vision, language and conditioning; the default)." };
        var parts = new Option<string?>("--parts") { Description = "Adapter placements for shallow/dense: any of v, l, c." };
        var adapterDim = new Option<int?>("--adapter-dim") { Description = "Adapter width (default 512 shallow, 64 dense)." };
        var condDim = new Option<int?>("--cond-adapter-dim") { Description = "Conditional adapter width (default 256)." };
        var zeroInit = new Option<bool>("--zero-init") { Description = "Zero-initialise each adapter's fc2 so training starts from the base model." };
        var freezeText = new Option<bool>("--freeze-text") { Description = "Full mode: keep the text tower fixed and train vision and decoder (for training from scratch)." };
        var epochs = new Option<int?>("--epochs") { Description = "Maximum epochs (default 200); also lowers the minimum (10) to it when smaller." };
        var batch = new Option<int?>("--batch-size") { Description = "Batch size (default 32)." };
        var lr = new Option<double?>("--lr") { Description = "Learning rate (default by mode: shallow 3e-4, dense 1e-3, decoder 1e-3, full 1e-5; CRIS full 1e-4)." };
        var prompt = new Option<string?>("--prompt") { Description = "Prompt key (p3), random (p1..pN per sample, default) or literal text." };
        var seed = new Option<int?>("--seed") { Description = $"Seed for initialisation, shuffling and prompt choice (default {Defaults.Seed}, as every vlsm command)." };
        var weightDecay = new Option<double?>("--weight-decay") { Description = "AdamW weight decay, >= 0 (default 1e-3, or the preset's)." };
        var patience = new Option<int?>("--patience") { Description = "Early stopping: epochs without a better validation Dice before the run stops, >= 0 (default 20, or the preset's)." };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads, 1 to 4 per core (at least 64 allowed; default: the cores). Results are identical for the same thread count." };
        var allowDataChange = new Option<bool>("--allow-data-change") { Description = "With --resume: continue although the data's records or annotation files differ from what the run started on." };
        var precision = new Option<string?>("--precision") { Description = "fp32 (default) or bf16." };
        var loss = new Option<string?>("--loss") { Description = $"reference (default: as the Python reference, sigmoid fed to BCE-with-logits), or one of {string.Join(", ", SegmentationLosses.Names.Where(n => n != "reference"))}." };
        var maskThreshold = new Option<string?>("--mask-threshold") { Description = "Mask pixels above this value are foreground (default 127); \"soft\" keeps value/255 targets." };
        var augment = new Option<bool>("--augment") { Description = "Flips, rotation, scale and colour jitter (off by default, as in the reference)." };
        var onError = new Option<string?>("--on-error") { Description = "fail (default) stops at an unusable record (e.g. image and mask sizes differ); skip skips and counts it." };
        var noCache = new Option<bool>("--no-feature-cache") { Description = "Recompute frozen tower outputs every epoch." };
        var imageSize = ModelOptions.ImageSize("recorded as image_size in config.yaml, which eval and predict --run use.");
        var familyFlags = ModelOptions.FamilyOptionFlags(training: true);
        var configFile = new Option<string?>("--config") { Description = "A run's config.yaml; flags override it." };
        var output = new Option<string?>("--out") { Description = "Run folder to create." };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder after its last completed epoch; --epochs N raises its maximum (as if it had started with N); other flags are refused." };
        var cmd = new Command("train", "Fine-tune CLIPSeg with adapters (or decoder/full), CRIS (full/decoder), SAN (its side network), BiomedCLIPSeg, or train the image-only UNet, UNet++ and DeepLabV3+ baselines, on medvlsm-format datasets.")
        {
            model, data, preset, mode, parts, adapterDim, condDim, zeroInit, freezeText, epochs, batch, lr, prompt, seed, precision, loss,
            maskThreshold, augment, onError, noCache, imageSize, configFile, output, resume, weightDecay, patience, threads, allowDataChange,
        };
        foreach (var flag in familyFlags) cmd.Options.Add(flag);
        var followSymlinks = DataOptions.FollowSymlinks(); // recorded as follow_symlinks in config.yaml, so --resume reads the data as the run started
        cmd.Options.Add(followSymlinks);
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
                WeightDecay = parse.GetValue(weightDecay),
                Patience = parse.GetValue(patience),
                AllowDataChange = parse.GetValue(allowDataChange),
                FollowSymlinks = parse.GetValue(followSymlinks),
                ImageSize = parse.GetValue(imageSize),
                FamilyOptions = ModelOptions.FamilyOptions(parse, familyFlags),
            };
            if (parse.GetValue(threads) is { } n) torch.set_num_threads(TrainingThreads.Check(n));
            return Train(request);
        }));
        return cmd;
    }

    private static int Train(TrainingRequest request)
    {
        // The folder's lock first: a second process on a folder in use is told who uses it, whatever state the folder is in.
        if ((request.Resume ?? request.Out) is { } folder && Directory.Exists(folder)) FolderLock.ThrowIfHeld(folder);
        var prepared = request.PrepareRun();
        using var held = FolderLock.Acquire(prepared.Run.Path, "train", "--out");
        var (config, run, resuming) = (prepared.Config, prepared.Run, prepared.Resume);
        if (request.Resume is null && request.ConfigFile is null && request.Preset is null && request.Mode is null)
            Console.WriteLine($"mode: dense VLC adapters (the default; choose with --preset or --mode)");
        if (prepared.Notice is { } notice) Console.WriteLine(notice);
        if (ComputePrecisions.Parse(config.Precision) == ComputePrecision.Bf16) ModelOptions.NoteIfBf16IsSlow();

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return; // a second Ctrl-C stops at once
            e.Cancel = true;
            cancel.Cancel();
            // On a terminal the live view is being drawn; a line written under it would be torn, and the summary follows shortly.
            if (!ProgressReporter.Interactive)
                Console.Error.WriteLine("stopping: the current step finishes, the epoch is abandoned, the last completed epoch is kept (Ctrl-C again to stop at once)...");
        };
        Console.CancelKeyPress += onCancel;
        var trainer = (ITrainingObserver observer) => new Trainer(config, run, observer, runLock: held) { AllowDataChange = request.AllowDataChange };
        TrainResult result;
        try
        {
            if (ProgressReporter.Interactive)
            {
                TrainResult? r = null;
                AnsiConsole.Progress().AutoClear(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx => r = trainer(new TrainingObservers.LiveObserver(ctx)).Run(resuming, cancel.Token));
                result = r!;
            }
            else
            {
                result = trainer(new TrainingObservers.LogObserver()).Run(resuming, cancel.Token);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            Interrupted(run);
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        Console.WriteLine($"done: {result.EpochsCompleted} epochs, best validation Dice {result.BestValDice:0.0000} at epoch {result.BestEpoch}"
            + (result.StartValDice is { } start ? $" (before training {start:0.0000})" : "") + $"; {result.StopReason}; weights in {run.BestFile}");
        return 0;
    }

    /// <summary>After Ctrl-C: the cursor back, what was kept, and the command that continues.</summary>
    private static void Interrupted(RunFolder run)
    {
        ProgressReporter.RestoreTerminal(); // show the cursor the live view hid
        string command = $"vlsm train --resume {ShellQuote(run.Path)}";
        if (run.HasState)
        {
            var state = run.ReadState();
            Console.Error.WriteLine($"interrupted: {run.Path} keeps epoch {state.EpochsCompleted}, its last completed one. Continue with:");
        }
        else
        {
            Console.Error.WriteLine($"interrupted before the first epoch completed: {run.Path} keeps its config.yaml. Start it again with:");
        }
        Console.Error.WriteLine($"  {command}");
    }

    /// <summary>A path as a POSIX shell reads it back: bare when it is plain, else in single quotes.</summary>
    internal static string ShellQuote(string path) =>
        path.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or '+' or ',' or ':' or '@' or '%')
            ? path
            : "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
