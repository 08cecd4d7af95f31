using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vlsm.Models;

/// <summary>Reading model <c>config.json</c> files: errors are one line naming the file and the field.</summary>
internal static class ConfigJson
{
    /// <summary>
    /// Parses <paramref name="path"/> as a JSON object and hands it to <paramref name="parse"/>, whose
    /// <see cref="FormatException"/>s (and JSON type errors) become messages naming the file.
    /// </summary>
    /// <param name="missing">What to say after the path when the file does not exist.</param>
    public static T ParseFile<T>(string path, string missing, Func<JsonObject, T> parse)
    {
        if (!File.Exists(path)) throw new VlsmException($"{path}: {missing}");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{path}: not valid JSON ({e.Message}).", e);
        }
        if (root is not JsonObject obj)
            throw new VlsmException($"{path}: expected a JSON object.");
        try
        {
            return parse(obj);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or JsonException)
        {
            throw new VlsmException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>The integer at <paramref name="key"/>, or <paramref name="fallback"/> when absent; <paramref name="label"/> names it in errors.</summary>
    public static int Int(JsonObject o, string key, int fallback, string label)
    {
        var node = o[key];
        if (node is null) return fallback;
        int value;
        try
        {
            value = node.GetValue<int>();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new FormatException($"{label} must be an integer, got {Vlsm.IO.Printable.Clip(node.ToJsonString())}.", e);
        }
        return Bounded(value, label);
    }

    /// <summary><paramref name="value"/>, if within <see cref="MaxMagnitude"/>; every config reader's integers pass here.</summary>
    /// <exception cref="FormatException">The value is implausibly large.</exception>
    public static int Bounded(int value, string label) =>
        value is > MaxMagnitude or < -MaxMagnitude
            ? throw new FormatException($"{label} is {value}; no size, count or id of a model this large is plausible (at most {MaxMagnitude:N0}), so nothing is built from it.")
            : value;

    /// <summary>The largest integer a model config may hold (a vocabulary of a million tokens is larger than any real one).</summary>
    public const int MaxMagnitude = 1 << 20;
}
