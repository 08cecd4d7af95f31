using System.Globalization;

namespace Vlsm.Imaging;

/// <summary>
/// A run's curves.png: train and validation loss on the left axis, validation Dice on the right axis
/// from 0 to 1, epochs on whole-number ticks, the best epoch (highest validation Dice, the earliest
/// on ties) marked by a vertical dashed line and a ring on its Dice point, the run's name as the
/// title, and the legend in its own band below the plot so it never covers data. Drawn pixel by
/// pixel with <see cref="BitmapFont"/>: no system font is needed and the same numbers give the same bytes.
/// </summary>
public static class CurvesChart
{
    public const int Width = 900, Height = 500;

    /// <summary>The plot area (data only): left, top, right, bottom edges in pixels (right and bottom inclusive).</summary>
    public static (int Left, int Top, int Right, int Bottom) Plot => (78, 54, Width - 78, Height - 96);

    public static readonly (byte R, byte G, byte B) TrainLossColor = (230, 159, 0);   // Okabe–Ito orange
    public static readonly (byte R, byte G, byte B) ValLossColor = (204, 121, 167);   // Okabe–Ito reddish purple
    public static readonly (byte R, byte G, byte B) ValDiceColor = (0, 114, 178);     // Okabe–Ito blue
    public static readonly (byte R, byte G, byte B) BestColor = (0, 0, 0);
    private static readonly (byte R, byte G, byte B) Paper = (255, 255, 255), Ink = (0, 0, 0), Grid = (225, 225, 225), Axis = (90, 90, 90);

    /// <summary>Index of the best epoch: the highest validation Dice, the earliest on ties; -1 when there are none or all are NaN.</summary>
    public static int BestIndex(IReadOnlyList<double> valDice)
    {
        ArgumentNullException.ThrowIfNull(valDice);
        int best = -1;
        for (int i = 0; i < valDice.Count; i++)
            if (!double.IsNaN(valDice[i]) && (best < 0 || valDice[i] > valDice[best])) best = i;
        return best;
    }

