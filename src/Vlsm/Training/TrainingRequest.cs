using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.Registry;

namespace Vlsm.Training;

/// <summary>
/// What a user asks of <c>vlsm train</c>, as given (null: not given). <see cref="Prepare"/> applies the
/// merge and resume rules and yields the run's config and folder.
/// </summary>
public sealed record TrainingRequest
{
    public string? ConfigFile { get; init; }
    public string? Out { get; init; }
    public string? Resume { get; init; }
    public string? Preset { get; init; }
    public string? Model { get; init; }
    public string? Mode { get; init; }
    public IReadOnlyList<string>? Data { get; init; }
    public string? Parts { get; init; }
    public int? AdapterDim { get; init; }
    public int? CondAdapterDim { get; init; }
    public bool ZeroInit { get; init; }
    public bool FreezeText { get; init; }
    public int? Epochs { get; init; }
    public int? BatchSize { get; init; }
    public double? Lr { get; init; }
    public string? Prompt { get; init; }
    public int? Seed { get; init; }
    public string? Precision { get; init; }
    public string? Loss { get; init; }
    public string? MaskThreshold { get; init; }
    public bool Augment { get; init; }
    public bool NoFeatureCache { get; init; }
    public string? OnError { get; init; }
    /// <summary>Early stopping's patience in epochs (<c>early_stopping_patience</c>).</summary>
    public int? Patience { get; init; }
    public double? WeightDecay { get; init; }
    /// <summary>Read records through symbolic links out of the dataset folders (<c>follow_symlinks</c>).</summary>
    public bool FollowSymlinks { get; init; }
    /// <summary>The side images are resized to (<c>image_size</c>); null: the model's own size.</summary>
    public int? ImageSize { get; init; }
    /// <summary>Resume although the data differs from what the run recorded (passed to the <see cref="Trainer"/>).</summary>
    public bool AllowDataChange { get; init; }

