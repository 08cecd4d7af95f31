namespace Vlsm.Evaluation;

/// <summary>Per-image overlap and surface metrics on binary masks (row-major, width × height).</summary>
public static class SegmentationMetrics
{
    /// <summary>Dice: 2|P∩G| / (|P|+|G|); both empty → 1, ground truth empty and prediction not → 0.</summary>
    public static double Dice(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth)
    {
        var (inter, p, g) = Counts(prediction, truth);
        if (p + g == 0) return 1.0;
        return 2.0 * inter / (p + g);
    }

    /// <summary>IoU: |P∩G| / |P∪G|; both empty → 1, ground truth empty and prediction not → 0.</summary>
    public static double IoU(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth)
    {
        var (inter, p, g) = Counts(prediction, truth);
        long union = p + g - inter;
        return union == 0 ? 1.0 : (double)inter / union;
    }

    private static (long Intersection, long Predicted, long Truth) Counts(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth)
    {
        if (prediction.Length != truth.Length)
            throw new ArgumentException($"prediction has {prediction.Length} pixels, ground truth {truth.Length}.");
        long inter = 0, p = 0, g = 0;
        for (int i = 0; i < prediction.Length; i++)
        {
            if (prediction[i]) p++;
            if (truth[i]) g++;
            if (prediction[i] && truth[i]) inter++;
        }
        return (inter, p, g);
    }

    /// <summary>
    /// 95th-percentile Hausdorff distance in pixels, as MONAI's <c>compute_hausdorff_distance</c>
    /// (percentile 95, Euclidean, undirected): the larger of the two directed 95th percentiles of
    /// distances from one mask's edge pixels to the other's. Edges are mask XOR its erosion by a
    /// 4-connected cross with the outside counted as background. Null when either mask is empty.
    /// </summary>
    public static double? Hd95(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth, int width, int height)
    {
        if (prediction.Length != width * height || truth.Length != width * height)
            throw new ArgumentException($"masks must have {width}×{height} pixels.");
        var predEdges = Edges(prediction, width, height);
        var truthEdges = Edges(truth, width, height);
        if (!predEdges.Contains(true) || !truthEdges.Contains(true)) return null;
        double a = Percentile95(DirectedDistances(predEdges, truthEdges, width, height));
        double b = Percentile95(DirectedDistances(truthEdges, predEdges, width, height));
        return Math.Max(a, b);
    }

    /// <summary>
    /// Normalised surface Dice, as MONAI's <c>compute_surface_dice</c> (Euclidean, no sub-pixel
    /// areas): the fraction of both masks' edge pixels lying within <paramref name="tolerance"/>
    /// pixels of the other mask's edge. Null when both masks are empty (undefined); 0 when only one is.
    /// </summary>
    public static double? SurfaceDice(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth, int width, int height, double tolerance)
    {
        if (prediction.Length != width * height || truth.Length != width * height)
            throw new ArgumentException($"masks must have {width}×{height} pixels.");
        if (!(tolerance >= 0) || double.IsInfinity(tolerance)) throw new ArgumentOutOfRangeException(nameof(tolerance), "the tolerance must be a finite number of pixels, 0 or more.");
        var predEdges = Edges(prediction, width, height);
        var truthEdges = Edges(truth, width, height);
        int predCount = predEdges.Count(e => e), truthCount = truthEdges.Count(e => e);
        if (predCount + truthCount == 0) return null;
        if (predCount == 0 || truthCount == 0) return 0;
        int close = DirectedDistances(predEdges, truthEdges, width, height).Count(d => d <= tolerance)
            + DirectedDistances(truthEdges, predEdges, width, height).Count(d => d <= tolerance);
        return (double)close / (predCount + truthCount);
    }

