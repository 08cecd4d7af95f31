namespace Vlsm.Data.Prompts;

/// <summary>Geometry of one region of a mask, the inputs of <see cref="ShapeClassifier"/>.</summary>
/// <param name="Area">Foreground pixels.</param>
/// <param name="Perimeter">Length of the marching-squares contour at level 0.5 (holes included).</param>
/// <param name="Circularity">4πA/P², capped at 1 (a few-pixel region can exceed 1).</param>
/// <param name="AspectRatio">Major/minor axis of the ellipse with the region's second moments (≥ 1).</param>
/// <param name="Solidity">Area / pixels of the digital convex hull (pixel centres inside the hull of the region's pixel centres).</param>
public readonly record struct ShapeMeasures(int Area, double Perimeter, double Circularity, double AspectRatio, double Solidity)
{
    /// <summary>
    /// Circularity of an ellipse with this aspect ratio (Ramanujan's perimeter). A smooth region
    /// scores about 1 relative to it; ragged or lobed outlines score lower.
    /// </summary>
    public double EllipseCircularity
    {
        get
        {
            double a = AspectRatio, b = 1;
            double perimeter = Math.PI * (3 * (a + b) - Math.Sqrt((3 * a + b) * (a + 3 * b)));
            return 4 * Math.PI * (Math.PI * a * b) / (perimeter * perimeter);
        }
    }

    /// <summary>Circularity relative to the ellipse of the same aspect ratio.</summary>
    public double RelativeCircularity => Circularity / EllipseCircularity;
}

/// <summary>
/// Names the shape of a mask without a VQA model, in the vocabulary round, oval, elongated,
/// irregular. medvlsm asked BLIP for a shape word; a deterministic rule on the mask's geometry
/// gives reproducible prompts and needs no model. Rules, applied to the largest component:
/// <list type="number">
/// <item>irregular — solidity below 0.90 (lobes, concavities, stars, rings), or circularity below
/// 0.75 of that of the ellipse with the same aspect ratio while solidity is below 0.97 (a bumpy
/// outline). The solidity condition on the second test keeps convex polygons (triangles,
/// rotated squares: solidity 1, relative circularity 0.58–0.71) out. Only judged from 30 pixels
/// up, where a digital outline is not dominated by its staircase;</item>
/// <item>elongated — aspect ratio of the moment ellipse 2.5 or more;</item>
/// <item>oval — aspect ratio from 1.35 to 2.5;</item>
/// <item>round — otherwise (near-isotropic convex regions: discs, squares, equilateral triangles).</item>
/// </list>
/// The thresholds were set on drawn shapes: digital discs of radius 2–40 have relative
/// circularity 0.86–0.97 and solidity 1; 2:1 ellipses aspect ≈ 2; sharp five-pointed stars solidity
/// 0.54–0.73; discs with three or four bumps solidity 0.90–0.96 and relative circularity 0.6–0.74
/// (see the tests).
/// </summary>
public static class ShapeClassifier
{
    public const string Round = "round";
    public const string Oval = "oval";
    public const string Elongated = "elongated";
    public const string Irregular = "irregular";

    public static readonly IReadOnlyList<string> Words = [Round, Oval, Elongated, Irregular];

    public const double IrregularSolidityBelow = 0.90;
    public const double BumpyRelativeCircularityBelow = 0.75;
    public const double BumpySolidityBelow = 0.97;
    public const int MinAreaForIrregular = 30;
    public const double ElongatedFrom = 2.5;
    public const double OvalFrom = 1.35;

    public static string Classify(ShapeMeasures m)
    {
        if (m.Area >= MinAreaForIrregular
            && (m.Solidity < IrregularSolidityBelow
                || (m.RelativeCircularity < BumpyRelativeCircularityBelow && m.Solidity < BumpySolidityBelow)))
            return Irregular;
        if (m.AspectRatio >= ElongatedFrom) return Elongated;
        if (m.AspectRatio >= OvalFrom) return Oval;
        return Round;
    }

    /// <summary>Shape word of the mask's largest component (the first in raster order on ties); null for an empty mask.</summary>
    public static string? Name(BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        return Name(ConnectedComponents.Label(mask));
    }

    public static string? Name(ComponentLabels labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        MaskComponent? largest = null;
        foreach (var c in labels.Components)
            if (largest is null || c.PixelCount > largest.PixelCount) largest = c;
        return largest is null ? null : Classify(Measure(labels, largest));
    }

    /// <summary>Measures all foreground pixels of <paramref name="mask"/> as one region.</summary>
    public static ShapeMeasures Measure(BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        var labels = new int[mask.Pixels.Length];
        int minX = int.MaxValue, maxX = -1, minY = int.MaxValue, maxY = -1, count = 0;
        for (int y = 0; y < mask.Height; y++)
        {
            for (int x = 0; x < mask.Width; x++)
            {
                if (!mask.Pixels[y * mask.Width + x]) continue;
                labels[y * mask.Width + x] = 1;
                count++;
                minX = Math.Min(minX, x); maxX = Math.Max(maxX, x);
                minY = Math.Min(minY, y); maxY = Math.Max(maxY, y);
            }
        }
        if (count == 0) return new ShapeMeasures(0, 0, 0, 1, 0);
        return Measure(labels, mask.Width, 1, count, minX, maxX, minY, maxY);
    }

