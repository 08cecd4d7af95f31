using Vlsm.Imaging;
using Vlsm.IO;

namespace Vlsm.Data.Prompts;

/// <summary>Prompts p0–p9 for one image and mask, built the way medvlsm built its prompts.</summary>
public static class PromptGenerator
{
    /// <summary>
    /// The template words for a mask: number, size and location by medvlsm's rules
    /// (<see cref="MaskDescription"/>), colour from the image (<see cref="ColorNamer"/>) and shape
    /// from the largest component (<see cref="ShapeClassifier"/>). Null for an empty mask.
    /// </summary>
    /// <exception cref="VlsmException">Image and mask sizes differ.</exception>
    public static PromptAttributes? Describe(RgbImage image, BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(mask);
        if (image.Width != mask.Width || image.Height != mask.Height)
            throw new VlsmException($"image is {image.Width}x{image.Height} but its mask is {mask.Width}x{mask.Height}; they must be the same size.");
        var description = MaskDescription.Of(mask);
        if (description.IsEmpty) return null;
        string color = ColorNamer.Name(image, mask)!;
        string shape = ShapeClassifier.Name(description.Labels)!;
        return new PromptAttributes(description.Number, description.Sizes, color, shape, description.Locations);
    }

    /// <summary>Prompts p0–p9 (p7–p9 only with descriptions) for an image and its mask.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Prompts(
        RgbImage image, BinaryMask mask, string className, IReadOnlyList<string> descriptionPhrases) =>
        PromptTemplates.Build(className, Describe(image, mask), descriptionPhrases);
}

/// <summary>What <see cref="PromptFolder.Generate"/> should do.</summary>
/// <param name="Root">Folder holding <c>images/</c> and <c>masks/</c>; annotations go to <c>anns/</c>.</param>
/// <param name="ClassName">The class word of the prompts, e.g. "polyp".</param>
/// <param name="DescriptionPhrases">Phrases for p7–p9; null → the class's built-in ones (<see cref="ClassDescriptions.BuiltIn"/>).</param>
/// <param name="Split">Null → everything in <c>anns/test.json</c>.</param>
/// <param name="Force">Replace the split files when <c>anns/</c> already holds annotation files (else refused).</param>
public sealed record PromptFolderOptions(
    string Root,
    string ClassName,
    IReadOnlyList<string>? DescriptionPhrases = null,
    SplitRatios? Split = null,
    ulong Seed = 0,
    bool Force = false);

/// <param name="RecordsPerSplit">Records written per file name stem (train, val, test).</param>
/// <param name="Written">The annotation files written.</param>
/// <param name="Untouched">Other <c>anns/*.json</c> files from earlier runs, left as they were.</param>
/// <param name="EmptyMasks">Masks with no foreground ("no {class}" prompts).</param>
public sealed record PromptFolderResult(
    IReadOnlyDictionary<string, int> RecordsPerSplit,
    IReadOnlyList<string> Written,
    IReadOnlyList<string> Untouched,
    int EmptyMasks,
    bool HasDescriptions);

