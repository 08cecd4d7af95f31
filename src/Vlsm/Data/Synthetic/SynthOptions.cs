using Vlsm.Data.Prompts;
using Vlsm.Imaging;

namespace Vlsm.Data.Synthetic;

/// <summary>The look of synthetic scenes.</summary>
public enum SynthStyle
{
    /// <summary>Flat, bright geometric shapes (circle, square, triangle, ellipse) on plain or lightly textured backgrounds.</summary>
    Natural,

    /// <summary>Low-contrast textured blobs with blurred edges on tissue-like backgrounds; shape words round, oval, elongated, irregular.</summary>
    Medical,
}

/// <summary>What to generate.</summary>
/// <param name="Scenes">Number of images.</param>
/// <param name="Seed">Same seed and options → byte-identical output.</param>
/// <param name="Size">Width and height in pixels.</param>
/// <param name="MaxObjects">1–3 objects per scene. With 1, every mask is named like its image, so the folder is also a plain images/masks dataset.</param>
/// <param name="ClassName">Class word of the prompts; null → "shape" (natural) or "polyp" (medical).</param>
/// <param name="Split">Fractions of images for train/val/test; null → 70/15/15.</param>
/// <param name="MinObjects">Fewest objects per scene (1–<paramref name="MaxObjects"/>); more objects per scene make the prompt matter more.</param>
public sealed record SynthOptions(
    int Scenes,
    ulong Seed,
    int Size = 96,
    SynthStyle Style = SynthStyle.Natural,
    int MaxObjects = 3,
    string? ClassName = null,
    SplitRatios? Split = null,
    int MinObjects = 1)
{
    public const int MinSize = 32;
    public const int MaxSize = 1024;

    /// <exception cref="VlsmException">An option is out of range.</exception>
    public void Validate()
    {
        if (Scenes < 1) throw new VlsmException($"--n must be at least 1 (the number of images), got {Scenes}.");
        if (Size < MinSize || Size > MaxSize) throw new VlsmException($"--size must be within {MinSize}–{MaxSize} pixels, got {Size}.");
        if (MaxObjects is < 1 or > 3) throw new VlsmException($"--max-objects must be 1, 2 or 3, got {MaxObjects}.");
        if (MinObjects < 1 || MinObjects > MaxObjects) throw new VlsmException($"--min-objects must be within 1..--max-objects ({MaxObjects}), got {MinObjects}.");
        if (ClassName is not null && ClassName.Trim().Length == 0) throw new VlsmException("--class is empty; give a class word such as lesion or polyp, or leave it out.");
    }

    public string EffectiveClassName => ClassName?.Trim() ?? (Style == SynthStyle.Natural ? "shape" : "polyp");
}

/// <summary>One object of a scene: its own mask and the prompts that single it out.</summary>
/// <param name="Color">Palette word of the colour it was drawn in (<see cref="ColorNamer.Palette"/>).</param>
/// <param name="Shape">circle/square/triangle/ellipse (natural) or round/oval/elongated/irregular (medical, agreeing with <see cref="ShapeClassifier"/> on <paramref name="Mask"/>).</param>
/// <param name="Mask">Exactly this object: one 4-connected component.</param>
public sealed record SynthObject(
    string Color,
    string Shape,
    BinaryMask Mask,
    PromptAttributes Attributes,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Prompts);

/// <summary>A rendered scene: the image and its one to three objects, which differ in colour and in shape word.</summary>
public sealed record SynthScene(int Index, string Name, RgbImage Image, IReadOnlyList<SynthObject> Objects);

/// <summary>Counts of a written synthetic dataset.</summary>
public sealed record SynthSummary(
    string OutDir,
    int Images,
    int Records,
    IReadOnlyDictionary<string, (int Images, int Records)> PerSplit);
