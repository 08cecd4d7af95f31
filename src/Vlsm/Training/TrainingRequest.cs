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

    /// <summary>Family options by key (e.g. cris_pad_mask), as given.</summary>
    public IReadOnlyDictionary<string, string> FamilyOptions { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// The rules: <c>--resume RUN</c> continues that run with its own config.yaml (other flags do not
    /// change a run); otherwise start from <c>--config</c> or the defaults, apply <c>--preset</c>, then each
    /// flag given. <c>--mode</c> drops the preset and the adapter placements and takes the family's
    /// learning rate for that mode (unless <c>--lr</c> is given). A new run needs <c>--out</c> and a
    /// folder without a run in it. The result is checked (<see cref="TrainingPlan.Resolve"/>).
    /// </summary>
    /// <returns>The config, the run folder and whether it resumes.</returns>
    public (TrainConfig Config, RunFolder Run, bool Resume) Prepare()
    {
        if (Resume is { } resumeDir)
        {
            var resumed = new RunFolder(resumeDir);
            if (!resumed.HasState) throw new VlsmException($"{resumed.Path}: no state.json; nothing to resume (a run folder gets one after its first epoch).");
            return (TrainConfig.FromYaml(resumed.ConfigFile), resumed, true);
        }
        var config = ConfigFile is { } file ? TrainConfig.FromYaml(file) : new TrainConfig();
        if (Preset is { } name) config.ApplyPreset(name);
        if (Model is { } model) config.Model = model;
        if (Mode is { } mode)
        {
            var parsed = FineTuneSpec.ParseMode(mode);
            config.Preset = null;
            config.Mode = mode;
            config.Parts = null;
            config.Lr = config.Model.Length > 0 ? ModelFamilies.ForFolder(config.Model).DefaultLearningRate(parsed) : ModelFamilies.All[0].DefaultLearningRate(parsed);
        }
        if (Data is { Count: > 0 } roots) config.Data = roots.ToList();
        if (Parts is { } p) config.Parts = p;
        if (AdapterDim is { } r) config.AdapterDim = r;
        if (CondAdapterDim is { } c) config.CondAdapterDim = c;
        if (ZeroInit) config.ZeroInitFc2 = true;
        if (FreezeText) config.FreezeText = true;
        if (Epochs is { } e) config.SetEpochs(e);
        if (BatchSize is { } b) config.BatchSize = b;
        if (Lr is { } l) config.Lr = l;
        if (Prompt is { } pr) config.Prompt = pr;
        if (Seed is { } s) config.Seed = s;
        if (Precision is { } pc) config.Precision = pc;
        if (Loss is { } ls) config.Loss = ls;
        if (MaskThreshold is { } mt) config.MaskThreshold = mt;
        if (Augment) config.Augment = true;
        if (NoFeatureCache) config.FeatureCache = false;
        if (OnError is { } oe) config.OnError = oe;
        config.SetFamilyOptions(FamilyOptions);
        string outDir = Out ?? throw new VlsmException("--out RUN is required: the folder where the run is written.");
        var run = new RunFolder(outDir);
        if (run.HasState) throw new VlsmException($"{run.Path} already holds a run; use --resume {outDir} to continue it, or another --out.");
        config.Validate();
        return (config, run, false);
    }
}
