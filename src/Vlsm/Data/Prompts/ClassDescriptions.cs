using System.Text.Json;

namespace Vlsm.Data.Prompts;

/// <summary>
/// Class descriptions for prompts p7–p9, as full phrases "{class} which is {description}".
/// The built-in ones are medvlsm's <c>general_descriptions/*.json</c> word for word (spelling slips
/// such as "mucuos" and "abnormailty" included: models fine-tuned on medvlsm saw exactly these).
/// </summary>
public static class ClassDescriptions
{
    /// <summary>medvlsm's endoscopy.json (Kvasir, ClinicDB, BKAI, ColonDB, ETIS, CVC-300).</summary>
    public static readonly IReadOnlyList<string> Polyp =
    [
        "polyp which is a projecting growth of tissue",
        "polyp which is often a bumpy flesh in rectum",
        "polyp which is a small lump in the lining of colon",
        "polyp which is a tissue growth that often resemble mushroom like stalks",
        "polyp which is an abnormal growth of tissues projecting from a mucuos membrane",
    ];

    /// <summary>medvlsm's isic.json.</summary>
    public static readonly IReadOnlyList<string> SkinMelanoma =
    [
        "skin melanoma which is a spot with dark speckles",
        "skin melanoma which is a spot with irregular texture",
        "skin melanoma which is a dark sore with irregular texture",
        "skin melanoma which is an irregular sore with speckles",
        "skin melanoma which is a rough wound on skin",
    ];

    /// <summary>medvlsm's dfu.json.</summary>
    public static readonly IReadOnlyList<string> FootUlcer =
    [
        "foot ulcer which is a wound in foot and toes",
        "foot ulcer which is a sore in foot and toes",
        "foot ulcer which is a sore in skin of foot and toes",
        "foot ulcer which is an abnormailty in foot and toes",
        "foot ulcer which is an open sore or lesion in foot and toes",
    ];

    /// <summary>Built-in phrases for a class name (case and surrounding spaces ignored); empty if there are none.</summary>
    public static IReadOnlyList<string> BuiltIn(string className)
    {
        ArgumentNullException.ThrowIfNull(className);
        return className.Trim().ToLowerInvariant() switch
        {
            "polyp" => Polyp,
            "skin melanoma" => SkinMelanoma,
            "foot ulcer" => FootUlcer,
            _ => [],
        };
    }

    /// <summary>
    /// "{class} which is {description}", unless the description already starts with
    /// "{class} which is " (so medvlsm's own files can be passed as they are).
    /// </summary>
    public static string ToPhrase(string className, string description)
    {
        ArgumentNullException.ThrowIfNull(className);
        ArgumentNullException.ThrowIfNull(description);
        string text = description.Trim();
        string prefix = className + " which is ";
        return text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? text : prefix + text;
    }

    /// <summary>
    /// Reads descriptions from a file: a JSON list of strings (if the file starts with <c>[</c>)
    /// or one description per line (blank lines skipped); each becomes a phrase via <see cref="ToPhrase"/>.
    /// </summary>
    /// <exception cref="VlsmException">Missing file, bad JSON, a JSON object or binary file, or no descriptions.</exception>
    public static IReadOnlyList<string> Load(string path, string className)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new VlsmException($"{path}: descriptions file not found. Give a text file with one description per line or a JSON list of strings.");
        string text = File.ReadAllText(path);
        // Read line by line, any other file (a model's config.json, an image) would become prompts like "polyp which is {".
        if (text.Contains('\0'))
            throw new VlsmException($"{path}: not a text file. Give a text file with one description per line or a JSON list of strings.");
        if (text.TrimStart().StartsWith('{'))
            throw new VlsmException($"{path}: a JSON object, not descriptions. Give a JSON list of strings, e.g. [\"a projecting growth of tissue\"], or one description per line.");
        List<string> descriptions;
        if (text.TrimStart().StartsWith('['))
        {
            try
            {
                descriptions = JsonSerializer.Deserialize<List<string>>(text) ?? [];
            }
            catch (JsonException e)
            {
                throw new VlsmException($"{path}: starts with '[' but is not a JSON list of strings ({e.Message}). Fix the JSON or write one description per line.", e);
            }
        }
        else
        {
            descriptions = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        }
        var phrases = descriptions.Where(d => !string.IsNullOrWhiteSpace(d)).Select(d => ToPhrase(className, d)).ToList();
        if (phrases.Count == 0)
            throw new VlsmException($"{path}: holds no descriptions. Write one description per line, e.g. \"a projecting growth of tissue\".");
        return phrases;
    }
}
