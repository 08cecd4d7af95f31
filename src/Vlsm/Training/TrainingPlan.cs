using System.Globalization;
using Vlsm.Data;
using Vlsm.Models;
using Vlsm.Models.Registry;

namespace Vlsm.Training;

/// <summary>
/// A training run resolved from its <see cref="TrainConfig"/>: typed, checked once, with the model's
/// family found. Everything downstream (the session, the recorders, the bench) reads this.
/// </summary>
public sealed record TrainingPlan(
    ModelSection Model,
    DataSection Data,
    OptimizationSection Optimization,
    ScheduleSection Schedule,
    ISegmentationLoss Loss,
    int Seed,
    CacheSection Cache)
{
    /// <summary>Resolves and checks <paramref name="config"/>; reads the model folder's config.json to find its family.</summary>
    /// <param name="configFile">
    /// The file every value came from (a run's config.yaml, on resume), or null when flags may have set
    /// them: a message then names that file and the field, not a flag the user never gave.
    /// </param>
    /// <exception cref="VlsmException">A value is missing or out of range, or the family cannot train as asked; the message names the field.</exception>
    public static TrainingPlan Resolve(TrainConfig config, string? configFile = null)
    {
        if (configFile is null) return Resolve(config, flag: name => $" ({name})", imageSizeSource: null);
        try
        {
            return Resolve(config, flag: _ => "", imageSizeSource: configFile);
        }
        catch (VlsmException e) when (!e.Message.StartsWith(configFile, StringComparison.Ordinal))
        {
            throw new VlsmException($"{configFile}: {e.Message}", e);
        }
    }

    /// <param name="flag">What a message adds after a field's name to say which flag sets it: " (--lr)", or nothing when the value came from a file.</param>
    private static TrainingPlan Resolve(TrainConfig config, Func<string, string> flag, string? imageSizeSource)
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new VlsmException(message);
        }
        static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        Check(config.Model.Length > 0, $"model: no model folder given{flag("--model DIR")}.");
        Check(config.Data.Count > 0, $"data: no dataset given{flag("--data ROOT")}.");
        var loss = SegmentationLosses.Create(config.Loss);
        Check(config.Scheduler is "plateau" or "none", $"scheduler \"{config.Scheduler}\" is not one of plateau (ReduceLROnPlateau on validation loss), none (a constant learning rate).");

        Check(config.MaxEpochs >= 1, $"max_epochs{flag("--epochs")} must be at least 1, got {config.MaxEpochs}.");
        Check(config.MinEpochs >= 0, $"min_epochs must be at least 0, got {config.MinEpochs}.");
        Check(config.BatchSize >= 1, $"batch_size{flag("--batch-size")} must be at least 1, got {config.BatchSize}.");
        Check(config.Lr > 0 && double.IsFinite(config.Lr), $"lr{flag("--lr")} must be a positive number, got {F(config.Lr)}.");
        Check(config.WeightDecay >= 0 && double.IsFinite(config.WeightDecay), $"weight_decay{flag("--weight-decay")} must be in [0, inf), got {F(config.WeightDecay)}.");
        Check(config.Beta1 is >= 0 and < 1, $"beta1 must be in [0, 1), got {F(config.Beta1)}.");
        Check(config.Beta2 is >= 0 and < 1, $"beta2 must be in [0, 1), got {F(config.Beta2)}.");
        Check(config.Eps > 0 && double.IsFinite(config.Eps), $"eps must be positive (AdamW divides by sqrt(v) + eps), got {F(config.Eps)}.");
        Check(config.GradClip > 0 && double.IsFinite(config.GradClip), $"grad_clip must be a positive number, got {F(config.GradClip)}.");
        Check(config.PlateauFactor is > 0 and < 1, $"plateau_factor must be in (0, 1) (the learning rate is multiplied by it), got {F(config.PlateauFactor)}.");
        Check(config.PlateauPatience >= 0, $"plateau_patience must be at least 0, got {config.PlateauPatience}.");
        Check(config.PlateauThreshold >= 0 && double.IsFinite(config.PlateauThreshold), $"plateau_threshold must be in [0, inf) (relative), got {F(config.PlateauThreshold)}.");
        Check(config.EarlyStoppingPatience >= 0, $"early_stopping_patience must be at least 0{flag("--patience")}, got {config.EarlyStoppingPatience}.");
        Check(config.EarlyStoppingMinDelta >= 0 && double.IsFinite(config.EarlyStoppingMinDelta), $"early_stopping_min_delta must be in [0, inf), got {F(config.EarlyStoppingMinDelta)}.");
        Check(config.FeatureCacheMemoryMb >= 0, $"feature_cache_memory_mb must be at least 0 (0 keeps the cache on disk only), got {config.FeatureCacheMemoryMb}.");
        Check(config.TrainSplit.Length > 0 && config.ValSplit.Length > 0, "train_split and val_split must name splits (e.g. train, val).");
        Check(config.OnError is "fail" or "skip", $"on_error \"{config.OnError}\" is not one of fail, skip.");
        bool soft = config.MaskThreshold == "soft";
        int threshold = 127;
        Check(soft || (int.TryParse(config.MaskThreshold, NumberStyles.Integer, CultureInfo.InvariantCulture, out threshold) && threshold is >= 0 and < 255),
            $"mask_threshold \"{config.MaskThreshold}\" must be an integer 0..254 or \"soft\".");

        Check(config.Precision is "fp32" or "bf16", $"precision \"{config.Precision}\" is not one of fp32, bf16.");
        FineTuneSpec.ParseMode(config.Mode);

        // Checks that need the model's family come last: the ones above hold for every family.
        var family = ModelFamilies.ForFolder(config.Model);

        var mode = FineTuneSpec.ParseMode(config.Mode);
        if (config.Preset is { } preset)
        {
            var (presetFamily, _) = ModelFamilies.Preset(preset);
            Check(presetFamily == family, $"preset {preset} is a {presetFamily.Name} experiment; {config.Model} is a {family.Name} model (its presets: {string.Join(", ", family.Presets.Keys)}).");
        }
        FamilyChecks.Mode(family, mode);
        var spec = family.CheckSpec(mode is FineTuneMode.Shallow or FineTuneMode.Dense
            ? FineTuneSpec.Create(mode, config.Parts, config.AdapterDim, config.CondAdapterDim, config.ZeroInitFc2)
            : FineTuneSpec.Create(mode, freezeText: config.FreezeText));
        var precision = FamilyChecks.TrainingPrecision(family, ComputePrecisions.Parse(config.Precision));
        var options = ModelFamilies.CheckOptions(family, config.Model, config.FamilyOptions());
        var input = FamilyChecks.ImageSize(family, config.Model, config.ImageSize, imageSizeSource);

        PromptChoice? prompt;
        if (family.TakesText)
        {
            prompt = PromptChoice.Parse(config.Prompt);
        }
        else
        {
            Check(config.Prompt == PromptChoice.RandomSpec, $"prompt \"{config.Prompt}\": {family.Name} models read no text; leave --prompt out.");
            prompt = null;
        }

        return new TrainingPlan(
            new ModelSection(config.Model, family, spec, precision, options) { Input = input },
            new DataSection(config.Data, config.TrainSplit, config.ValSplit, prompt, soft ? MaskMode.Soft : MaskMode.Binary, soft ? 127 : threshold,
                config.Augment, config.OnError == "skip" ? OnError.Skip : OnError.Fail) { FollowSymlinks = config.FollowSymlinks },
            new OptimizationSection(config.BatchSize, config.Lr, config.Beta1, config.Beta2, config.Eps, config.WeightDecay, config.GradClip),
            ScheduleSection.Of(config),
            loss,
            config.Seed,
            new CacheSection(config.FeatureCache, (long)config.FeatureCacheMemoryMb << 20));
    }
}