    /// <summary>Family options by key (e.g. cris_pad_mask), as given.</summary>
    public IReadOnlyDictionary<string, string> FamilyOptions { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// The rules: <c>--resume RUN</c> continues that run with its own config.yaml; <c>--epochs</c> may
    /// raise its maximum (not lower it, once an epoch is done), and any other flag that would change
    /// the config is refused by name. A run folder with a config.yaml but no completed epoch (killed
    /// in its first epoch) starts again from that config. Otherwise start from <c>--config</c> or the
    /// defaults, apply <c>--preset</c>, then each flag given. <c>--mode</c> drops the preset and the
    /// adapter placements and takes the family's learning rate for that mode (unless <c>--lr</c> is
    /// given). A new run needs <c>--out</c> and a folder without a run in it. Model and data paths are
    /// stored absolute (as given, against the current directory), with the user's spelling kept for
    /// display. The result is checked (<see cref="TrainingPlan.Resolve"/>).
    /// </summary>
    /// <returns>The config, the run folder and whether it resumes.</returns>
    public (TrainConfig Config, RunFolder Run, bool Resume) Prepare()
    {
        var prepared = PrepareRun();
        return (prepared.Config, prepared.Run, prepared.Resume);
    }

    /// <summary>As <see cref="Prepare"/>, with a note for the user when the rules changed what was asked (a restart).</summary>
    public PreparedTraining PrepareRun()
    {
        if (Resume is { } resumeDir) return PrepareResume(resumeDir);
        var config = ConfigFile is { } file ? TrainConfig.FromYaml(file) : new TrainConfig();
        Apply(config);
        config.MakePathsAbsolute();
        string outDir = Out ?? throw new VlsmException("--out RUN is required: the folder where the run is written.");
        OutputFolder.RefuseFileOnPath(outDir, "--out");
        var run = new RunFolder(outDir);
        if (run.HasState) throw new VlsmException($"{run.Path} already holds a run; use --resume {outDir} to continue it, or another --out.");
        var plan = config.Validate();
        config.ImageSize ??= plan.Model.Input?.Side; // recorded, so the run folder says what size it trained at
        return new PreparedTraining(config, run, false, null);
    }

    private PreparedTraining PrepareResume(string resumeDir)
    {
        var run = new RunFolder(resumeDir);
        if (Out is { } o && new RunFolder(o).Path != run.Path)
            throw new VlsmException($"--out {o} and --resume {resumeDir} name different folders; a resumed run stays in its own folder (leave --out out).");
        if (ConfigFile is not null)
            throw new VlsmException($"--config is not used with --resume: {run.ConfigFile} is the run's config. Leave --config out, or start a new run with --config {run.ConfigFile} --out NEW.");
        if (!File.Exists(run.ConfigFile))
            throw new VlsmException(run.HasState
                ? $"{run.Path}: state.json but no config.yaml; the run cannot be resumed without its config."
                : $"{run.Path}: no config.yaml or state.json; nothing to resume (a run folder gets its config.yaml when it starts).");
        if (string.IsNullOrWhiteSpace(File.ReadAllText(run.ConfigFile)))
            throw new VlsmException($"{run.ConfigFile} is empty: the run's settings (model, data, mode, ...) are lost, so it cannot be resumed. "
                + "Restore config.yaml from a copy, or start a new run.");
        var saved = TrainConfig.FromYaml(run.ConfigFile);
        RefuseMissingRelativePaths(saved, run);
        saved.MakePathsAbsolute();

        var asked = saved.With(new Dictionary<string, object?>(), run.ConfigFile); // a copy, its paths already absolute
        Apply(asked);
        asked.MakePathsAbsolute();
        var changed = saved.Differences(asked).Where(d => d.Key is not ("max_epochs" or "model_as_given" or "data_as_given")).ToList();
        if (changed.Count > 0)
            throw new VlsmException($"--resume continues {run.Path} as its config.yaml says; the flags given would change "
                + string.Join(", ", changed.Select(d => $"{d.Key} ({d.Was} in config.yaml, {d.Now} asked)"))
                + $". Only --epochs may change on resume; to change the others, start a new run: vlsm train --config {run.ConfigFile} --out NEW ...");

        var state = run.HasState ? run.ReadState() : null;
        if (Epochs is { } epochs)
        {
            if (epochs < 1) throw new VlsmException($"--epochs {epochs}: give at least 1.");
            // Lowering could not be exact: a run started with the lower maximum may have stopped early (its minimum is lower) at an epoch this one has passed.
            if (state is not null && epochs < saved.MaxEpochs)
                throw new VlsmException($"--epochs {epochs}: resume can raise {run.Path}'s max_epochs ({saved.MaxEpochs}), not lower it "
                    + $"(it has completed {state.EpochsCompleted}); to stop it sooner, press Ctrl-C: it resumes from its last completed epoch.");
            saved.SetEpochs(epochs);
        }
        saved.Validate(run.ConfigFile); // only --epochs may differ from config.yaml, and it is checked above
        if (state is null)
            return new PreparedTraining(saved, run, false, $"{run.Path} has no completed epoch (it was stopped in its first); starting it again from its config.yaml.");
        return new PreparedTraining(saved, run, true, null);
    }

    /// <summary>A config.yaml of an older vlsm may hold relative paths (relative to where that run was started): refused by name when they do not resolve here.</summary>
    private static void RefuseMissingRelativePaths(TrainConfig config, RunFolder run)
    {
        foreach (var path in config.Data.Prepend(config.Model))
        {
            if (path.Length == 0 || Path.IsPathRooted(path) || Directory.Exists(path)) continue;
            throw new VlsmException($"{run.ConfigFile} gives the relative path {path} (written by an older vlsm), which is not found from {Environment.CurrentDirectory}; "
                + "run from the folder the run was started in, or make the path absolute in config.yaml.");
        }
    }

    /// <summary>Applies the preset, then each flag given, to <paramref name="config"/>.</summary>
    private void Apply(TrainConfig config)
    {
        if (Preset is { } name) config.ApplyPreset(name);
        if (Model is { } model)
        {
            config.Model = model;
            config.ModelAsGiven = null;
        }
        if (Mode is { } mode)
        {
            var parsed = FineTuneSpec.ParseMode(mode);
            config.Preset = null;
            config.Mode = mode;
            config.Parts = null;
            config.Lr = config.Model.Length > 0 ? ModelFamilies.ForFolder(config.Model).DefaultLearningRate(parsed) : ModelFamilies.All[0].DefaultLearningRate(parsed);
        }
        if (Data is { Count: > 0 } roots)
        {
            config.Data = roots.ToList();
            config.DataAsGiven = null;
        }
        if (Parts is { } p) config.Parts = p;
        if (AdapterDim is { } r) config.AdapterDim = r;
        if (CondAdapterDim is { } c) config.CondAdapterDim = c;
        if (ZeroInit) config.ZeroInitFc2 = true;
        if (FreezeText) config.FreezeText = true;
        if (Epochs is { } e) config.SetEpochs(e);
        if (BatchSize is { } b) config.BatchSize = b;
        if (Lr is { } l) config.Lr = l;
        if (WeightDecay is { } wd) config.WeightDecay = wd;
        if (Patience is { } patience) config.EarlyStoppingPatience = patience;
        if (Prompt is { } pr) config.Prompt = pr;
        if (Seed is { } s) config.Seed = s;
        if (Precision is { } pc) config.Precision = pc;
        if (Loss is { } ls) config.Loss = ls;
        if (MaskThreshold is { } mt) config.MaskThreshold = mt;
        if (Augment) config.Augment = true;
        if (NoFeatureCache) config.FeatureCache = false;
        if (OnError is { } oe) config.OnError = oe;
        if (FollowSymlinks) config.FollowSymlinks = true;
        if (ImageSize is { } side) config.ImageSize = side;
        config.SetFamilyOptions(FamilyOptions);
    }
}

/// <summary>What <see cref="TrainingRequest.PrepareRun"/> decided: the config, the folder, whether it resumes, and a note for the user (or null).</summary>
public sealed record PreparedTraining(TrainConfig Config, RunFolder Run, bool Resume, string? Notice);
