using System.Globalization;
using System.Text;

namespace Vlsm.IO;

/// <summary>
/// Text taken from a file, made safe for one line of an error message: at most
/// <see cref="MaxChars"/> characters (then an ellipsis), and no character that a terminal would
/// act on (NUL, escape sequences, line breaks, bidirectional overrides): those are shown escaped,
/// as <c>\0</c>, <c>\n</c>, <c>\x1b</c> or <c>\u202e</c>.
/// </summary>
public static class Printable
{
    /// <summary>How much of a value an error line quotes.</summary>
    public const int MaxChars = 80;

    /// <summary><paramref name="text"/> in double quotes, escaped and cut as <see cref="Clip"/> does.</summary>
    public static string Quote(string? text, int maxChars = MaxChars) => text is null ? "None" : $"\"{Clip(text, maxChars)}\"";

    /// <summary>
    /// The first <paramref name="maxChars"/> characters of <paramref name="text"/> (counting an escape
    /// as its printed length), control and format characters escaped, and "…" when anything was left out.
    /// </summary>
    public static string Clip(string text, int maxChars = MaxChars)
    {
        var shown = new StringBuilder(Math.Min(text.Length, maxChars) + 8);
        for (int i = 0; i < text.Length; i++)
        {
            if (shown.Length >= maxChars) return shown.Append('…').ToString();
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                shown.Append(c).Append(text[++i]);
                continue;
            }
            switch (c)
            {
                case '\0': shown.Append("\\0"); break;
                case '\n': shown.Append("\\n"); break;
                case '\r': shown.Append("\\r"); break;
                case '\t': shown.Append("\\t"); break;
                default:
                    if (NeedsEscape(c)) shown.Append(c < 0x100 ? $"\\x{(int)c:x2}" : $"\\u{(int)c:x4}");
                    else shown.Append(c);
                    break;
            }
        }
        return shown.ToString();
    }

    private static bool NeedsEscape(char c) => char.GetUnicodeCategory(c) is UnicodeCategory.Control or UnicodeCategory.Format
        or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
        or UnicodeCategory.OtherNotAssigned;
}
