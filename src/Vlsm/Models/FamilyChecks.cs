namespace Vlsm.Models;

/// <summary>Checks a request against what a family declares: modes, precisions and option values.</summary>
public static class FamilyChecks
{
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
