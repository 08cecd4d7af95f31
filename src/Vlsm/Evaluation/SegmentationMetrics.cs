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
        return SurfaceScores(prediction, truth, width, height, 0).Hd95;
    }

    /// <summary>
    /// Normalised surface Dice, as MONAI's <c>compute_surface_dice</c> (Euclidean, no sub-pixel
    /// areas): the fraction of both masks' edge pixels lying within <paramref name="tolerance"/>
    /// pixels of the other mask's edge. Null when both masks are empty (undefined); 0 when only one is.
    /// </summary>
    public static double? SurfaceDice(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth, int width, int height, double tolerance)
    {
        return SurfaceScores(prediction, truth, width, height, tolerance).Nsd;
    }

    /// <summary>
    /// <see cref="Hd95"/> and <see cref="SurfaceDice"/> at once, from one pair of distance transforms.
    /// Memory follows the masks' edges, not the image: edges are kept as pixel indices and each
    /// transform covers only the bounding box of both edges (where every site lies, so the distances
    /// are exact), at two bytes per pixel of it.
    /// </summary>
    public static (double? Hd95, double? Nsd) SurfaceScores(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> truth, int width, int height, double tolerance)
    {
        if (prediction.Length != width * height || truth.Length != width * height)
            throw new ArgumentException($"masks must have {width}×{height} pixels.");
        if (!(tolerance >= 0) || double.IsInfinity(tolerance)) throw new ArgumentOutOfRangeException(nameof(tolerance), "the tolerance must be a finite number of pixels, 0 or more.");
        var predEdges = EdgeIndices(prediction, width, height);
        var truthEdges = EdgeIndices(truth, width, height);
        if (predEdges.Count + truthEdges.Count == 0) return (null, null);
        if (predEdges.Count == 0 || truthEdges.Count == 0) return (null, 0);
        var a = DirectedDistances(predEdges, truthEdges, width);
        var b = DirectedDistances(truthEdges, predEdges, width);
        double nsd = (double)(a.Count(d => d <= tolerance) + b.Count(d => d <= tolerance)) / (predEdges.Count + truthEdges.Count);
        return (Math.Max(Percentile95(a), Percentile95(b)), nsd);
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

    /// <summary>The indices of the edge pixels (foreground pixels not inside the 4-connected cross, the outside counted as background), in raster order.</summary>
    internal static List<int> EdgeIndices(ReadOnlySpan<bool> mask, int w, int h)
    {
        var edges = new List<int>();
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                if (!mask[i]) continue;
                bool interior = x > 0 && x < w - 1 && y > 0 && y < h - 1
                    && mask[i - 1] && mask[i + 1] && mask[i - w] && mask[i + w];
                if (!interior) edges.Add(i);
            }
        }
        return edges;
    }

    /// <summary>For every edge pixel of <paramref name="from"/> (raster order), the Euclidean distance to the nearest edge pixel of <paramref name="to"/>.</summary>
    private static List<double> DirectedDistances(List<int> from, List<int> to, int w)
    {
        // The bounding box of both edge sets holds every site, so the transform restricted to it is exact there.
        int x0 = int.MaxValue, y0 = int.MaxValue, x1 = -1, y1 = -1;
        foreach (var list in new[] { from, to })
        {
            foreach (int i in list)
            {
                int x = i % w, y = i / w;
                x0 = Math.Min(x0, x); x1 = Math.Max(x1, x);
                y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
            }
        }
        int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
        var distances = new List<double>(from.Count);
        if (bh < NoSite)
        {
            ColumnDistanceSquares(from, to, w, x0, y0, bw, bh, distances);
            return distances;
        }
        // A window over 65534 pixels tall: the double transform on it.
        var sites = new bool[(long)bw * bh];
        foreach (int i in to) sites[(i / w - y0) * bw + (i % w - x0)] = true;
        var d = SquaredDistanceTransform(sites, bw, bh);
        foreach (int i in from) distances.Add(Math.Sqrt(d[(i / w - y0) * bw + (i % w - x0)]));
        return distances;
    }

    private const ushort NoSite = ushort.MaxValue;

    /// <summary>
    /// The separable exact transform (Felzenszwalb and Huttenlocher) with two bytes per pixel of the
    /// window: first each pixel's vertical distance to the nearest site of its column (two sweeps),
    /// then, only on rows that hold a pixel of <paramref name="from"/>, the lower envelope of
    /// (x - x')² + dy(x')², read at those pixels. Appends the distances in <paramref name="from"/>'s order.
    /// </summary>
    private static void ColumnDistanceSquares(List<int> from, List<int> to, int w, int x0, int y0, int ww, int wh, List<double> distances)
    {
        var dy = new ushort[(long)ww * wh];
        Array.Fill(dy, NoSite);
        foreach (int i in to) dy[(long)(i / w - y0) * ww + (i % w - x0)] = 0;
        for (int x = 0; x < ww; x++)
        {
            int last = -1;
            for (int y = 0; y < wh; y++)
            {
                long at = (long)y * ww + x;
                if (dy[at] == 0) last = y;
                else if (last >= 0) dy[at] = (ushort)(y - last);
            }
            int next = -1;
            for (int y = wh - 1; y >= 0; y--)
            {
                long at = (long)y * ww + x;
                if (dy[at] == 0) next = y;
                else if (next >= 0 && next - y < dy[at]) dy[at] = (ushort)(next - y);
            }
        }
        const double Inf = 1e20;
        var f = new double[ww];
        var result = new double[ww];
        var v = new int[ww];
        var z = new double[ww + 1];
        int row = -1;
        foreach (int i in from)
        {
            int y = i / w - y0;
            if (y != row)
            {
                row = y;
                for (int x = 0; x < ww; x++)
                {
                    ushort d = dy[(long)y * ww + x];
                    f[x] = d == NoSite ? Inf : (double)d * d;
                }
                Envelope(f, ww, result, v, z);
            }
            distances.Add(Math.Sqrt(result[i % w - x0]));
        }
    }

    /// <summary>
    /// Exact squared Euclidean distance to the nearest set pixel (Felzenszwalb and Huttenlocher's
    /// separable lower-envelope algorithm), O(w·h).
    /// </summary>
    internal static double[] SquaredDistanceTransform(bool[] sites, int w, int h)
    {
        const double Inf = 1e20;
        var d = new double[(long)w * h];
        for (long i = 0; i < d.LongLength; i++) d[i] = sites[i] ? 0 : Inf;
        int n = Math.Max(w, h);
        var f = new double[n];
        var result = new double[n];
        var v = new int[n];
        var z = new double[n + 1];
        for (int x = 0; x < w; x++)
        {
            for (int y = 0; y < h; y++) f[y] = d[(long)y * w + x];
            Envelope(f, h, result, v, z);
            for (int y = 0; y < h; y++) d[(long)y * w + x] = result[y];
        }
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++) f[x] = d[(long)y * w + x];
            Envelope(f, w, result, v, z);
            for (int x = 0; x < w; x++) d[(long)y * w + x] = result[x];
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
