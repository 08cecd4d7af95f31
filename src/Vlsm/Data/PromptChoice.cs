using System.Text.RegularExpressions;

namespace Vlsm.Data;

/// <summary>
/// Which text a record is trained or evaluated with:
/// <list type="bullet">
/// <item>a key such as <c>p3</c>: that prompt of every record (one element of it, drawn uniformly, when it is a list);</item>
/// <item><c>random</c>: a key drawn uniformly from the record's p1…pN (never p0, the empty prompt), then an element of it;</item>
/// <item>any other text: that text for every record.</item>
/// </list>
/// Draws come from <see cref="StableRng"/> seeded by (seed, epoch, record), so they are the same
/// in every run and whichever thread loads the record.
/// </summary>
public sealed partial class PromptChoice
{
    public const string RandomSpec = "random";

    public enum Mode
    {
        Key,
        Random,
        Literal,
    }

    public Mode Kind { get; }

    /// <summary>The key for <see cref="Mode.Key"/>, the text for <see cref="Mode.Literal"/>, "random" for <see cref="Mode.Random"/>.</summary>
    public string Value { get; }

    private PromptChoice(Mode kind, string value)
    {
        Kind = kind;
        Value = value;
    }

    [GeneratedRegex("^p[0-9]+$")]
    private static partial Regex KeyPattern();

    /// <summary>"p3" → that key; "random" → random over p1…pN; anything else → that literal text.</summary>
    public static PromptChoice Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec == RandomSpec) return new PromptChoice(Mode.Random, spec);
        if (KeyPattern().IsMatch(spec)) return new PromptChoice(Mode.Key, spec);
        return new PromptChoice(Mode.Literal, spec);
    }

    public static PromptChoice Key(string key) =>
        KeyPattern().IsMatch(key) ? new PromptChoice(Mode.Key, key) : throw new ArgumentException($"\"{key}\" is not a prompt key (p0, p1, …).", nameof(key));

    public static PromptChoice Random { get; } = new(Mode.Random, RandomSpec);

    public static PromptChoice Literal(string text) => new(Mode.Literal, text ?? throw new ArgumentNullException(nameof(text)));

    /// <summary>Why this choice cannot be made for <paramref name="record"/>, or null when it can (the checker reports it).</summary>
    public string? Problem(AnnotationRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return Kind switch
        {
            Mode.Key when !record.Prompts.TryGetValue(Value, out var values) =>
                $"has no prompt \"{Value}\" (it has {KeysText(record)})",
            Mode.Key when record.Prompts[Value].Count == 0 =>
                $"prompt \"{Value}\" is an empty list",
            Mode.Random when !RandomKeys(record).Any() =>
                $"has no non-empty prompt besides p0 to choose at random (it has {KeysText(record)})",
            _ => null,
        };
    }

    /// <summary>The prompt text for <paramref name="record"/> in <paramref name="epoch"/>.</summary>
    /// <exception cref="VlsmException">The record lacks the requested key (named with the record).</exception>
    public string Choose(DatasetRecord record, long seed, int epoch)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (Kind == Mode.Literal) return Value;
        if (Problem(record.Annotation) is { } problem)
            throw new VlsmException($"{record.Where}: {problem}. Choose a prompt key every record has, or fix the record.");
        var rng = StableRng.For(seed, epoch, RngPurpose.Prompt, record.Id);
        IReadOnlyList<string> values;
        if (Kind == Mode.Key)
        {
            values = record.Annotation.Prompts[Value];
        }
        else
        {
            // Keys in numeric order, so the draw does not depend on the key order in the file.
            var keys = RandomKeys(record.Annotation).ToArray();
            values = record.Annotation.Prompts[keys[rng.NextInt(keys.Length)]];
        }
        return values.Count == 1 ? values[0] : values[rng.NextInt(values.Count)];
    }

    /// <summary>p1…pN that have at least one text (an empty list has nothing to draw).</summary>
    private static IEnumerable<string> RandomKeys(AnnotationRecord record) =>
        record.PromptKeys.Where(k => k != "p0" && KeyPattern().IsMatch(k) && record.Prompts[k].Count > 0);

    private static string KeysText(AnnotationRecord record) =>
        record.Prompts.Count == 0 ? "no prompts" : string.Join(", ", record.PromptKeys);

    public override string ToString() => Kind == Mode.Literal ? $"\"{Value}\"" : Value;
}
