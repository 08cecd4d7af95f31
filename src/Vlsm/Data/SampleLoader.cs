using Vlsm.Imaging;

namespace Vlsm.Data;

/// <summary>How mask pixel values become training targets.</summary>
public enum MaskMode
{
    /// <summary>1 where the value is above <see cref="SampleOptions.MaskThreshold"/>, else 0. Cleans JPEG masks whose edges are neither 0 nor 255.</summary>
    Binary,

    /// <summary>value / 255, as the Python reference's <c>ToTensor()</c>: for exact reproduction of its runs.</summary>
    Soft,
}

/// <summary>What to do with a record whose files cannot be used (missing, corrupt, image and mask of different sizes).</summary>
public enum OnError
{
    /// <summary>Stop with an error naming the record and its files.</summary>
    Fail,

    /// <summary>Leave the record out and count it in the <see cref="LoadReport"/>.</summary>
    Skip,
}

public sealed record SampleOptions
{
    public MaskMode MaskMode { get; init; } = MaskMode.Binary;

    /// <summary>Mask values above this are foreground (binary mode). The default 127 splits 0..255 in the middle.</summary>
    public int MaskThreshold { get; init; } = 127;

    public OnError OnError { get; init; } = OnError.Fail;

    public AugmentOptions Augment { get; init; } = AugmentOptions.None;

    /// <summary>Seeds prompt choice and augmentation (with the epoch and record).</summary>
    public long Seed { get; init; }

    /// <exception cref="VlsmException">A value is out of range.</exception>
    public void Validate()
    {
        if (MaskThreshold is < 0 or > 254)
            throw new VlsmException($"The mask threshold must be within 0..254 (values above it are foreground), got {MaskThreshold}.");
        if (!Enum.IsDefined(MaskMode)) throw new VlsmException($"Unknown mask mode {MaskMode}; use binary or soft.");
        if (!Enum.IsDefined(OnError)) throw new VlsmException($"Unknown on-error mode {OnError}; use fail or skip.");
        ArgumentNullException.ThrowIfNull(Augment);
        Augment.Validate();
    }
}

/// <summary>One decoded, resized and normalised training sample.</summary>
/// <param name="Image">3 × Height × Width, channel-first, normalised with the model's mean and std.</param>
/// <param name="Mask">Height × Width targets: 0/1 (binary) or value/255 (soft).</param>
/// <param name="OriginalWidth">Width of the mask file as stored (after EXIF orientation), for evaluation at full size.</param>
public sealed record Sample(RecordId Id, float[] Image, float[] Mask, int Width, int Height, string Prompt, int OriginalWidth, int OriginalHeight);

/// <summary>A record left out under <see cref="OnError.Skip"/>, and why.</summary>
public sealed record SkippedRecord(RecordId Id, string Reason);

/// <summary>Counts what was loaded and what was skipped; safe to update from several threads.</summary>
public sealed class LoadReport
{
    private readonly object _gate = new();
    private readonly List<SkippedRecord> _skipped = [];
    private int _loaded;

    public int Loaded
    {
        get
        {
            lock (_gate) return _loaded;
        }
    }

    /// <summary>Skipped records in (dataset, split, index) order, whatever order the threads finished in.</summary>
    public IReadOnlyList<SkippedRecord> Skipped
    {
        get
        {
            lock (_gate)
            {
                return _skipped.OrderBy(s => s.Id.Dataset, StringComparer.Ordinal).ThenBy(s => s.Id.Split, StringComparer.Ordinal)
                    .ThenBy(s => s.Id.Index).ToArray();
            }
        }
    }

    public int SkippedCount
    {
        get
        {
            lock (_gate) return _skipped.Count;
        }
    }

    internal void AddLoaded()
    {
        lock (_gate) _loaded++;
    }

    internal void AddSkipped(RecordId id, string reason)
    {
        lock (_gate) _skipped.Add(new SkippedRecord(id, reason));
    }

    public override string ToString() => $"{Loaded} loaded, {SkippedCount} skipped";
}

/// <summary>
/// Turns a <see cref="DatasetRecord"/> into model input: image to RGB and mask to one channel
/// (<see cref="ImageCodec"/>, EXIF orientation applied), same-size check, image resized with the
/// model's preprocessor (Pillow-exact bilinear for CLIPSeg) and mask with Pillow's nearest, optional
/// augmentation, normalisation with the model's mean and std, and the prompt.
/// Plain arrays only: the training code wraps them in tensors.
/// </summary>
public sealed class SampleLoader
{
    public ImagePreprocessor Preprocessor { get; }
    public SampleOptions Options { get; }
    public PromptChoice Prompt { get; }

    public int Width => Preprocessor.Width;
    public int Height => Preprocessor.Height;

