using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>Overlays, the bitmap font and curves.png, checked by their pixels.</summary>
public sealed class PictureTests
{
    private static (byte R, byte G, byte B) At(RgbImage image, int x, int y)
    {
        int s = 3 * (y * image.Width + x);
        return (image.Pixels[s], image.Pixels[s + 1], image.Pixels[s + 2]);
    }

    private static double Distance((byte R, byte G, byte B) a, (byte R, byte G, byte B) b) =>
        Math.Sqrt(Math.Pow(a.R - b.R, 2) + Math.Pow(a.G - b.G, 2) + Math.Pow(a.B - b.B, 2));

    private static RgbImage Solid(int w, int h, (byte R, byte G, byte B) c)
    {
        var image = new RgbImage(w, h);
        Overlay.Fill(image, 0, 0, w, h, c);
        return image;
    }

    private static GrayImage Rect(int w, int h, int x0, int y0, int x1, int y1)
    {
        var mask = new GrayImage(w, h);
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                mask.Pixels[y * w + x] = 255;
        return mask;
    }

    [Fact]
    public void EveryPrintableGlyphHasInkAndTheyDiffer()
    {
        var seen = new HashSet<string>();
        for (char c = '!'; c <= '~'; c++)
        {
            var cells = string.Concat(Enumerable.Range(0, BitmapFont.CellHeight * BitmapFont.CellWidth)
                .Select(i => BitmapFont.Ink(c, i % BitmapFont.CellWidth, i / BitmapFont.CellWidth) ? '#' : '.'));
            Assert.Contains('#', cells);
            Assert.True(seen.Add(cells), $"'{c}' looks like another glyph");
        }
        // Outside ASCII: drawn as '?'.
        Assert.True(Enumerable.Range(0, 66).All(i => BitmapFont.Ink('é', i % 6, i / 6) == BitmapFont.Ink('?', i % 6, i / 6)));
        Assert.Equal(4 * 6 * 2, BitmapFont.Measure("Dice", 2));
    }

    /// <summary>The fill stays visible on pink tissue and on an orange polyp, and the outline stands apart from fill and both backgrounds.</summary>
    [Fact]
    public void FillAndOutlineStandOutOnPinkTissueAndOrangePolyps()
    {
        (byte, byte, byte)[] backgrounds = [(236, 160, 170), (222, 130, 60), (180, 60, 60)]; // pink tissue, orange polyp, dark red
        foreach (var bg in backgrounds)
        {
            var filled = Overlay.Blend(bg, Overlay.PredictionColor, Overlay.PredictionAlpha);
            Assert.True(Distance(filled, bg) > 90, $"fill on {bg} is {filled}");
            Assert.True(Distance(Overlay.TruthColor, bg) > 80, $"outline on {bg}");
            Assert.True(Distance(Overlay.TruthColor, filled) > 150, $"outline on the fill over {bg}");
        }
    }

    [Fact]
    public void CaptionedOverlayShowsFillOutlineCaptionAndLegend()
    {
        var pink = ((byte)236, (byte)160, (byte)170);
        var image = Solid(64, 48, pink);
        var prediction = Rect(64, 48, 10, 10, 30, 30);
        var truth = Rect(64, 48, 20, 20, 40, 40);
        var drawn = Overlay.Captioned(image, prediction, truth, "small pink polyp, top left", 0.25, 0.143);

        // 64 px wide: enlarged 4x to 256; the image part keeps the aspect ratio, the caption band is below.
        const int k = 4;
        Assert.Equal(256, drawn.Width);
        int band = drawn.Height - 48 * k;
        Assert.InRange(band, 3 * BitmapFont.CellHeight, 6 * BitmapFont.CellHeight);

        var filled = Overlay.Blend(pink, Overlay.PredictionColor, Overlay.PredictionAlpha);
        Assert.Equal(filled, At(drawn, 12 * k, 12 * k));          // prediction only
        Assert.Equal(pink, At(drawn, 50 * k, 5 * k));               // neither
        Assert.Equal(Overlay.TruthColor, At(drawn, 20 * k + 1, 30 * k)); // the truth's left edge
        Assert.Equal(Overlay.TruthColor, At(drawn, 39 * k + 2, 25 * k)); // its right edge
        Assert.Equal(pink, At(drawn, 35 * k, 35 * k));              // inside the truth, not predicted: untouched

        // The band: dark, with white text on three lines (prompt, Dice and IoU, legend).
        int y0 = 48 * k;
        Assert.Equal(Overlay.BandColor, At(drawn, drawn.Width - 1, drawn.Height - 1));
        int line = BitmapFont.CellHeight + 2;
        for (int l = 0; l < 3; l++)
        {
            int white = 0;
            for (int y = y0 + 3 + l * line; y < y0 + 3 + (l + 1) * line; y++)
                for (int x = 0; x < drawn.Width; x++)
                    if (At(drawn, x, y) == Overlay.TextColor) white++;
            Assert.True(white > 40, $"caption line {l} has {white} text pixels");
        }
        // The legend's swatch is the fill over grey; its outlined square is yellow.
        int legendY = y0 + 3 + 2 * line;
        Assert.Equal(Overlay.Blend((128, 128, 128), Overlay.PredictionColor, Overlay.PredictionAlpha), At(drawn, 3 + 2, legendY + 2));
        int yellow = 0;
        for (int y = legendY; y < legendY + BitmapFont.CellHeight; y++)
            for (int x = 0; x < drawn.Width; x++)
                if (At(drawn, x, y) == Overlay.TruthColor) yellow++;
        Assert.True(yellow >= 4 * (BitmapFont.CellHeight - 2), $"legend outline: {yellow} yellow pixels");

        // Without a ground truth: no outline colour anywhere, and the legend names only the prediction.
        var alone = Overlay.Captioned(image, prediction, null, "a polyp");
        Assert.DoesNotContain(Enumerable.Range(0, alone.Width * alone.Height), i => At(alone, i % alone.Width, i / alone.Width) == Overlay.TruthColor);
        Assert.True(alone.Height < drawn.Height); // no Dice line
    }