/// <summary>The model to train: its folder and family, what trains, precision, the family's options and the input size.</summary>
public sealed record ModelSection(string Directory, IModelFamily Family, FineTuneSpec Spec, ComputePrecision Precision, IReadOnlyDictionary<string, string> Options)
{
    /// <summary>The size images are resized to (<c>image_size</c>, checked); null: the model's own, unchecked (a plan built by hand).</summary>
    public InputSize? Input { get; init; }

    public ModelRequest Request => new() { Directory = Directory, Precision = Precision, Options = Options, ImageSize = Input?.Resize };
}

/// <summary>Datasets, splits, how each sample's prompt is chosen (null for text-free families), and how masks and records are read.</summary>
public sealed record DataSection(IReadOnlyList<string> Roots, string TrainSplit, string ValSplit, PromptChoice? Prompt, MaskMode MaskMode, int MaskThreshold, bool Augment, OnError OnError)
{
    /// <summary>Whether records may be read through symbolic links out of their dataset folder (<see cref="MedvlsmDataset.FollowSymlinks"/>); the run's own setting, not the process default.</summary>
    public bool FollowSymlinks { get; init; }
}

public sealed record OptimizationSection(int BatchSize, double Lr, double Beta1, double Beta2, double Eps, double WeightDecay, double GradClip);

/// <summary>Epoch bounds, ReduceLROnPlateau on validation loss (unless <paramref name="Plateau"/> is false: a constant rate), early stopping on validation Dice.</summary>
public sealed record ScheduleSection(int MaxEpochs, int MinEpochs, bool Plateau, double PlateauFactor, int PlateauPatience, double PlateauThreshold, int EarlyStoppingPatience, double EarlyStoppingMinDelta)
{
    /// <summary>A config's epoch bounds and schedules (the minimum capped at the maximum), unchecked.</summary>
    public static ScheduleSection Of(TrainConfig config) =>
        new(config.MaxEpochs, config.EffectiveMinEpochs, config.Scheduler == "plateau", config.PlateauFactor, config.PlateauPatience, config.PlateauThreshold,
            config.EarlyStoppingPatience, config.EarlyStoppingMinDelta);
}

public sealed record CacheSection(bool Enabled, long MemoryBytes);