    /// <exception cref="VlsmException">An option is out of range, or the preprocessor resizes to varying sizes (shortest_edge), which batches cannot hold.</exception>
    public SampleLoader(ImagePreprocessor preprocessor, SampleOptions options, PromptChoice prompt)
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(prompt);
        options.Validate();
        if (preprocessor.ShortestEdge is not null)
            throw new VlsmException(
                "The model's preprocessor resizes by shortest edge and center-crops; training data needs a plain resize to a fixed size "
                + "(preprocessor_config.json \"size\": {\"height\": H, \"width\": W}).");
        Preprocessor = preprocessor;
        Options = options;
        Prompt = prompt;
    }

    /// <summary>Loads one record for <paramref name="epoch"/>; null when it is skipped (<see cref="OnError.Skip"/>, counted in <paramref name="report"/>).</summary>
    /// <exception cref="VlsmException">
    /// The record lacks the requested prompt (always an error: it is a setting, not a damaged file),
    /// or, with <see cref="OnError.Fail"/>, a file is missing or unreadable or the sizes differ.
    /// </exception>
    public Sample? Load(DatasetRecord record, int epoch, LoadReport? report = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        var image = new float[3 * Width * Height];
        var mask = new float[Width * Height];
        var info = LoadInto(record, epoch, image, mask, report);
        return info is { } i ? new Sample(record.Id, image, mask, Width, Height, i.Prompt, i.OriginalWidth, i.OriginalHeight) : null;
    }

    internal readonly record struct LoadedInfo(string Prompt, int OriginalWidth, int OriginalHeight);

    /// <summary>Writes the sample into <paramref name="image"/> (3·H·W) and <paramref name="mask"/> (H·W); null when skipped.</summary>
    internal LoadedInfo? LoadInto(DatasetRecord record, int epoch, Span<float> image, Span<float> mask, LoadReport? report)
    {
        string prompt = Prompt.Choose(record, Options.Seed, epoch);
        RgbImage rgb;
        GrayImage gray;
        // A large record is decoded and shrunk in its turn (one large image at a time in the process), then collected.
        using var turn = LargeImages.Turn(record.MaskPath);
        try
        {
            (rgb, gray) = DecodeAndResize(record);
        }
        catch (VlsmException e) when (Options.OnError == OnError.Skip)
        {
            report?.AddSkipped(record.Id, e.Message);
            return null;
        }
        int originalWidth = gray.Width, originalHeight = gray.Height;
        (rgb, gray) = (Preprocessor.Prepare(rgb), Resize.ResizeNearest(gray, Width, Height));
        if (turn is not null)
        {
            LargeImages.Collect();
            turn.Dispose();
        }

        if (Options.Augment.IsEnabled)
        {
            var rng = StableRng.For(Options.Seed, epoch, RngPurpose.Augment, record.Id);
            var draw = Augmentation.Draw(Options.Augment, ref rng);
            (rgb, gray) = Augmentation.Apply(rgb, gray, draw);
            if (Options.Augment.SwapPositionWords)
                prompt = Augmentation.SwapPositionWords(prompt, draw.FlipHorizontal, draw.FlipVertical);
        }

        Preprocessor.Normalize(rgb, image);
        WriteTargets(gray.Pixels, mask);
        report?.AddLoaded();
        return new LoadedInfo(prompt, originalWidth, originalHeight);
    }

    /// <summary>Decodes both files and checks their sizes; messages name the record and the file(s).</summary>
    private (RgbImage Image, GrayImage Mask) DecodeAndResize(DatasetRecord record)
    {
        var (rgb, gray) = record.Decode();
        if (rgb.Width != gray.Width || rgb.Height != gray.Height)
        {
            throw new VlsmException(
                $"{record.Where}: image '{record.ImagePath}' is {rgb.Width}x{rgb.Height} but mask '{record.MaskPath}' is {gray.Width}x{gray.Height}. "
                + "Give the mask the image's size (or fix mask_name), or skip such records with --on-error skip.");
        }
        if (Preprocessor.SizeProblem(rgb.Width, rgb.Height) is { } problem)
            throw new VlsmException($"{record.Where}: image '{record.ImagePath}': {problem}");
        if (!Preprocessor.DoResize && (rgb.Width != Width || rgb.Height != Height))
        {
            throw new VlsmException(
                $"{record.Where}: image '{record.ImagePath}' is {rgb.Width}x{rgb.Height}, but the model's preprocessor does not resize and expects {Width}x{Height}. "
                + "Turn do_resize on in preprocessor_config.json or resize the dataset.");
        }
        return (rgb, gray);
    }

    private void WriteTargets(ReadOnlySpan<byte> pixels, Span<float> mask)
    {
        if (Options.MaskMode == MaskMode.Soft)
        {
            for (int i = 0; i < mask.Length; i++) mask[i] = pixels[i] / 255f;
            return;
        }
        int threshold = Options.MaskThreshold;
        for (int i = 0; i < mask.Length; i++) mask[i] = pixels[i] > threshold ? 1f : 0f;
    }
}