    [Fact]
    public void LargeImagesAreNotEnlargedAndKeepTheirPixels()
    {
        var image = Solid(300, 20, (10, 20, 30));
        var prediction = new GrayImage(300, 20);
        var drawn = Overlay.Captioned(image, prediction, null, null);
        Assert.Equal(300, drawn.Width);
        Assert.Equal(image.Pixels, drawn.Pixels[..image.Pixels.Length]);
    }

    [Theory]
    [InlineData(1, new[] { 1 })]
    [InlineData(10, new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 })]
    [InlineData(25, new[] { 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24 })]
    [InlineData(200, new[] { 20, 40, 60, 80, 100, 120, 140, 160, 180, 200 })]
    public void EpochTicksAreWholeNumbers(int epochs, int[] expected) =>
        Assert.Equal(expected, CurvesChart.EpochTicks(Enumerable.Range(1, epochs).ToArray()));

    [Fact]
    public void CurvesMarkTheBestEpochAndKeepTheLegendOffTheData()
    {
        int[] epochs = Enumerable.Range(1, 25).ToArray();
        double[] dice = epochs.Select(e => e == 17 ? 0.95 : 0.5 + e / 100.0).ToArray();
        double[] train = epochs.Select(e => 1.0 / e).ToArray();
        double[] val = epochs.Select(e => 1.2 / e + 0.05).ToArray();
        var chart = CurvesChart.Render("dense-vl", epochs, train, val, dice);
        var p = CurvesChart.Plot;
        Assert.Equal((CurvesChart.Width, CurvesChart.Height), (chart.Width, chart.Height));
        Assert.Equal(16, CurvesChart.BestIndex(dice));

        // The best epoch's column: the dashed line over much of the plot's height, and the ring around its Dice point.
        int bx = CurvesChart.XFor(17, epochs);
        int dark = Enumerable.Range(p.Top + 1, p.Bottom - p.Top - 1).Count(y => At(chart, bx, y) == CurvesChart.BestColor);
        Assert.True(dark > (p.Bottom - p.Top) / 3, $"{dark} marker pixels at x {bx}");
        int ring = CurvesChart.YForDice(0.95) - 6;
        Assert.Equal(CurvesChart.BestColor, At(chart, bx, ring));
        // Not at another epoch's column.
        int other = CurvesChart.XFor(5, epochs) + 1;
        Assert.True(Enumerable.Range(p.Top + 1, p.Bottom - p.Top - 1).Count(y => At(chart, other, y) == CurvesChart.BestColor) < 10);

        // Every Dice point is drawn where the 0-1 axis puts it.
        foreach (int e in new[] { 1, 10, 25 })
            Assert.Equal(CurvesChart.ValDiceColor, At(chart, CurvesChart.XFor(e, epochs), CurvesChart.YForDice(dice[e - 1])));
        Assert.Equal(p.Top, CurvesChart.YForDice(1));
        Assert.Equal(p.Bottom, CurvesChart.YForDice(0));

        // The title band has ink; the legend band below the plot shows each series' colour, and the plot has no legend in it.
        Assert.Contains(Enumerable.Range(0, CurvesChart.Width * 30), i => At(chart, i % CurvesChart.Width, i / CurvesChart.Width) == (0, 0, 0));
        foreach (var color in new[] { CurvesChart.TrainLossColor, CurvesChart.ValLossColor, CurvesChart.ValDiceColor })
        {
            int below = 0;
            for (int y = p.Bottom + 40; y < CurvesChart.Height; y++)
                for (int x = 0; x < CurvesChart.Width; x++)
                    if (At(chart, x, y) == color) below++;
            Assert.True(below >= 22 * 3, $"legend sample of {color}: {below} pixels");
        }
        // No text (black) inside the plot's upper right, where a legend box would sit: only data, grid and the best marker.
        for (int y = p.Top + 2; y < p.Top + 60; y++)
            for (int x = p.Right - 200; x < p.Right - 1; x++)
                Assert.True(At(chart, x, y) != (0, 0, 0) || x == bx, $"black pixel at ({x}, {y})");
    }
}
