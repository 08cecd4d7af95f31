using CsCheck;
using Vlsm.Evaluation;

namespace Vlsm.Tests;

/// <summary>HD95 and NSD from edge lists and a transform over the edges' bounding box only (bounded memory on large masks) equal brute force.</summary>
public sealed class SurfaceScoresTests
{
    /// <summary>Edge pixels (4-connected cross, outside counts as background) and brute-force directed distances.</summary>
    private static (double? Hd95, double? Nsd) BruteForce(bool[] p, bool[] t, int w, int h, double tolerance)
    {
        List<(int X, int Y)> Edges(bool[] m)
        {
            var e = new List<(int, int)>();
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int i = y * w + x;
                    if (!m[i]) continue;
                    bool interior = x > 0 && x < w - 1 && y > 0 && y < h - 1 && m[i - 1] && m[i + 1] && m[i - w] && m[i + w];
                    if (!interior) e.Add((x, y));
                }
            return e;
        }
        var pe = Edges(p);
        var te = Edges(t);
        if (pe.Count + te.Count == 0) return (null, null);
        if (pe.Count == 0 || te.Count == 0) return (null, 0);
        List<double> Directed(List<(int X, int Y)> from, List<(int X, int Y)> to) =>
            from.Select(a => to.Min(b => Math.Sqrt((a.X - b.X) * (a.X - b.X) + (a.Y - b.Y) * (a.Y - b.Y)))).ToList();
        var ab = Directed(pe, te);
        var ba = Directed(te, pe);
        double nsd = (double)(ab.Count(d => d <= tolerance) + ba.Count(d => d <= tolerance)) / (pe.Count + te.Count);
        return (Math.Max(SegmentationMetrics.Percentile95(ab), SegmentationMetrics.Percentile95(ba)), nsd);
    }

    [Fact]
    public void EqualBruteForceOnRandomMasks()
    {
        Gen.Int[1, 14].Select(Gen.Int[1, 14]).SelectMany((w, h) => Gen.Bool.Array[w * h].Select(Gen.Bool.Array[w * h]).Select((a, b) => (w, h, a, b)))
            .Sample(c =>
            {
                var (w, h, a, b) = c;
                var (hd, nsd) = SegmentationMetrics.SurfaceScores(a, b, w, h, 1.5);
                var (hdBrute, nsdBrute) = BruteForce(a, b, w, h, 1.5);
                return hd.HasValue == hdBrute.HasValue && (hd is null || Math.Abs(hd.Value - hdBrute!.Value) < 1e-9)
                    && nsd.HasValue == nsdBrute.HasValue && (nsd is null || Math.Abs(nsd.Value - nsdBrute!.Value) < 1e-12)
                    && Nullable.Equals(SegmentationMetrics.Hd95(a, b, w, h), hd)
                    && Nullable.Equals(SegmentationMetrics.SurfaceDice(a, b, w, h, 1.5), nsd);
            }, iter: 300);
    }

    [Fact]
    public void SmallObjectsInALargeImageNeedOnlyTheirBoundingBox()
    {
        // Two 3x3 squares 10 pixels apart in an 8000x8000 image: a transform of the whole image would be 512 MB of doubles.
        const int w = 8000, h = 8000;
        var a = new bool[(long)w * h];
        var b = new bool[(long)w * h];
        for (int y = 5000; y < 5003; y++)
            for (int x = 7000; x < 7003; x++)
            {
                a[(long)y * w + x] = true;
                b[(long)y * w + x + 10] = true;
            }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var (hd, nsd) = SegmentationMetrics.SurfaceScores(a, b, w, h, 2);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(10.0, hd!.Value, 9);
        Assert.Equal(0.0, nsd!.Value);
        Assert.True(allocated < 1 << 20, $"allocated {allocated} bytes");
    }
}
