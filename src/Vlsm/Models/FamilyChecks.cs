using System.Globalization;

namespace Vlsm.Models;

/// <summary>Checks a request against what a family declares: modes, precisions, option values and input sizes.</summary>
public static class FamilyChecks
{
    /// <summary>
    /// The input size a folder's model runs at: its own when <paramref name="side"/> is null or equal
    /// to its own (square) size, else <paramref name="side"/> x <paramref name="side"/>, checked against
    /// the family's <see cref="IModelFamily.ImageSizes"/>.
    /// </summary>
    /// <param name="configFile">The run's config.yaml when <paramref name="side"/> is its image_size (not --image-size): the message names that file and field.</param>
    /// <exception cref="VlsmException">The family cannot run at that side; the message names the value, the rule and the fix.</exception>
    public static InputSize ImageSize(IModelFamily family, string modelDir, int? side, string? configFile = null)
    {
        var rule = family.ImageSizes(modelDir);
        if (side is not int n || (n == rule.Width && n == rule.Height)) return new InputSize(rule.Width, rule.Height, Own: true);
        string own = InputSize.Text(rule.Width, rule.Height);
        string text = n.ToString(CultureInfo.InvariantCulture);
        string value = configFile is null ? $"image_size (--image-size) {text}" : $"{configFile}: image_size {text}";
        string leaveOut = configFile is null ? "leave --image-size out" : $"remove image_size from {configFile}";
        if (rule.OnlyOwn is { } why)
            throw new VlsmException($"{value}: {family.Name} models run only at their own input size, {own} for {modelDir} ({why}); {leaveOut}.");
        int m = rule.Multiple;
        int lo = (Math.Max(Math.Max(ImageSizeRule.Smallest, rule.Min), m) + m - 1) / m * m;
        int hi = Math.Min(ImageSizeRule.Largest, rule.Max) / m * m;
        string fallback = $"or {leaveOut} for the model's own {own}";
        if (n < lo || n > hi)
            throw new VlsmException($"{value} is out of range: give a side of {lo}..{hi} pixels that is a multiple of {m} ({rule.MultipleOf}), {fallback}.");
        if (n % m != 0)
        {
            int down = n / m * m, up = down + m;
            var near = new[] { down, up }.Where(v => v >= lo && v <= hi).Select(v => v.ToString(CultureInfo.InvariantCulture));
            throw new VlsmException($"{value} is not a multiple of {m} ({rule.MultipleOf}): use {string.Join(" or ", near)}, {fallback}.");
        }
        return new InputSize(n, n, Own: false);
    }

    /// <summary>The value of every option the family declares: the given one (checked), else its default.</summary>
    /// <exception cref="VlsmException">A value is not one the option allows, or a key the family does not declare.</exception>
    public static IReadOnlyDictionary<string, string> Options(IModelFamily family, IReadOnlyDictionary<string, string> given)
    {
        foreach (var key in given.Keys)
        {
            if (family.Options.All(o => o.Key != key))
                throw new VlsmException($"{key} is not an option of {family.Name} models" +
                    (family.Options.Count == 0 ? " (they have none)." : $" (theirs: {string.Join(", ", family.Options.Select(o => o.Key))})."));
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var option in family.Options)
        {
            string value = given.TryGetValue(option.Key, out var v) ? v : option.Default;
            if (!option.Values.Contains(value))
                throw new VlsmException($"{option.Key} \"{value}\" is not one of {string.Join(", ", option.Values)} ({option.Description}).");
            values[option.Key] = value;
        }
        return values;
    }

    /// <exception cref="VlsmException">The family does not train in this mode.</exception>
    public static FineTuneMode Mode(IModelFamily family, FineTuneMode mode) => family.Modes.Contains(mode)
        ? mode
        : throw new VlsmException($"{family.Name} trains in {string.Join(" or ", family.Modes.Select(FineTuneSpec.ModeName))} mode; {FineTuneSpec.ModeName(mode)} is not one of them"
            + (mode is FineTuneMode.Shallow or FineTuneMode.Dense ? $" ({FineTuneSpec.ModeName(mode)} adapters are for families with adapters, such as CLIPSeg)." : "."));

    /// <exception cref="VlsmException">The family does not train in this precision.</exception>
    public static ComputePrecision TrainingPrecision(IModelFamily family, ComputePrecision precision) => family.Precisions.Contains(precision)
        ? precision
        : throw new VlsmException($"{family.Name} trains in {string.Join(" or ", family.Precisions.Select(ComputePrecisions.Name))} only; precision {ComputePrecisions.Name(precision)} is not available for it.");

    /// <exception cref="VlsmException">The family does not compute in this precision.</exception>
    public static ComputePrecision InferencePrecision(IModelFamily family, string modelDir, ComputePrecision precision) => family.Precisions.Contains(precision)
        ? precision
        : throw new VlsmException($"{modelDir} is a {family.Name} model, which computes in {string.Join(" or ", family.Precisions.Select(ComputePrecisions.Name))} only; use --precision {ComputePrecisions.Name(family.Precisions[0])}.");
}