    /// <summary>Measures one labelled component.</summary>
    public static ShapeMeasures Measure(ComponentLabels labels, MaskComponent component)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(component);
        return Measure(labels.Labels, labels.Width, component.Label, component.PixelCount,
            component.MinX, component.MaxX, component.MinY, component.MaxY);
    }

    private static ShapeMeasures Measure(int[] labels, int width, int label, int area, int minX, int maxX, int minY, int maxY)
    {
        bool In(int x, int y) => x >= minX && x <= maxX && y >= minY && y <= maxY && labels[y * width + x] == label;

        // Second moments of pixel centres; + 1/12 per axis for the spread of each unit pixel, so a
        // single pixel is isotropic rather than degenerate.
        double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        var rowMin = new int[maxY - minY + 1];
        var rowMax = new int[maxY - minY + 1];
        Array.Fill(rowMin, int.MaxValue);
        Array.Fill(rowMax, int.MinValue);
        for (int y = minY; y <= maxY; y++)
        {
            for (int x = minX; x <= maxX; x++)
            {
                if (labels[y * width + x] != label) continue;
                double dx = x - minX, dy = y - minY;
                sx += dx; sy += dy; sxx += dx * dx; syy += dy * dy; sxy += dx * dy;
                rowMin[y - minY] = Math.Min(rowMin[y - minY], x);
                rowMax[y - minY] = Math.Max(rowMax[y - minY], x);
            }
        }
        double mx = sx / area, my = sy / area;
        double vxx = sxx / area - mx * mx + 1.0 / 12, vyy = syy / area - my * my + 1.0 / 12, vxy = sxy / area - mx * my;
        double half = (vxx + vyy) / 2, spread = Math.Sqrt((vxx - vyy) * (vxx - vyy) / 4 + vxy * vxy);
        double major = half + spread, minor = Math.Max(half - spread, 1e-12);
        double aspect = Math.Sqrt(major / minor);

        // Marching squares on the region padded with background: each 2x2 window of pixel centres
        // holds 0, 1 or 2 contour segments between edge midpoints, of length √½ (corner cut),
        // 1 (straight) or 2√½ (saddle). Their sum is the contour length; no tracing needed.
        double perimeter = 0;
        double diagonal = Math.Sqrt(0.5);
        for (int y = minY - 1; y <= maxY; y++)
        {
            for (int x = minX - 1; x <= maxX; x++)
            {
                bool a = In(x, y), b = In(x + 1, y), c = In(x, y + 1), d = In(x + 1, y + 1);
                int n = (a ? 1 : 0) + (b ? 1 : 0) + (c ? 1 : 0) + (d ? 1 : 0);
                if (n == 1 || n == 3) perimeter += diagonal;
                else if (n == 2) perimeter += a == d ? 2 * diagonal : 1; // a == d: diagonal pair (saddle)
            }
        }
        double circularity = perimeter > 0 ? Math.Min(1, 4 * Math.PI * area / (perimeter * perimeter)) : 1;

        double solidity = area / (double)DigitalHullPixels(rowMin, rowMax, minY);
        return new ShapeMeasures(area, perimeter, circularity, aspect, Math.Min(1, solidity));
    }

    /// <summary>
    /// Lattice points inside or on the convex hull of the region's pixel centres. Only each row's
    /// leftmost and rightmost pixel can be hull vertices, so the hull is built from those.
    /// </summary>
    private static long DigitalHullPixels(int[] rowMin, int[] rowMax, int minY)
    {
        var points = new List<(long X, long Y)>();
        for (int r = 0; r < rowMin.Length; r++)
        {
            if (rowMin[r] == int.MaxValue) continue;
            points.Add((rowMin[r], r + minY));
            if (rowMax[r] != rowMin[r]) points.Add((rowMax[r], r + minY));
        }
        var hull = ConvexHull(points);
        if (hull.Count <= 2)
        {
            // A point or a segment: the lattice points on it.
            if (hull.Count == 1) return 1;
            long dx = Math.Abs(hull[1].X - hull[0].X), dy = Math.Abs(hull[1].Y - hull[0].Y);
            return GreatestCommonDivisor(dx, dy) + 1;
        }
        // Pick's theorem: A = I + B/2 − 1, so I + B = A + B/2 + 1 with A from the shoelace formula.
        long twiceArea = 0, boundary = 0;
        for (int i = 0; i < hull.Count; i++)
        {
            var p = hull[i];
            var q = hull[(i + 1) % hull.Count];
            twiceArea += p.X * q.Y - q.X * p.Y;
            boundary += GreatestCommonDivisor(Math.Abs(q.X - p.X), Math.Abs(q.Y - p.Y));
        }
        twiceArea = Math.Abs(twiceArea);
        return (twiceArea + boundary) / 2 + 1;
    }

    /// <summary>Andrew's monotone chain; integer coordinates, collinear points dropped.</summary>
    private static List<(long X, long Y)> ConvexHull(List<(long X, long Y)> points)
    {
        var sorted = points.Distinct().OrderBy(p => p.X).ThenBy(p => p.Y).ToList();
        if (sorted.Count <= 2) return sorted;
        static long Cross((long X, long Y) o, (long X, long Y) a, (long X, long Y) b) =>
            (a.X - o.X) * (b.Y - o.Y) - (a.Y - o.Y) * (b.X - o.X);
        var hull = new List<(long X, long Y)>(2 * sorted.Count);
        foreach (var p in sorted)
        {
            while (hull.Count >= 2 && Cross(hull[^2], hull[^1], p) <= 0) hull.RemoveAt(hull.Count - 1);
            hull.Add(p);
        }
        int lower = hull.Count + 1;
        for (int i = sorted.Count - 2; i >= 0; i--)
        {
            var p = sorted[i];
            while (hull.Count >= lower && Cross(hull[^2], hull[^1], p) <= 0) hull.RemoveAt(hull.Count - 1);
            hull.Add(p);
        }
        // The last point repeats the first; collinear input leaves just the two ends.
        hull.RemoveAt(hull.Count - 1);
        return hull;
    }

    private static long GreatestCommonDivisor(long a, long b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
