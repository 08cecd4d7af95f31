using Vlsm.Data.Prompts;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>medvlsm's number/size/location rules and our colour/shape rules, on constructed masks.</summary>
public sealed class PromptRuleTests
{
    /// <summary>A w×h mask with the given rectangles (inclusive corners) filled.</summary>
    internal static BinaryMask Rects(int w, int h, params (int X0, int Y0, int X1, int Y1)[] rects)
    {
        var mask = new BinaryMask(w, h);
        foreach (var (x0, y0, x1, y1) in rects)
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++)
                    mask[x, y] = true;
        return mask;
    }

    /// <summary>A 100x100 mask (10,000 pixels) whose single component has exactly <paramref name="pixels"/> pixels, filled row by row.</summary>
    private static BinaryMask Exactly(int pixels)
    {
        var mask = new BinaryMask(100, 100);
        for (int i = 0; i < pixels; i++) mask.Pixels[i] = true;
        return mask;
    }

    // ------------------------------------------------------------------ size

    [Theory]
    [InlineData(3001, "large")]  // 0.3001
    [InlineData(3000, "medium")] // exactly 0.30: not above it
    [InlineData(801, "medium")]  // 0.0801
    [InlineData(800, "small")]   // exactly 0.08
    [InlineData(10, "small")]    // exactly 0.001: not below it
    [InlineData(9, "tiny")]      // 0.0009
    [InlineData(2, "tiny")]      // 0.0002
    public void SizeThresholdsOnPixelCounts(int pixels, string expected)
    {
        var d = MaskDescription.Of(Exactly(pixels));
        Assert.Single(d.Components);
        Assert.Equal(expected, d.Sizes);
    }

    [Fact]
    public void ComponentAtOrBelowOneTenThousandthGetsNoSizeButCounts()
    {
        var d = MaskDescription.Of(Exactly(1)); // exactly 1e-4
        Assert.Null(d.Components[0].Size);
        Assert.Equal("", d.Sizes);
        Assert.Equal("one", d.Number);
        Assert.Equal("top left", d.Locations);
    }

    [Fact]
    public void SizeWordAtTheExactDoubleThresholds()
    {
        Assert.Equal("large", MedvlsmRules.SizeWord(Math.BitIncrement(0.30)));
        Assert.Equal("medium", MedvlsmRules.SizeWord(0.30));
        Assert.Equal("medium", MedvlsmRules.SizeWord(Math.BitIncrement(0.08)));
        Assert.Equal("small", MedvlsmRules.SizeWord(0.08));
        Assert.Equal("small", MedvlsmRules.SizeWord(0.001));
        Assert.Equal("tiny", MedvlsmRules.SizeWord(Math.BitDecrement(0.001)));
        Assert.Equal("tiny", MedvlsmRules.SizeWord(Math.BitIncrement(1e-4)));
        Assert.Null(MedvlsmRules.SizeWord(1e-4));
        Assert.Null(MedvlsmRules.SizeWord(0));
        Assert.Equal("large", MedvlsmRules.SizeWord(1));
    }

    [Fact]
    public void SizesAreDistinctAndOrderedTinyToLarge()
    {
        Assert.Equal("tiny, small, large", MedvlsmRules.JoinSizes(["large", "small", null, "tiny", "small"]));
        Assert.Equal("", MedvlsmRules.JoinSizes([null]));
    }

    // ------------------------------------------------------------------ number and components

    [Theory]
    [InlineData(0, "zero")]
    [InlineData(1, "one")]
    [InlineData(2, "two")]
    [InlineData(7, "seven")]
    [InlineData(11, "eleven")]
    [InlineData(13, "thirteen")]
    [InlineData(20, "twenty")]
    [InlineData(21, "21")]
    [InlineData(105, "105")]
    public void NumberWords(int count, string expected) => Assert.Equal(expected, MedvlsmRules.NumberWord(count));

    [Fact]
    public void DiagonalPixelsAreTwoComponents()
    {
        var d = MaskDescription.Of(BinaryMask.Parse(
            "#..",
            ".#.",
            "..."));
        Assert.Equal(2, d.Components.Count);
        Assert.Equal("two", d.Number);
    }

    [Fact]
    public void EdgeNeighboursAreOneComponent()
    {
        var d = MaskDescription.Of(BinaryMask.Parse(
            "##.",
            ".##",
            "..#"));
        Assert.Single(d.Components);
    }

    [Fact]
    public void ComponentsAreNumberedInRasterOrderOfTheirFirstPixel()
    {
        // The U's left arm starts first, but its right arm (same component) is found from it; the
        // dot at row 0 column 4 starts before the U's bottom: labels are U = 1, dot = 2, bar = 3.
        var labels = ConnectedComponents.Label(BinaryMask.Parse(
            "#.#.#",
            "#.#..",
            "###..",
            ".....",
            "####."));
        Assert.Equal([1, 2, 3], labels.Components.Select(c => c.Label));
        Assert.Equal([7, 1, 4], labels.Components.Select(c => c.PixelCount));
        Assert.Equal((0, 0), (labels.Components[0].FirstX, labels.Components[0].FirstY));
        Assert.Equal((4, 0), (labels.Components[1].FirstX, labels.Components[1].FirstY));
        Assert.Equal(2, labels.Labels[4]);
    }

    [Fact]
    public void SeveralComponentsJoinSizesAndLocationsInRasterOrder()
    {
        // 100x100. First pixels: tiny (5 px) at row 2 top right; medium (900 px) at row 40
        // centre; small (200 px) at row 80 bottom left; a 1-pixel speck (no size) at row 95 bottom right.
        var mask = Rects(100, 100,
            (90, 2, 94, 2),     // tiny, top right
            (35, 40, 64, 69),   // 30x30 = 900 px = 0.09: medium, cells center only? rows 40-69 span center and bottom
            (5, 80, 24, 89),    // 20x10 = 200 px = 0.02: small, bottom left
            (97, 95, 97, 95));  // 1 px = 1e-4: no size
        var d = MaskDescription.Of(mask);
        Assert.Equal("four", d.Number);
        Assert.Equal("tiny, small, medium", d.Sizes);
        Assert.Equal([5, 900, 200, 1], d.Components.Select(c => c.Component.PixelCount));
        // The medium block spans rows 40–69 over bands 33–65 / 66–99 and columns 35–64 within 33–65:
        // center 26 rows (87 %), bottom 4 rows (13 %) → several significant → bbox centre (54.5, 49.5) → center.
        Assert.Equal("top right, center, bottom left, bottom right", d.Locations);
    }

    [Fact]
    public void EmptyMaskHasNoComponents()
    {
        var d = MaskDescription.Of(new BinaryMask(10, 7));
        Assert.True(d.IsEmpty);
        Assert.Equal("zero", d.Number);
        Assert.Equal("", d.Sizes);
        Assert.Equal("", d.Locations);
        Assert.Null(PromptGenerator.Describe(new RgbImage(10, 7), new BinaryMask(10, 7)));
        Assert.Null(ShapeClassifier.Name(new BinaryMask(10, 7)));
        Assert.Null(ColorNamer.Name(new RgbImage(10, 7), new BinaryMask(10, 7)));
    }

    [Fact]
    public void BinarisesAbove127Point5()
    {
        var gray = new GrayImage(4, 1, [0, 127, 128, 255]);
        Assert.Equal([false, false, true, true], BinaryMask.FromGray(gray).Pixels);
    }

    // ------------------------------------------------------------------ location

    [Fact]
    public void GridBandsFollowPythonIntDivision()
    {
        // int(100/3) = 33, int(200/3) = 66.
        Assert.Equal([0, 1, 1, 2], new[] { 32, 33, 65, 66 }.Select(i => LocationGrid.Band(i, 100)));
        // 30 → 10, 20.
        Assert.Equal([0, 1, 1, 2], new[] { 9, 10, 19, 20 }.Select(i => LocationGrid.Band(i, 30)));
    }

    [Theory]
    [InlineData(2, 2, "top left")]
    [InlineData(15, 2, "top")]
    [InlineData(27, 2, "top right")]
    [InlineData(2, 15, "left")]
    [InlineData(15, 15, "center")]
    [InlineData(27, 15, "right")]
    [InlineData(2, 27, "bottom left")]
    [InlineData(15, 27, "bottom")]
    [InlineData(27, 27, "bottom right")]
    public void ComponentInOneCellIsThatCell(int x, int y, string expected)
    {
        var d = MaskDescription.Of(Rects(30, 30, (x - 1, y - 1, x + 1, y + 1)));
        Assert.Equal(expected, d.Locations);
    }

    [Fact]
    public void OneSignificantCellWins()
    {
        // 100 px in the centre cell and a 5 px tail into the right cell (4.8 % < 10 %).
        var d = MaskDescription.Of(Rects(30, 30, (10, 10, 19, 19), (20, 15, 24, 15)));
        Assert.Equal("center", d.Locations);
    }

    [Theory]
    [InlineData(10, "center")] // 10 of 100 px in the center cell: exactly 10 % is significant → box centre row 10.0 → center
    [InlineData(9, "top")]     // 9 of 99 px: not significant → the top cell alone
    public void TenPercentExactlyIsSignificant(int tail, string expected)
    {
        // 90 px in the top cell (rows 1–9, columns 10–19) and a vertical tail down column 15 into the center cell.
        var d = MaskDescription.Of(Rects(30, 30, (10, 1, 19, 9), (15, 10, 15, 10 + tail - 1)));
        var cells = d.Components[0].Component.CellCounts;
        Assert.Equal(90, cells[1]);
        Assert.Equal(tail, cells[4]);
        Assert.Equal(expected, d.Locations);
    }

    [Fact]
    public void NoSignificantCellPicksTheSmallestOccupiedShare()
    {
        // Cannot come from a real mask (some cell always holds ≥ 1/9); medvlsm reaches it when its
        // share denominator disagrees with the cell counts. Smallest share → "right"; ties → grid order.
        var c = new MaskComponent(1, 100, 0, 0, 0, 29, 0, 29, [5, 4, 6, 7, 8, 2, 9, 3, 9]);
        Assert.Equal("right", MedvlsmRules.Location(c, 30, 30));
        var tie = new MaskComponent(1, 100, 0, 0, 0, 29, 0, 29, [0, 3, 5, 0, 0, 3, 0, 0, 0]);
        Assert.Equal("top", MedvlsmRules.Location(tie, 30, 30));
    }

    [Theory]
    [InlineData(0, 2, 29, 7, "top")]             // bar across the top band: three cells, centre column 15 → top
    [InlineData(15, 15, 29, 29, "bottom right")] // centre (22, 22): both beyond 2/3
    [InlineData(5, 5, 24, 24, "center")]         // all nine cells, centre (14.5, 14.5)
    [InlineData(2, 5, 12, 15, "left")]           // centre row exactly 10 = H/3 counts as center; column 7 → left
    [InlineData(0, 12, 14, 29, "bottom left")]   // touches the left edge: column (0+14+1)/2 = 7.5 → left; row 20.5 → bottom
    public void SeveralSignificantCellsUseTheBoxCentre(int x0, int y0, int x1, int y1, string expected)
    {
        var d = MaskDescription.Of(Rects(30, 30, (x0, y0, x1, y1)));
        Assert.True(d.Components[0].Component.CellCounts.Count(n => n >= 0.1 * d.Components[0].Component.PixelCount) > 1);
        Assert.Equal(expected, d.Locations);
    }

    [Fact]
    public void TopEdgeContourShiftsTheBoxCentreHalfAPixel()
    {
        // Rows 0–19, columns 10–19: top and center cells, 50 % each. medvlsm's contour box starts
        // at row 0 (open contour) instead of −1, so the centre row is 10.0 = H/3 → center, not 9.5 → top.
        var d = MaskDescription.Of(Rects(30, 30, (10, 0, 19, 19)));
        Assert.Equal((10.0, 14.5), MedvlsmRules.BoxCentre(d.Components[0].Component));
        Assert.Equal("center", d.Locations);
        // The same block one row lower: centre (10.5, 14.5), also center; one row higher is impossible.
        var lower = MaskDescription.Of(Rects(30, 30, (10, 1, 19, 20)));
        Assert.Equal((10.5, 14.5), MedvlsmRules.BoxCentre(lower.Components[0].Component));
    }

    [Fact]
    public void NonSquareImageUsesHeightForRowsAndWidthForColumns()
    {
        // 60 wide, 30 high: columns split at 20 and 40, rows at 10 and 20.
        Assert.Equal("top right", MaskDescription.Of(Rects(60, 30, (45, 5, 45, 5))).Locations);
        Assert.Equal("bottom left", MaskDescription.Of(Rects(60, 30, (19, 20, 19, 20))).Locations);
        // A vertical bar in columns 22–28 over all rows: top, center, bottom cells of the middle
        // column; centre (15, 25). By width thirds (20, 40) column 25 is center; medvlsm's code
        // compared it with height thirds (10, 20) and would have said "right".
        Assert.Equal("center", MaskDescription.Of(Rects(60, 30, (22, 0, 28, 29))).Locations);
        // Columns 45–50: centre column 47.5 > 40 → right.
        Assert.Equal("right", MaskDescription.Of(Rects(60, 30, (45, 0, 50, 29))).Locations);
    }

    // ------------------------------------------------------------------ colour

    public static TheoryData<string> PaletteNames() => new(ColorNamer.Palette.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(PaletteNames))]
    public void PurePaletteColoursNameThemselves(string name)
    {
        var c = ColorNamer.Get(name);
        var image = Uniform(6, 4, c.R, c.G, c.B);
        Assert.Equal(name, ColorNamer.Name(image, Rects(6, 4, (1, 1, 3, 2))));
        Assert.Equal(name, ColorNamer.Nearest(c.R, c.G, c.B).Name);
    }

    [Theory]
    [InlineData(255, 0, 0, "red")]
    [InlineData(255, 255, 255, "white")]
    [InlineData(0, 0, 0, "black")]
    [InlineData(250, 170, 190, "pink")]
    [InlineData(110, 60, 30, "brown")]
    [InlineData(0, 0, 255, "blue")]
    public void TypicalColoursGetTheExpectedWord(byte r, byte g, byte b, string expected) =>
        Assert.Equal(expected, ColorNamer.Nearest(r, g, b).Name);

    [Fact]
    public void ColourIsTheMedianInsideTheMaskOnly()
    {
        // Inside: 5 red pixels and 2 white highlights (median red); outside: all blue.
        var image = Uniform(4, 4, 0, 0, 255);
        var mask = new BinaryMask(4, 4);
        for (int i = 0; i < 7; i++)
        {
            mask.Pixels[i] = true;
            var (r, g, b) = i < 5 ? ((byte)220, (byte)35, (byte)35) : ((byte)255, (byte)255, (byte)255);
            image.Pixels[3 * i] = r;
            image.Pixels[3 * i + 1] = g;
            image.Pixels[3 * i + 2] = b;
        }
        Assert.Equal("red", ColorNamer.Name(image, mask));
    }

    [Fact]
    public void EvenCountMedianAveragesTheMiddleValues()
    {
        var image = new RgbImage(2, 1, [10, 20, 30, 20, 40, 60]);
        Assert.Equal((15.0, 30.0, 45.0), ColorNamer.MedianColor(image, Rects(2, 1, (0, 0, 1, 0))));
    }

    internal static RgbImage Uniform(int w, int h, byte r, byte g, byte b)
    {
        var image = new RgbImage(w, h);
        for (int i = 0; i < w * h; i++)
        {
            image.Pixels[3 * i] = r;
            image.Pixels[3 * i + 1] = g;
            image.Pixels[3 * i + 2] = b;
        }
        return image;
    }

    // ------------------------------------------------------------------ shape

    internal static BinaryMask Draw(int w, int h, Func<double, double, bool> inside)
    {
        var mask = new BinaryMask(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                mask[x, y] = inside(x + 0.5, y + 0.5);
        return mask;
    }

    private static Func<double, double, bool> RotatedEllipse(double cx, double cy, double a, double b, double angle) => (x, y) =>
    {
        double c = Math.Cos(angle), s = Math.Sin(angle);
        double u = c * (x - cx) + s * (y - cy), v = -s * (x - cx) + c * (y - cy);
        return u * u / (a * a) + v * v / (b * b) <= 1;
    };

    /// <summary>Five-pointed star with outer radius <paramref name="outer"/> and inner radius <paramref name="inner"/>.</summary>
    private static Func<double, double, bool> Star(double cx, double cy, double outer, double inner)
    {
        var pts = Enumerable.Range(0, 10).Select(k =>
        {
            double t = -Math.PI / 2 + k * Math.PI / 5, r = k % 2 == 0 ? outer : inner;
            return (X: cx + r * Math.Cos(t), Y: cy + r * Math.Sin(t));
        }).ToArray();
        return (x, y) =>
        {
            bool inside = false;
            for (int i = 0, j = 9; i < 10; j = i++)
                if ((pts[i].Y > y) != (pts[j].Y > y) && x < (pts[j].X - pts[i].X) * (y - pts[i].Y) / (pts[j].Y - pts[i].Y) + pts[i].X)
                    inside = !inside;
            return inside;
        };
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(10)]
    [InlineData(25)]
    [InlineData(40)]
    public void DiscsAreRound(double radius)
    {
        var mask = Draw(100, 100, (x, y) => (x - 50) * (x - 50) + (y - 50) * (y - 50) <= radius * radius);
        Assert.Equal("round", ShapeClassifier.Name(mask));
    }

    [Theory]
    [InlineData(20, 10, 0.0)]
    [InlineData(24, 14, 0.7)]
    [InlineData(30, 17, 2.0)]
    public void TwoToOneEllipsesAreOval(double a, double b, double angle) =>
        Assert.Equal("oval", ShapeClassifier.Name(Draw(100, 100, RotatedEllipse(50, 50, a, b, angle))));

    [Theory]
    [InlineData(3, 40)]
    [InlineData(5, 30)]
    [InlineData(2, 20)]
    public void ThinBarsAreElongated(int width, int length) =>
        Assert.Equal("elongated", ShapeClassifier.Name(Rects(100, 100, (50, 20, 50 + width - 1, 20 + length - 1))));

    [Fact]
    public void DiagonalThinEllipseIsElongated() =>
        Assert.Equal("elongated", ShapeClassifier.Name(Draw(100, 100, RotatedEllipse(50, 50, 40, 8, 0.8))));

    [Theory]
    [InlineData(30, 12)]
    [InlineData(20, 10)]
    [InlineData(10, 5)]
    public void StarsAreIrregular(double outer, double inner) =>
        Assert.Equal("irregular", ShapeClassifier.Name(Draw(100, 100, Star(50, 50, outer, inner))));

    [Fact]
    public void BumpyBlobAndCrescentAreIrregular()
    {
        // A disc with four bumps on its rim.
        var blob = Draw(100, 100, (x, y) =>
            (x - 50) * (x - 50) + (y - 50) * (y - 50) <= 13 * 13
            || new[] { (62.0, 50.0), (38.0, 52.0), (50.0, 63.0), (48.0, 37.0) }.Any(c => (x - c.Item1) * (x - c.Item1) + (y - c.Item2) * (y - c.Item2) <= 36));
        var m = ShapeClassifier.Measure(blob);
        Assert.True(m.Solidity < 0.97 && m.RelativeCircularity < 0.75, m.ToString());
        Assert.Equal("irregular", ShapeClassifier.Name(blob));
        var crescent = Draw(100, 100, (x, y) => (x - 50) * (x - 50) + (y - 50) * (y - 50) <= 400 && (x - 60) * (x - 60) + (y - 50) * (y - 50) > 300);
        Assert.Equal("irregular", ShapeClassifier.Name(crescent));
    }

    [Fact]
    public void ConvexPolygonsAreNotIrregular()
    {
        // Squares and equilateral triangles have solidity 1: their low circularity is corners, not raggedness.
        Assert.Equal("round", ShapeClassifier.Name(Rects(100, 100, (30, 30, 59, 59))));
        var triangle = Draw(100, 100, (x, y) => y - 50 <= 10 && y - 50 >= -20 + Math.Sqrt(3) * Math.Abs(x - 50));
        var m = ShapeClassifier.Measure(triangle);
        Assert.Equal(1.0, m.Solidity);
        Assert.Equal("round", ShapeClassifier.Classify(m));
    }

    [Fact]
    public void ShapeComesFromTheLargestComponent()
    {
        // A small round dot first in raster order, then a large bar.
        var mask = Rects(100, 100, (10, 5, 14, 9), (20, 30, 80, 35));
        Assert.Equal("elongated", ShapeClassifier.Name(mask));
    }

    [Fact]
    public void MeasuresOfASquareAreExact()
    {
        var m = ShapeClassifier.Measure(Rects(20, 20, (5, 5, 14, 14)));
        Assert.Equal(100, m.Area);
        Assert.Equal(1.0, m.Solidity);
        Assert.Equal(1.0, m.AspectRatio, 12);
        // Contour through edge midpoints: 4 sides of 9 plus 4 corner cuts of √½.
        Assert.Equal(36 + 4 * Math.Sqrt(0.5), m.Perimeter, 9);
    }

    [Fact]
    public void SinglePixelAndTinyRegionsDoNotBreakTheMeasures()
    {
        var one = ShapeClassifier.Measure(Rects(5, 5, (2, 2, 2, 2)));
        Assert.Equal(1, one.Area);
        Assert.Equal(1.0, one.Solidity);
        Assert.Equal("round", ShapeClassifier.Classify(one));
        Assert.Equal("elongated", ShapeClassifier.Name(Rects(9, 3, (1, 1, 7, 1))));
    }
}