/// <summary>
/// Writes medvlsm annotation files for a folder of images and masks: <c>ROOT/images/*</c> and
/// <c>ROOT/masks/*</c> paired by file stem, prompts by <see cref="PromptGenerator"/>, records to
/// <c>ROOT/anns/{train,val,test}.json</c> split by image (or all to <c>test.json</c>).
/// </summary>
public static class PromptFolder
{
    public static readonly IReadOnlyList<string> ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];

    /// <summary>Image/mask file pairs with the same stem, sorted by stem (ordinal).</summary>
    /// <exception cref="VlsmException">Missing folders, duplicate stems, unpaired files or no images.</exception>
    public static IReadOnlyList<(string Stem, string Image, string Mask)> Pair(string root)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (!Directory.Exists(root))
            throw new VlsmException($"{root}: dataset folder not found. Give the folder that holds images/ and masks/.");
        string imageDir = Path.Combine(root, "images"), maskDir = Path.Combine(root, "masks");
        foreach (var dir in new[] { imageDir, maskDir })
            if (!Directory.Exists(dir))
                throw new VlsmException($"{dir}: folder not found. The dataset folder needs images/ and masks/ with files paired by name (e.g. images/a.jpg and masks/a.png).");
        var images = ByStem(imageDir);
        var masks = ByStem(maskDir);
        var masksAlone = masks.Keys.Where(k => !images.ContainsKey(k)).Order(StringComparer.Ordinal).Select(k => masks[k]).ToList();
        var imagesAlone = images.Keys.Where(k => !masks.ContainsKey(k)).Order(StringComparer.Ordinal).Select(k => images[k]).ToList();
        if (masksAlone.Count > 0 || imagesAlone.Count > 0)
        {
            var problems = new List<string>();
            if (masksAlone.Count > 0) problems.Add($"{masksAlone.Count} mask(s) without an image in {imageDir}: {List(masksAlone)}");
            if (imagesAlone.Count > 0) problems.Add($"{imagesAlone.Count} image(s) without a mask in {maskDir}: {List(imagesAlone)}");
            throw new VlsmException(string.Join("; ", problems) + ". Each image needs a mask with the same file stem (name without extension); add or remove files so they pair up.");
        }
        if (images.Count == 0)
            throw new VlsmException($"{imageDir}: no images ({string.Join(", ", ImageExtensions)}). Put the images in images/ and their masks in masks/.");
        return images.Keys.Order(StringComparer.Ordinal).Select(k => (k, images[k], masks[k])).ToList();
    }

    public static PromptFolderResult Generate(PromptFolderOptions options, Action<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        string className = options.ClassName?.Trim() ?? "";
        if (className.Length == 0) throw new VlsmException("--class is empty; give the class word of the prompts, e.g. --class polyp.");
        var phrases = options.DescriptionPhrases ?? ClassDescriptions.BuiltIn(className);
        var pairs = Pair(options.Root);
        string annDir = Path.Combine(options.Root, "anns");
        var existing = Directory.Exists(annDir) ? Directory.GetFiles(annDir, "*.json").Order(StringComparer.Ordinal).ToList() : [];
        if (existing.Count > 0 && !options.Force)
            throw new VlsmException($"{annDir} already holds annotation files ({string.Join(", ", existing.Select(Path.GetFileName))}); "
                + "give --force to replace the split files, or another folder.");

        var records = new AnnotationRecord[pairs.Count];
        int empty = 0;
        for (int i = 0; i < pairs.Count; i++)
        {
            var (_, imagePath, maskPath) = pairs[i];
            var image = ImageCodec.DecodeRgb(imagePath);
            var gray = ImageCodec.DecodeGray(maskPath);
            if (gray.Width != image.Width || gray.Height != image.Height)
                throw new VlsmException($"{maskPath} is {gray.Width}x{gray.Height} but its image {imagePath} is {image.Width}x{image.Height}; a mask must have its image's size.");
            var attributes = PromptGenerator.Describe(image, BinaryMask.FromGray(gray));
            if (attributes is null) empty++;
            records[i] = new AnnotationRecord(Path.GetFileName(imagePath), Path.GetFileName(maskPath),
                PromptTemplates.Build(className, attributes, phrases));
            progress?.Invoke(1);
        }

        var splits = options.Split is { } ratios
            ? DatasetSplit.Assign(records.Length, ratios, options.Seed)
            : Enumerable.Repeat(DatasetSplit.Test, records.Length).ToArray();
        var names = options.Split is null ? new[] { DatasetSplit.Test } : DatasetSplit.Names.ToArray();
        var counts = new Dictionary<string, int>();
        var written = new List<string>();
        // Every file is complete before any replaces an old one: staged together, then moved into anns/.
        AtomicFolder.Write(annDir, staging =>
        {
            foreach (var name in names)
            {
                var chosen = records.Where((_, i) => splits[i] == name).ToList();
                AnnotationFile.Write(Path.Combine(staging, name + ".json"), chosen, PromptTemplates.ListKeys);
                counts[name] = chosen.Count;
                written.Add(Path.Combine(annDir, name + ".json"));
            }
        });
        var untouched = Directory.EnumerateFiles(annDir, "*.json")
            .Where(f => !written.Contains(f)).Order(StringComparer.Ordinal).ToList();
        return new PromptFolderResult(counts, written, untouched, empty, phrases.Count > 0);
    }

    private static Dictionary<string, string> ByStem(string dir)
    {
        var byStem = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(file);
            if (name.StartsWith('.') || !ImageExtensions.Contains(Path.GetExtension(name).ToLowerInvariant())) continue;
            string stem = Path.GetFileNameWithoutExtension(name);
            if (byStem.TryGetValue(stem, out var other))
                throw new VlsmException($"{other} and {file} have the same stem '{stem}', so it is unclear which to pair; rename or remove one.");
            byStem[stem] = file;
        }
        return byStem;
    }

    private static string List(IReadOnlyList<string> files, int show = 10) =>
        string.Join(", ", files.Take(show).Select(Path.GetFileName)) + (files.Count > show ? $", … ({files.Count - show} more)" : "");
}
