namespace Vlsm.Data.Prompts;

/// <summary>
/// The 3x3 grid medvlsm uses for locations. Rows split at <c>int(H/3)</c> and <c>int(2H/3)</c>,
/// columns at <c>int(W/3)</c> and <c>int(2W/3)</c> (Python slices <c>[0:int(h/3)]</c>, …), so for
/// H = 100 the bands are rows 0–32, 33–65 and 66–99.
/// </summary>
public static class LocationGrid
{
    /// <summary>Cell names in medvlsm's order (row-major); ties between cells are broken by this order.</summary>
    public static readonly IReadOnlyList<string> CellNames =
    [
        "top left", "top", "top right",
        "left", "center", "right",
        "bottom left", "bottom", "bottom right",
    ];

    /// <summary>Band 0, 1 or 2 of coordinate <paramref name="i"/> along an axis of <paramref name="length"/> pixels.</summary>
    public static int Band(int i, int length)
    {
        // Integer division is Python's int(length / 3) for positive lengths (no float rounding to worry about).
        int first = length / 3, second = 2 * length / 3;
        return i < first ? 0 : i < second ? 1 : 2;
    }

    /// <summary>Index into <see cref="CellNames"/> of pixel (x, y).</summary>
    public static int Cell(int x, int y, int width, int height) => 3 * Band(y, height) + Band(x, width);
}

/// <summary>One 4-connected component of a mask, with what the prompt rules need.</summary>
/// <param name="Label">1-based, in raster order of the component's first pixel (scipy.ndimage.label's numbering).</param>
/// <param name="CellCounts">Pixels in each cell of <see cref="LocationGrid.CellNames"/>.</param>
public sealed record MaskComponent(
    int Label,
    int PixelCount,
    int FirstX,
    int FirstY,
    int MinX,
    int MaxX,
    int MinY,
    int MaxY,
    IReadOnlyList<int> CellCounts);

/// <summary>A label image (0 = background, 1…N = components) and the components' summaries.</summary>
public sealed class ComponentLabels
{
    internal ComponentLabels(int width, int height, int[] labels, IReadOnlyList<MaskComponent> components)
    {
        Width = width;
        Height = height;
        Labels = labels;
        Components = components;
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>Length <c>Width * Height</c>; 0 for background, else the 1-based component label.</summary>
    public int[] Labels { get; }

    /// <summary>Components in label order (raster order of their first pixel).</summary>
    public IReadOnlyList<MaskComponent> Components { get; }

    /// <summary>A mask holding only component <paramref name="label"/>.</summary>
    public BinaryMask MaskOf(int label)
    {
        var mask = new BinaryMask(Width, Height);
        for (int i = 0; i < Labels.Length; i++) mask.Pixels[i] = Labels[i] == label;
        return mask;
    }
}

/// <summary>
/// Connected components with 4-connectivity (pixels touching only at a corner are separate), the
/// default structuring element of <c>scipy.ndimage.label</c> that medvlsm uses.
/// </summary>
public static class ConnectedComponents
{
    public static ComponentLabels Label(BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        int w = mask.Width, h = mask.Height;
        bool[] fg = mask.Pixels;
        var labels = new int[fg.Length];
        var components = new List<MaskComponent>();
        // An explicit stack rather than recursion: a mask-sized component must not overflow the call stack.
        var stack = new Stack<int>();
        for (int start = 0; start < fg.Length; start++)
        {
            if (!fg[start] || labels[start] != 0) continue;
            int label = components.Count + 1;
            int count = 0, minX = int.MaxValue, maxX = -1, minY = int.MaxValue, maxY = -1;
            var cells = new int[9];
            labels[start] = label;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int i = stack.Pop();
                int y = i / w, x = i - y * w;
                count++;
                if (x < minX) minX = x;
                if (x > maxX) maxX = x;
                if (y < minY) minY = y;
                if (y > maxY) maxY = y;
                cells[LocationGrid.Cell(x, y, w, h)]++;
                if (x > 0 && fg[i - 1] && labels[i - 1] == 0) { labels[i - 1] = label; stack.Push(i - 1); }
                if (x < w - 1 && fg[i + 1] && labels[i + 1] == 0) { labels[i + 1] = label; stack.Push(i + 1); }
                if (y > 0 && fg[i - w] && labels[i - w] == 0) { labels[i - w] = label; stack.Push(i - w); }
                if (y < h - 1 && fg[i + w] && labels[i + w] == 0) { labels[i + w] = label; stack.Push(i + w); }
            }
            components.Add(new MaskComponent(label, count, start % w, start / w, minX, maxX, minY, maxY, cells));
        }
        return new ComponentLabels(w, h, labels, components);
    }
}
