using System.Text.Encodings.Web;
using System.Text.Json;

namespace Vlsm.IO;

/// <summary>How vlsm writes JSON files for people and other tools: indented, plain UTF-8 (no <c>\u002B</c> for '+', no escaped accents), escaping only what JSON requires.</summary>
public static class JsonText
{
    /// <summary>Indented, with only the escapes JSON requires (quotes, backslashes, control characters). Not for embedding in HTML.</summary>
    public static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>A snake_case key from a label: "shallow VLC" → "shallow_vlc" (letters and digits kept, lower case; anything else one '_').</summary>
    public static string SnakeKey(string label)
    {
        ArgumentNullException.ThrowIfNull(label);
        var sb = new System.Text.StringBuilder(label.Length);
        foreach (char c in label)
        {
            if (char.IsAsciiLetterOrDigit(c)) sb.Append(char.ToLowerInvariant(c));
            else if (sb.Length > 0 && sb[^1] != '_') sb.Append('_');
        }
        return sb.ToString().TrimEnd('_');
    }
}
