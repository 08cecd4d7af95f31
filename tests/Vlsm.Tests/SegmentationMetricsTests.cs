using CsCheck;
using Vlsm.Evaluation;

namespace Vlsm.Tests;

public class SegmentationMetricsTests
{
    private static bool[] Mask(int w, int h, params (int X, int Y)[] on)
    {
        var m = new bool[w * h];
        foreach (var (x, y) in on) m[y * w + x] = true;
        return m;
    }

    private static bool[] Rect(int w, int h, int x0, int y0, int x1, int y1)
    {
        var m = new bool[w * h];
        for (int y = y0; y <= y1; y++) for (int x = x0; x <= x1; x++) m[y * w + x] = true;
        return m;
    }

    [Fact]
    public void DiceAndIoUOnHandCountedMasks()
    {
        // P has 4 pixels, G has 6, they share 3: Dice = 6/10, IoU = 3/7.
        var p = Mask(4, 3, (0, 0), (1, 0), (2, 0), (3, 2));
        var g = Mask(4, 3, (0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1));
        Assert.Equal(0.6, SegmentationMetrics.Dice(p, g), 12);
        Assert.Equal(3.0 / 7.0, SegmentationMetrics.IoU(p, g), 12);
    }

    [Fact]
    public void EmptyMaskConventions()
    {
        var empty = new bool[9];
        var some = Mask(3, 3, (1, 1));
        Assert.Equal(1.0, SegmentationMetrics.Dice(empty, empty));
        Assert.Equal(1.0, SegmentationMetrics.IoU(empty, empty));
        Assert.Equal(0.0, SegmentationMetrics.Dice(some, empty));
        Assert.Equal(0.0, SegmentationMetrics.IoU(some, empty));
        Assert.Equal(0.0, SegmentationMetrics.Dice(empty, some));
        Assert.Null(SegmentationMetrics.Hd95(empty, some, 3, 3));
        Assert.Null(SegmentationMetrics.Hd95(some, empty, 3, 3));
        Assert.Null(SegmentationMetrics.Hd95(empty, empty, 3, 3));
    }

    [Fact]
    public void Hd95OfIdenticalMasksIsZero()
    {
        var m = Rect(10, 8, 2, 2, 6, 5);
        Assert.Equal(0.0, SegmentationMetrics.Hd95(m, m, 10, 8));
    }

    [Fact]
    public void Hd95OfARectangleShiftedSidewaysIsTheShift()
    {
        // Every edge pixel of one 5x5 square has its nearest edge pixel of the other square,
        // shifted right by 3, at distance 0 or 3 (vertical sides) and the 95th percentile picks 3.
        var a = Rect(20, 20, 2, 2, 6, 6);
        var b = Rect(20, 20, 5, 2, 9, 6);
        Assert.Equal(3.0, SegmentationMetrics.Hd95(a, b, 20, 20)!.Value, 9);
    }

    [Fact]
    public void Hd95OfTwoSinglePixelsIsTheirDistance()
    {
        var a = Mask(10, 10, (1, 1));
        var b = Mask(10, 10, (4, 5));
        Assert.Equal(5.0, SegmentationMetrics.Hd95(a, b, 10, 10)!.Value, 9);
    }

    [Fact]
    public void Hd95PercentileInterpolatesLinearlyAsNumPy()
    {
        // Edges of A: 21 pixels in a row at y=0; B: one pixel at (0,0). Distances 0..20;
        // NumPy percentile 95 of 0..20 = 19.0; other direction: B's pixel is on A's edge (0).
        var a = Rect(21, 3, 0, 0, 20, 0);
        var b = Mask(21, 3, (0, 0));
        Assert.Equal(19.0, SegmentationMetrics.Hd95(a, b, 21, 3)!.Value, 9);
    }

    [Fact]
    public void EdgesTreatTheImageBorderAsBackground()
    {
        var full = Enumerable.Repeat(true, 5 * 4).ToArray();
        var edges = SegmentationMetrics.EdgeIndices(full, 5, 4);
        Assert.Equal(5 * 4 - 3 * 2, edges.Count); // all but the 3x2 interior
    }

    [Fact]
    public void DistanceTransformEqualsBruteForce()
    {
        Gen.Int[1, 12].Select(Gen.Int[1, 12]).SelectMany((w, h) => Gen.Bool.Array[w * h].Select(m => (w, h, m)))
            .Where(t => t.m.Contains(true))
            .Sample(t =>
            {
                var (w, h, m) = t;
                var d = SegmentationMetrics.SquaredDistanceTransform(m, w, h);
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        double best = double.MaxValue;
                        for (int yy = 0; yy < h; yy++)
                            for (int xx = 0; xx < w; xx++)
                                if (m[yy * w + xx]) best = Math.Min(best, (x - xx) * (x - xx) + (y - yy) * (y - yy));
                        if (Math.Abs(d[y * w + x] - best) > 1e-9) return false;
                    }
                return true;
            }, iter: 300);
    }
}
