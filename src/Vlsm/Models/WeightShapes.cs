using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Models;

/// <summary>A size <c>config.json</c> states (<paramref name="Field"/>, dotted) and the shape it gives one tensor of the weights.</summary>
public sealed record ShapeClaim(string Field, long Value, string Key, long[] Shape);

/// <summary>A count <c>config.json</c> states (layers, blocks) and the numbered keys <c>{Prefix}N.</c> of the weights it gives.</summary>
public sealed record CountClaim(string Field, long Value, string Prefix);

/// <summary>
/// Checks a config's sizes against the weights' header before a model is built from them, so a
/// config that does not describe its weights (a wrong or absurd size, or a missing section whose
/// defaults apply) is refused in a line naming config.json's field and the tensor, instead of after
/// building (seconds and gigabytes) or inside libtorch's allocator. Reads shapes only.
/// </summary>
public static class WeightShapes
{
    /// <summary>Checks <paramref name="claims"/> and <paramref name="counts"/> against <paramref name="weights"/>'s header, if that file exists; a key the weights lack is left to the strict loader.</summary>
    /// <exception cref="VlsmException">A claimed shape or count differs from the weights', naming the field, its value and the tensor.</exception>
    public static void Check(string configPath, string weights, IEnumerable<ShapeClaim> claims, IEnumerable<CountClaim> counts)
    {
        if (!File.Exists(weights)) return;
        using var file = SafetensorsFile.Open(weights);
        Check(configPath, weights, k => file.Contains(k) ? file.Entry(k).Shape : null, file.Names, claims, counts);
    }

    /// <summary>As above, for weights already read (a converted checkpoint): <paramref name="shapeOf"/> gives a key's shape or null.</summary>
    public static void Check(string configPath, string weights, Func<string, long[]?> shapeOf, IEnumerable<string> keys,
        IEnumerable<ShapeClaim> claims, IEnumerable<CountClaim> counts)
    {
        // config.json's text is needed only to word a refusal (which fields were absent), so it is read only then.
        string Given(string field) => IsGiven(ReadConfig(configPath), field) ? "" : " (absent from the file, so the default)";
        foreach (var c in claims)
        {
            if (shapeOf(c.Key) is not { } shape || shape.SequenceEqual(c.Shape)) continue;
            throw new VlsmException($"{configPath}: {c.Field} is {c.Value}{Given(c.Field)}, but {weights} holds {Printable.Quote(c.Key)} of shape [{string.Join(", ", shape)}] "
                + $"where the config gives [{string.Join(", ", c.Shape)}]; the config does not describe these weights. Nothing was built.");
        }
        var names = keys as IReadOnlyCollection<string> ?? keys.ToList();
        foreach (var c in counts)
        {
            long found = Numbered(names, c.Prefix);
            if (found == 0 || found == c.Value) continue;
            throw new VlsmException($"{configPath}: {c.Field} is {c.Value}{Given(c.Field)}, but {weights} holds {found} ({c.Prefix}0 … {c.Prefix}{found - 1}); "
                + "the config does not describe these weights. Nothing was built.");
        }
    }

    /// <summary>How many numbered blocks <c>{prefix}0.</c>, <c>{prefix}1.</c> … the keys have (the highest index plus one).</summary>
    private static long Numbered(IEnumerable<string> keys, string prefix)
    {
        long highest = -1;
        foreach (var k in keys)
        {
            if (!k.StartsWith(prefix, StringComparison.Ordinal)) continue;
            int dot = k.IndexOf('.', prefix.Length);
            if (dot > prefix.Length && long.TryParse(k.AsSpan(prefix.Length, dot - prefix.Length), System.Globalization.NumberStyles.None, null, out long i))
                highest = Math.Max(highest, i);
        }
        return highest + 1;
    }

    private static JsonObject? ReadConfig(string configPath)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject;
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException)
        {
            return null; // the config was parsed before this check; without its text every field counts as given
        }
    }

    private static bool IsGiven(JsonObject? config, string field)
    {
        JsonNode? node = config;
        foreach (var part in field.Split('.'))
        {
            int bracket = part.IndexOf('[');
            string name = bracket < 0 ? part : part[..bracket];
            node = (node as JsonObject)?[name] ?? (node as JsonObject)?[name + "_dict"]; // old HF configs: vision_config_dict
        }
        return node is not null;
    }
}
