using Vlsm.Data;

namespace Vlsm.Evaluation;

/// <summary>How an evaluation runs and what it writes besides the report.</summary>
public sealed record EvaluationOptions
{
    /// <summary>The <see cref="Prompt"/> value that evaluates every key p0…pN present in the split, one summary per key.</summary>
    public const string AllPrompts = "all";

    public string Split { get; init; } = "test";

    /// <summary>
    /// A key (p3), "random" (a key of p1…pN per record), "all" (every key, each on the records that
    /// have it) or literal text. A list-valued key gives one text per record, drawn with
    /// <see cref="PromptChoice"/> seeded by <see cref="Seed"/> (the same text in every run, and the
    /// same as <c>--prompt p3</c> picks).
    /// </summary>
    public string Prompt { get; init; } = PromptChoice.RandomSpec;

    /// <summary>Seeds the per-record draws of <c>random</c> and of list-valued keys.</summary>
    public long Seed { get; init; }

    /// <summary>A pixel is foreground when its sigmoid probability is above this.</summary>
    public float Threshold { get; init; } = 0.5f;

    /// <summary>Normalised surface Dice counts an edge pixel as right within this many pixels of the other mask's edge.</summary>
    public double NsdTolerance { get; init; } = DefaultNsdTolerance;

    public const double DefaultNsdTolerance = 2;

    /// <summary>Ground-truth mask values above this are foreground.</summary>
    public int MaskThreshold { get; init; } = 127;

    public int BatchSize { get; init; } = 8;

    /// <summary>Threads decoding samples, and scoring predictions.</summary>
    public int Workers { get; init; } = BatchLoaderOptions.DefaultWorkers;

    /// <summary>When set, predicted masks (0/255 PNG, original size) are written here, named after mask_name.</summary>
    public string? MasksDirectory { get; init; }

    /// <summary>When set with <see cref="Overlays"/> &gt; 0, the best and worst cases by Dice are drawn here.</summary>
    public string? OverlaysDirectory { get; init; }

    /// <summary>How many best and how many worst cases to draw, per prompt key and dataset.</summary>
    public int Overlays { get; init; }

    /// <summary>A record whose image or mask is missing, corrupt or of another size: stop (fail) or leave it out and count it (skip).</summary>
    public OnError OnError { get; init; } = OnError.Fail;

    public bool EvaluatesAllPrompts => Prompt == AllPrompts;

    /// <exception cref="VlsmException">A value is out of range; the message names the option.</exception>
    public void Validate()
    {
        if (string.IsNullOrEmpty(Split) || !MedvlsmDataset.IsValidSplitName(Split))
            throw new VlsmException($"--split \"{Split}\" is not a split name (letters, digits, '_' and '-'; e.g. test).");
        ArgumentNullException.ThrowIfNull(Prompt);
        if (!(Threshold is >= 0f and <= 1f))
            throw new VlsmException($"--threshold must be within [0, 1] (a probability), got {Threshold}.");
        if (MaskThreshold is < 0 or > 254)
            throw new VlsmException($"--mask-threshold must be within 0..254 (values above it are foreground), got {MaskThreshold}.");
        if (BatchSize < 1) throw new VlsmException($"--batch-size must be at least 1, got {BatchSize}.");
        if (!(NsdTolerance >= 0) || double.IsInfinity(NsdTolerance)) throw new VlsmException($"--nsd-tolerance must be a number of pixels, 0 or more, got {NsdTolerance}.");
        if (Workers < 1) throw new VlsmException($"evaluation needs at least 1 worker, got {Workers}.");
        if (Overlays < 0) throw new VlsmException($"--overlays must be 0 or more, got {Overlays}.");
        if (Overlays > 0 && OverlaysDirectory is null)
            throw new VlsmException("overlays need a folder to be written to; give --out.");
    }
}
