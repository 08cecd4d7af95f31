using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Data;

/// <summary>
/// One medvlsm annotation record: an image, its mask, and prompts p0…pN whose values are a
/// string or a list of strings. Legacy fields (bbox, cat, sentences, …) are not kept.
/// </summary>
public sealed record AnnotationRecord(string ImgName, string MaskName, IReadOnlyDictionary<string, IReadOnlyList<string>> Prompts)
{
    /// <summary>Keys in numeric order (p0, p1, …, p10), whatever order the file had.</summary>
    public IEnumerable<string> PromptKeys => Prompts.Keys.OrderBy(PromptKeyOrder).ThenBy(k => k, StringComparer.Ordinal);

    public static int PromptKeyOrder(string key) =>
        key.Length > 1 && key[0] == 'p' && int.TryParse(key.AsSpan(1), out int n) ? n : int.MaxValue;
}

/// <summary>Reads and writes medvlsm <c>anns/*.json</c> files (a JSON array of records).</summary>
public static class AnnotationFile
{
    public static IReadOnlyList<AnnotationRecord> Read(string path)
    {
        if (!File.Exists(path)) throw new VlsmException($"{path}: annotation file not found.");
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VlsmException($"{path}: cannot read the annotation file ({e.Message}). Check that it is readable.", e);
        }
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = false });
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message} Fix or re-export the file.", e);
        }
        if (root is not JsonArray array)
            throw new VlsmException($"{path}: expected a JSON array of records, got {Kind(root)}.");
        var records = new List<AnnotationRecord>(array.Count);
        for (int i = 0; i < array.Count; i++)
        {
            try
            {
                records.Add(ParseRecord(array[i], path, i));
            }
            catch (ArgumentException e)
            {
                // JsonObject builds its dictionary lazily and throws here on a repeated key.
                throw new VlsmException($"{path}: record {i}: {e.Message} Is a key repeated? Fix the record.", e);
            }
        }
        return records;
    }

    private static AnnotationRecord ParseRecord(JsonNode? node, string path, int index)
    {
        string Where() => $"{path}: record {index}";
        if (node is not JsonObject o) throw new VlsmException($"{Where()}: expected an object, got {Kind(node)}.");
        string Str(string key)
        {
            if (o[key] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0) return s;
            throw new VlsmException($"{Where()}: \"{key}\" must be a non-empty string.");
        }
        string img = Str("img_name"), mask = Str("mask_name");
        var prompts = new Dictionary<string, IReadOnlyList<string>>();
        if (o["prompts"] is JsonObject p)
        {
            foreach (var (key, value) in p)
            {
                prompts[key] = value switch
                {
                    JsonValue v when v.TryGetValue<string>(out var s) => new[] { s },
                    JsonArray a when a.All(e => e is JsonValue ev && ev.TryGetValue<string>(out _)) =>
                        a.Select(e => e!.GetValue<string>()).ToArray(),
                    _ => throw new VlsmException($"{Where()} ({img}): prompt \"{key}\" must be a string or a list of strings."),
                };
            }
        }
        else if (o["prompts"] is not null)
        {
            throw new VlsmException($"{Where()} ({img}): \"prompts\" must be an object of p0…pN.");
        }
        return new AnnotationRecord(img, mask, prompts);
    }

    /// <summary>Writes records atomically; a single-element prompt list stays a list only if <paramref name="listKeys"/> names the key.</summary>
    public static void Write(string path, IEnumerable<AnnotationRecord> records, IReadOnlySet<string>? listKeys = null)
    {
        var array = new JsonArray();
        foreach (var r in records)
        {
            var prompts = new JsonObject();
            foreach (var key in r.PromptKeys)
            {
                var values = r.Prompts[key];
                prompts[key] = values.Count == 1 && listKeys?.Contains(key) != true
                    ? JsonValue.Create(values[0])
                    : new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
            }
            array.Add(new JsonObject { ["img_name"] = r.ImgName, ["mask_name"] = r.MaskName, ["prompts"] = prompts });
        }
        AtomicFile.WriteAllText(path, array.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonArray => "an array",
        JsonObject => "an object",
        _ => n.GetValueKind().ToString().ToLowerInvariant(),
    };
}