    /// <summary>The x range shown: the first to the last epoch, widened by half an epoch each side (one epoch each side for a single epoch).</summary>
    public static (double Min, double Max) XRange(IReadOnlyList<int> epochs)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        if (epochs.Count == 0) return (0, 1);
        double min = epochs.Min(), max = epochs.Max();
        double pad = max > min ? 0.5 : 1;
        return (min - pad, max + pad);
    }

    /// <summary>Pixel column of <paramref name="epoch"/>.</summary>
    public static int XFor(double epoch, IReadOnlyList<int> epochs)
    {
        var (min, max) = XRange(epochs);
        var p = Plot;
        return p.Left + (int)Math.Round((epoch - min) / (max - min) * (p.Right - p.Left));
    }

    /// <summary>Pixel row of a Dice value (0 at the plot's bottom, 1 at its top).</summary>
    public static int YForDice(double dice)
    {
        var p = Plot;
        return p.Bottom - (int)Math.Round(Math.Clamp(dice, 0, 1) * (p.Bottom - p.Top));
    }

    /// <summary>Whole-number epoch ticks: every 1, 2, 5, 10, 20, 50… epochs, at most 15 of them.</summary>
    public static IReadOnlyList<int> EpochTicks(IReadOnlyList<int> epochs)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        if (epochs.Count == 0) return [];
        int first = epochs.Min(), last = epochs.Max();
        int step = StepFor(last - first);
        var ticks = new List<int>();
        for (int e = (int)Math.Ceiling((double)first / step) * step; e <= last; e += step) ticks.Add(e);
        return ticks;
    }

    private static int StepFor(int span)
    {
        for (int m = 1; ; m *= 10)
            foreach (int s in new[] { 1, 2, 5 })
                if (span / (s * m) + 1 <= 15) return s * m;
    }

    public static RgbImage Render(string title, IReadOnlyList<int> epochs, IReadOnlyList<double> trainLoss, IReadOnlyList<double> valLoss, IReadOnlyList<double> valDice)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(epochs);
        int n = epochs.Count;
        if (trainLoss.Count != n || valLoss.Count != n || valDice.Count != n)
            throw new ArgumentException($"{n} epochs but {trainLoss.Count} train losses, {valLoss.Count} val losses and {valDice.Count} val Dice values.");
        var image = new RgbImage(Width, Height);
        Overlay.Fill(image, 0, 0, Width, Height, Paper);
        var p = Plot;

        // Title (scaled 2x), clipped to the width.
        int titleChars = (Width - 16) / (2 * BitmapFont.CellWidth);
        BitmapFont.Draw(image, title.Length <= titleChars ? title : title[..(titleChars - 3)] + "...", 8, 8, Ink, 2);

        // Loss axis: 0 to five round steps, so its ticks share the Dice axis's grid lines.
        double lossMax = 0;
        foreach (var v in trainLoss.Concat(valLoss)) if (double.IsFinite(v)) lossMax = Math.Max(lossMax, v);
        double lossStep = NiceStep(lossMax <= 0 ? 0.2 : lossMax / 5);
        double lossTop = 5 * lossStep;
        int YForLoss(double v) => p.Bottom - (int)Math.Round(Math.Clamp(v / lossTop, 0, 1) * (p.Bottom - p.Top));

        // Grid at the Dice ticks (0, 0.2, … 1), axes, labels.
        for (int i = 0; i <= 5; i++)
        {
            double d = i / 5.0;
            int y = YForDice(d);
            if (i > 0 && i < 5) Overlay.Fill(image, p.Left, y, p.Right - p.Left + 1, 1, Grid);
            string label = d.ToString("0.0", CultureInfo.InvariantCulture);
            Overlay.Fill(image, p.Right, y, 5, 1, Axis);
            BitmapFont.Draw(image, label, p.Right + 8, y - BitmapFont.CellHeight / 2, ValDiceColor);
        }
        for (int i = 0; i <= 5; i++)
        {
            double v = i * lossStep;
            int y = YForLoss(v);
            string label = Math.Round(v, 6).ToString("0.######", CultureInfo.InvariantCulture);
            Overlay.Fill(image, p.Left - 5, y, 5, 1, Axis);
            BitmapFont.Draw(image, label, p.Left - 8 - BitmapFont.Measure(label), y - BitmapFont.CellHeight / 2, Ink);
        }
        Overlay.Fill(image, p.Left, p.Top, 1, p.Bottom - p.Top + 1, Axis);
        Overlay.Fill(image, p.Right, p.Top, 1, p.Bottom - p.Top + 1, Axis);
        Overlay.Fill(image, p.Left, p.Bottom, p.Right - p.Left + 1, 1, Axis);
        Overlay.Fill(image, p.Left, p.Top, p.Right - p.Left + 1, 1, Axis);
        BitmapFont.Draw(image, "loss", p.Left - BitmapFont.Measure("loss") / 2, p.Top - BitmapFont.CellHeight - 6, Ink);
        BitmapFont.Draw(image, "val Dice (0-1)", p.Right - BitmapFont.Measure("val Dice (0-1)") / 2, p.Top - BitmapFont.CellHeight - 6, ValDiceColor);
        foreach (int e in EpochTicks(epochs))
        {
            int x = XFor(e, epochs);
            Overlay.Fill(image, x, p.Bottom, 1, 5, Axis);
            string label = e.ToString(CultureInfo.InvariantCulture);
            BitmapFont.Draw(image, label, x - BitmapFont.Measure(label) / 2, p.Bottom + 8, Ink);
        }
        BitmapFont.Draw(image, "epoch", (p.Left + p.Right - BitmapFont.Measure("epoch")) / 2, p.Bottom + 8 + BitmapFont.CellHeight + 4, Ink);

        // The best epoch: a dashed vertical line, drawn before the series so they stay on top.
        int best = BestIndex(valDice);
        if (best >= 0)
        {
            int bx = XFor(epochs[best], epochs);
            for (int y = p.Top + 1; y < p.Bottom; y++)
                if ((y - p.Top) % 8 < 5) Overlay.Fill(image, bx, y, 1, 1, BestColor);
        }

        var xs = epochs.Select(e => XFor(e, epochs)).ToArray();
        Series(image, xs, trainLoss.Select(YForLoss).ToArray(), trainLoss, TrainLossColor);
        Series(image, xs, valLoss.Select(YForLoss).ToArray(), valLoss, ValLossColor);
        Series(image, xs, valDice.Select(YForDice).ToArray(), valDice, ValDiceColor);
        if (best >= 0) Ring(image, xs[best], YForDice(valDice[best]), 7, BestColor);

        // Legend band below the axis label.
        int ly = Height - 8 - BitmapFont.CellHeight, lx = p.Left;
        foreach (var (label, color) in new[] { ("train loss", TrainLossColor), ("val loss", ValLossColor), ("val Dice", ValDiceColor) })
        {
            Overlay.Fill(image, lx, ly + BitmapFont.CellHeight / 2 - 1, 22, 3, color);
            lx += 28;
            BitmapFont.Draw(image, label, lx, ly, Ink);
            lx += BitmapFont.Measure(label) + 24;
        }
        if (best >= 0)
        {
            for (int y = ly; y < ly + BitmapFont.CellHeight; y++)
                if ((y - ly) % 4 < 2) Overlay.Fill(image, lx + 4, y, 1, 1, BestColor);
            lx += 14;
            string text = $"best epoch {epochs[best].ToString(CultureInfo.InvariantCulture)}: val Dice {valDice[best].ToString("0.000", CultureInfo.InvariantCulture)}";
            BitmapFont.Draw(image, text, lx, ly, Ink);
        }
        return image;
    }

    private static double NiceStep(double raw)
    {
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        foreach (double m in new[] { 1.0, 2.0, 2.5, 5.0, 10.0 })
            if (m * magnitude >= raw) return m * magnitude;
        return 10 * magnitude;
    }

    /// <summary>Lines 2 px wide between finite points, and a 5x5 square at each point.</summary>
    private static void Series(RgbImage image, int[] xs, int[] ys, IReadOnlyList<double> values, (byte R, byte G, byte B) color)
    {
        for (int i = 0; i < xs.Length; i++)
        {
            if (!double.IsFinite(values[i])) continue;
            if (i > 0 && double.IsFinite(values[i - 1])) LineSegment(image, xs[i - 1], ys[i - 1], xs[i], ys[i], color);
            Overlay.Fill(image, xs[i] - 2, ys[i] - 2, 5, 5, color);
        }
    }

    private static void LineSegment(RgbImage image, int x0, int y0, int x1, int y1, (byte R, byte G, byte B) color)
    {
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
        while (true)
        {
            Overlay.Fill(image, x0, y0, 2, 2, color);
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }

    private static void Ring(RgbImage image, int cx, int cy, int radius, (byte R, byte G, byte B) color)
    {
        for (int y = -radius; y <= radius; y++)
            for (int x = -radius; x <= radius; x++)
            {
                double r = Math.Sqrt(x * x + y * y);
                if (r <= radius && r >= radius - 2) Overlay.Fill(image, cx + x, cy + y, 1, 1, color);
            }
    }
}
