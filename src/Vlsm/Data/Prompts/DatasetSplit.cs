using System.Globalization;

namespace Vlsm.Data.Prompts;

/// <summary>Fractions of images for train, val and test; non-negative and summing to 1.</summary>
public readonly record struct SplitRatios(double Train, double Val, double Test)
{
    public static SplitRatios TrainValTest70_15_15 => new(0.70, 0.15, 0.15);

    /// <summary>Parses "0.8,0.1,0.1" (spaces allowed; the sum may be off by 1e-6 for rounding).</summary>
    /// <exception cref="VlsmException">Not three non-negative numbers summing to 1.</exception>
    public static SplitRatios Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Expected = "three non-negative fractions for train,val,test that sum to 1, e.g. 0.8,0.1,0.1";
        var parts = text.Split(',');
        if (parts.Length != 3) throw new VlsmException($"--split '{text}' has {parts.Length} value(s); give {Expected}.");
        var values = new double[3];
        for (int i = 0; i < 3; i++)
        {
            if (!double.TryParse(parts[i].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out values[i])
                || !double.IsFinite(values[i]) || values[i] < 0)
                throw new VlsmException($"--split '{text}': '{parts[i].Trim()}' is not a non-negative number; give {Expected}.");
        }
        double sum = values.Sum();
        if (Math.Abs(sum - 1) > 1e-6)
            throw new VlsmException($"--split '{text}' sums to {sum.ToString("0.######", CultureInfo.InvariantCulture)}; give {Expected}.");
        return new SplitRatios(values[0], values[1], values[2]);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Train},{Val},{Test}");
}

/// <summary>Assigns images to train/val/test reproducibly from a seed.</summary>
public static class DatasetSplit
{
    public const string Train = "train", Val = "val", Test = "test";
    public static readonly IReadOnlyList<string> Names = [Train, Val, Test];

    /// <summary>
    /// Split sizes for <paramref name="count"/> images by largest remainder: each split gets the
    /// floor of its share, and the images left over go to the splits with the largest fractional
    /// parts (train before val before test on ties). Sizes always sum to <paramref name="count"/>.
    /// </summary>
    public static (int Train, int Val, int Test) Sizes(int count, SplitRatios ratios)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        double[] shares = [ratios.Train * count, ratios.Val * count, ratios.Test * count];
        var sizes = shares.Select(s => (int)Math.Floor(s)).ToArray();
        int left = count - sizes.Sum();
        var order = Enumerable.Range(0, 3).OrderByDescending(i => shares[i] - sizes[i]).ThenBy(i => i).ToArray();
        for (int k = 0; left > 0; k = (k + 1) % 3, left--) sizes[order[k]]++;
        return (sizes[0], sizes[1], sizes[2]);
    }

    /// <summary>
    /// The split of each item: the items (in the given order) are shuffled with a generator
    /// seeded by <paramref name="seed"/>; the first ones go to train, then val, then test.
    /// Same items, order, ratios and seed → same assignment.
    /// </summary>
    public static string[] Assign(int count, SplitRatios ratios, ulong seed)
    {
        var (train, val, _) = Sizes(count, ratios);
        var order = Enumerable.Range(0, count).ToArray();
        new SeededRandom(seed).Shuffle(order);
        var result = new string[count];
        for (int rank = 0; rank < count; rank++)
            result[order[rank]] = rank < train ? Train : rank < train + val ? Val : Test;
        return result;
    }
}