    /// <summary>
    /// medvlsm's <c>ones_dice_diff</c> and <c>zeros_dice_diff</c> (scripts/eval_metrics.py): the
    /// prediction's Dice minus the Dice an all-foreground, and an all-background, prediction would
    /// get, so a model is credited only for what it adds over the trivial answers (as fractions here,
    /// where medvlsm prints percentages).
    /// </summary>
    public static (double OnesDiff, double ZerosDiff) TrivialDiceDifferences(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth)
    {
        double dice = Dice(prediction, truth);
        int positives = 0;
        foreach (bool t in truth) if (t) positives++;
        double ones = positives == 0 ? 0 : 2.0 * positives / (positives + truth.Length);
        double zeros = positives == 0 ? 1 : 0;
        return (dice - ones, dice - zeros);
    }

    internal static bool[] Edges(ReadOnlySpan<bool> mask, int w, int h)
    {
        var edges = new bool[mask.Length];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                if (!mask[i]) continue;
                bool interior = x > 0 && x < w - 1 && y > 0 && y < h - 1
                    && mask[i - 1] && mask[i + 1] && mask[i - w] && mask[i + w];
                edges[i] = !interior;
            }
        }
        return edges;
    }

    /// <summary>For every edge pixel of <paramref name="from"/>, the Euclidean distance to the nearest edge pixel of <paramref name="to"/>.</summary>
    private static List<double> DirectedDistances(bool[] from, bool[] to, int w, int h)
    {
        var squared = SquaredDistanceTransform(to, w, h);
        var distances = new List<double>();
        for (int i = 0; i < from.Length; i++)
            if (from[i]) distances.Add(Math.Sqrt(squared[i]));
        return distances;
    }

    /// <summary>
    /// Exact squared Euclidean distance to the nearest set pixel (Felzenszwalb and Huttenlocher's
    /// separable lower-envelope algorithm), O(w·h).
    /// </summary>
    internal static double[] SquaredDistanceTransform(bool[] sites, int w, int h)
    {
        const double Inf = 1e20;
        var d = new double[w * h];
        for (int i = 0; i < d.Length; i++) d[i] = sites[i] ? 0 : Inf;
        int n = Math.Max(w, h);
        var f = new double[n];
        var result = new double[n];
        var v = new int[n];
        var z = new double[n + 1];
        for (int x = 0; x < w; x++)
        {
            for (int y = 0; y < h; y++) f[y] = d[y * w + x];
            Envelope(f, h, result, v, z);
            for (int y = 0; y < h; y++) d[y * w + x] = result[y];
        }
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++) f[x] = d[y * w + x];
            Envelope(f, w, result, v, z);
            for (int x = 0; x < w; x++) d[y * w + x] = result[x];
        }
        return d;
    }

    private static void Envelope(double[] f, int n, double[] result, int[] v, double[] z)
    {
        static double Intersection(double[] f, int q, int p) => ((f[q] + (double)q * q) - (f[p] + (double)p * p)) / (2.0 * (q - p));
        int k = 0;
        v[0] = 0;
        z[0] = double.NegativeInfinity;
        z[1] = double.PositiveInfinity;
        for (int q = 1; q < n; q++)
        {
            double s = Intersection(f, q, v[k]);
            while (s <= z[k])
            {
                k--;
                s = Intersection(f, q, v[k]);
            }
            k++;
            v[k] = q;
            z[k] = s;
            z[k + 1] = double.PositiveInfinity;
        }
        k = 0;
        for (int q = 0; q < n; q++)
        {
            while (z[k + 1] < q) k++;
            double dq = q - v[k];
            result[q] = dq * dq + f[v[k]];
        }
    }

    /// <summary>NumPy's default (linear) percentile.</summary>
    internal static double Percentile95(List<double> values)
    {
        values.Sort();
        double position = 0.95 * (values.Count - 1);
        int lo = (int)Math.Floor(position);
        int hi = Math.Min(lo + 1, values.Count - 1);
        return values[lo] + (values[hi] - values[lo]) * (position - lo);
    }
}
