namespace Vlsm.Data.Prompts;

/// <summary>
/// medvlsm's number, size and location words (<c>get_mask_description</c> in its
/// <c>features_from_img.py</c>), reproduced rule for rule. Decisions where medvlsm's code is
/// ambiguous or quirky are noted where they are made.
/// </summary>
public static class MedvlsmRules
{
    /// <summary>A component must cover more than this fraction of the image to get a size word.</summary>
    public const double MinSizedCoverage = 1e-4;
    public const double LargeAbove = 0.30;
    public const double MediumAbove = 0.08;
    public const double TinyBelow = 0.001;

    /// <summary>Size words in the order medvlsm lists them.</summary>
    public static readonly IReadOnlyList<string> SizeOrder = ["tiny", "small", "medium", "large"];

    private static readonly string[] Words =
    [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ];

    /// <summary>
    /// "one" … "twenty" (num2words), then digits: prompts with 21+ components are rare and a
    /// digit string tokenizes shorter than "twenty-one".
    /// </summary>
    public static string NumberWord(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return count < Words.Length ? Words[count] : count.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Size word of a component covering <paramref name="coverage"/> of the image, or null when
    /// coverage ≤ 1e-4 (medvlsm gives such a component no size). The tests run in this order, so
    /// exactly 0.30 is medium, exactly 0.08 small and exactly 0.001 small.
    /// </summary>
    public static string? SizeWord(double coverage)
    {
        if (!(coverage > MinSizedCoverage)) return null;
        if (coverage > LargeAbove) return "large";
        if (coverage > MediumAbove) return "medium";
        if (coverage < TinyBelow) return "tiny";
        return "small";
    }

    /// <summary>The distinct sizes, tiny → large, joined by ", " (e.g. "tiny, small"); "" if none.</summary>
    public static string JoinSizes(IEnumerable<string?> sizes)
    {
        var present = new HashSet<string>(sizes.OfType<string>());
        return string.Join(", ", SizeOrder.Where(present.Contains));
    }

    /// <summary>Coverage of a component as medvlsm computes it: pixels / (H·W) in double precision.</summary>
    public static double Coverage(MaskComponent component, int width, int height) =>
        (double)component.PixelCount / ((long)width * height);

    /// <summary>
    /// Location word of one component on the 3x3 <see cref="LocationGrid"/>:
    /// <list type="number">
    /// <item>all of it in one cell → that cell;</item>
    /// <item>else the cells holding ≥ 10 % of it: exactly one → that cell;</item>
    /// <item>none → the occupied cell with the smallest share (first in grid order on ties, as
    /// Python's stable sort leaves them);</item>
    /// <item>several → from the centre of its bounding box (<see cref="BoxCentre"/>): vertical word
    /// top/center/bottom by thirds of the height (a centre exactly on a third counts as center),
    /// horizontal word left/center/right by thirds of the width; one word center → the other
    /// alone; both center → "center"; else e.g. "top left".</item>
    /// </list>
    /// medvlsm compares the horizontal centre with thirds of the <em>height</em> (a slip that only
    /// matters for non-square images); we use the width, as documented in docs/prompts.md.
    /// </summary>
    public static string Location(MaskComponent component, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(component);
        var cells = component.CellCounts;
        int occupied = 0, only = -1;
        for (int c = 0; c < 9; c++)
            if (cells[c] > 0) { occupied++; only = c; }
        if (occupied == 1) return LocationGrid.CellNames[only];

        double total = component.PixelCount;
        int significant = 0, theSignificant = -1;
        for (int c = 0; c < 9; c++)
        {
            if (cells[c] / total >= 0.1) { significant++; theSignificant = c; }
        }
        if (significant == 1) return LocationGrid.CellNames[theSignificant];
        if (significant == 0)
        {
            // Unreachable for a component whose cell counts sum to its pixel count (some cell then
            // holds at least 1/9 > 10 %). medvlsm, which counts only pixels of exactly 255, reaches
            // it for a JPEG-mask component with no such pixel (0/0 shares); kept for completeness.
            int smallest = -1;
            for (int c = 0; c < 9; c++)
                if (cells[c] > 0 && (smallest < 0 || cells[c] < cells[smallest])) smallest = c;
            return LocationGrid.CellNames[smallest];
        }

        var (row, column) = BoxCentre(component);
        string vertical = row < height / 3.0 ? "top" : row <= 2 * height / 3.0 ? "center" : "bottom";
        string horizontal = column < width / 3.0 ? "left" : column <= 2 * width / 3.0 ? "center" : "right";
        if (vertical == "center") return horizontal;
        if (horizontal == "center") return vertical;
        return vertical + " " + horizontal;
    }

    /// <summary>
    /// Centre (row, column) of the bounding box medvlsm measures. It takes the box of the
    /// component's contour pixels (skimage <c>find_contours</c> at level 128, coordinates truncated
    /// to int), whose half-open extent is [min−1, max+1) on each axis, so the centre is
    /// (min + max) / 2 — except that the contour is open where the component touches the top or
    /// left image edge, where the extent starts at 0 instead of −1, moving the centre half a pixel
    /// down or right. We reproduce both cases.
    /// </summary>
    public static (double Row, double Column) BoxCentre(MaskComponent component)
    {
        ArgumentNullException.ThrowIfNull(component);
        double row = (component.MinY + component.MaxY + (component.MinY == 0 ? 1 : 0)) / 2.0;
        double column = (component.MinX + component.MaxX + (component.MinX == 0 ? 1 : 0)) / 2.0;
        return (row, column);
    }
}

/// <summary>What medvlsm says about one component.</summary>
/// <param name="Size">Null when the component covers 1e-4 of the image or less.</param>
public sealed record ComponentDescription(MaskComponent Component, double Coverage, string? Size, string Location);

/// <summary>
/// Number, size and location words of a mask, computed as medvlsm does. Every component counts
/// toward the number and gets a location, however small (medvlsm's <c>num = nb_labels</c> and its
/// location loop cover all labels); only components above 1e-4 coverage get a size.
/// </summary>
public sealed class MaskDescription
{
    private MaskDescription(int width, int height, ComponentLabels labels, IReadOnlyList<ComponentDescription> components)
    {
        Width = width;
        Height = height;
        Labels = labels;
        Components = components;
    }

    public int Width { get; }
    public int Height { get; }
    public ComponentLabels Labels { get; }

    /// <summary>In raster order of each component's first pixel.</summary>
    public IReadOnlyList<ComponentDescription> Components { get; }

    public bool IsEmpty => Components.Count == 0;

    /// <summary>"one", "two", … (component count; "zero" for an empty mask).</summary>
    public string Number => MedvlsmRules.NumberWord(Components.Count);

    /// <summary>Distinct size words tiny → large joined by ", "; "" if no component is above 1e-4 coverage.</summary>
    public string Sizes => MedvlsmRules.JoinSizes(Components.Select(c => c.Size));

    /// <summary>Each component's location, in component order, joined by ", " (repeats kept: "center, center").</summary>
    public string Locations => string.Join(", ", Components.Select(c => c.Location));

    public static MaskDescription Of(BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        var labels = ConnectedComponents.Label(mask);
        var components = labels.Components.Select(c =>
        {
            double coverage = MedvlsmRules.Coverage(c, mask.Width, mask.Height);
            return new ComponentDescription(c, coverage, MedvlsmRules.SizeWord(coverage), MedvlsmRules.Location(c, mask.Width, mask.Height));
        }).ToList();
        return new MaskDescription(mask.Width, mask.Height, labels, components);
    }
}
