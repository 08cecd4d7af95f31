using System.CommandLine;
using System.CommandLine.Parsing;
using Vlsm.IO;

namespace Vlsm.Cli;

/// <summary>
/// Command-line mistakes as one error line each (the option, the value and what it should be, in
/// words; a misspelt command with the nearest ones) followed by one usage line, instead of .NET
/// type names and the whole help text. Exit code 2, as for any bad input.
/// </summary>
internal static class ParseErrors
{
    public static int Report(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        string path = CommandPath(parse.CommandResult);
        var lines = new List<string>();
        bool unknownCommand = command.Subcommands.Count > 0 && parse.UnmatchedTokens.Count > 0;
        foreach (var error in parse.Errors)
        {
            string? line = Describe(error, command, path, unknownCommand);
            if (line is not null && !lines.Contains(line)) lines.Add(line);
        }
        // The value of a misspelt option is not a further mistake.
        if (lines.Any(l => l.Contains(" has no option ", StringComparison.Ordinal))) lines.RemoveAll(l => l.StartsWith("unexpected argument ", StringComparison.Ordinal));
        if (unknownCommand && !lines.Any(l => l.Contains("is not a command", StringComparison.Ordinal)))
            lines.Insert(0, UnknownCommand(parse.UnmatchedTokens[0], command, path));
        foreach (var line in lines) Console.Error.WriteLine($"error: {line}");
        Console.Error.WriteLine($"usage: {Usage(command, path)}   ({path} --help lists {(command.Subcommands.Count > 0 ? "its commands" : "every option")})");
        return 2;
    }

    private static string? Describe(ParseError error, Command command, string path, bool unknownCommand)
    {
        string message = error.Message;
        if (message.StartsWith("Required command was not provided", StringComparison.Ordinal))
            return unknownCommand ? null : $"{path} needs a command: {string.Join(", ", Visible(command.Subcommands).Select(c => c.Name))}.";
        if (message.StartsWith("Unrecognized command or argument", StringComparison.Ordinal))
        {
            string token = Between(message, '\'') ?? message;
            if (unknownCommand) return UnknownCommand(token, command, path);
            if (!token.StartsWith('-')) return $"unexpected argument {Quote(token)} for {path}.";
            var near = Nearest(token, Visible(command.Options).SelectMany(o => o.Aliases.Prepend(o.Name)));
            return $"{path} has no option {token}" + (near.Count > 0 ? $"; did you mean {string.Join(" or ", near)}?" : ".");
        }
        var option = error.SymbolResult switch
        {
            OptionResult o => o,
            ArgumentResult { Parent: OptionResult o } => o,
            _ => null,
        };
        if (option is not null && message.StartsWith("Cannot parse argument", StringComparison.Ordinal))
        {
            string value = Between(message, '\'') ?? "";
            return $"{option.Option.Name} {Quote(value)}: expected {InWords(option.Option.ValueType)}.";
        }
        if (option is not null && message.StartsWith("Required argument missing for option", StringComparison.Ordinal))
            return $"{option.Option.Name} needs a value ({InWords(option.Option.ValueType)}).";
        if (message.StartsWith("Option '", StringComparison.Ordinal) && message.EndsWith("' is required.", StringComparison.Ordinal))
        {
            string name = message["Option '".Length..^"' is required.".Length];
            var required = command.Options.FirstOrDefault(o => o.Name == name);
            return $"{path} needs {name}" + (required?.Description is { Length: > 0 } d ? $" ({Printable.Clip(d.Split(';', '(')[0].Trim().TrimEnd('.', ','))})." : ".");
        }
        return message.ReplaceLineEndings(" ");
    }

    private static string UnknownCommand(string token, Command command, string path)
    {
        var near = Nearest(token, Visible(command.Subcommands).Select(c => c.Name));
        return $"{Quote(token)} is not a command of {path}; "
            + (near.Count > 0 ? $"did you mean {string.Join(" or ", near)}?" : $"the commands are {string.Join(", ", Visible(command.Subcommands).Select(c => c.Name))}.");
    }

    /// <summary>What a value of <paramref name="type"/> looks like, in words.</summary>
    internal static string InWords(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        if (t.IsEnum) return $"one of {string.Join(", ", Enum.GetNames(t).Select(n => n.ToLowerInvariant()))}";
        return Type.GetTypeCode(t) switch
        {
            TypeCode.Int16 or TypeCode.Int32 or TypeCode.Int64 or TypeCode.UInt16 or TypeCode.UInt32 or TypeCode.UInt64 or TypeCode.Byte or TypeCode.SByte => "a whole number",
            TypeCode.Single or TypeCode.Double or TypeCode.Decimal => "a number (e.g. 0.5 or 1e-4)",
            TypeCode.Boolean => "true or false",
            _ => "a value",
        };
    }

    /// <summary>"vlsm predict &lt;IMAGE&gt;... --out &lt;out&gt; [options]": the command, its arguments and required options.</summary>
    private static string Usage(Command command, string path)
    {
        var parts = new List<string> { path };
        if (command.Subcommands.Count > 0) parts.Add("<command>");
        foreach (var a in command.Arguments.Where(a => !a.Hidden))
            parts.Add($"<{a.Name}>" + (a.Arity.MaximumNumberOfValues > 1 ? "..." : ""));
        foreach (var o in command.Options.Where(o => o.Required && !o.Hidden)) parts.Add($"{o.Name} <{o.HelpName ?? o.Name.TrimStart('-')}>");
        parts.Add("[options]");
        return string.Join(" ", parts);
    }

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is not null; r = r.Parent)
            if (r is CommandResult c && c.Command is not RootCommand) names.Insert(0, c.Command.Name);
        return string.Join(" ", names.Prepend("vlsm"));
    }

    private static IEnumerable<T> Visible<T>(IEnumerable<T> symbols) where T : Symbol => symbols.Where(s => !s.Hidden);

    /// <summary>The candidates within a small edit distance of <paramref name="token"/>, closest first (at most three).</summary>
    private static List<string> Nearest(string token, IEnumerable<string> candidates)
    {
        string t = token.TrimStart('-');
        return candidates.Distinct()
            .Select(c => (Name: c, Distance: Distance(t, c.TrimStart('-'))))
            .Where(x => x.Distance <= Math.Max(2, t.Length / 3) || (t.Length >= 3 && x.Name.TrimStart('-').StartsWith(t, StringComparison.Ordinal)))
            .OrderBy(x => x.Distance).ThenBy(x => x.Name, StringComparer.Ordinal)
            .Take(3).Select(x => x.Name).ToList();
    }

    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    private static string? Between(string text, char quote)
    {
        int start = text.IndexOf(quote);
        int end = start < 0 ? -1 : text.IndexOf(quote, start + 1);
        return end < 0 ? null : text[(start + 1)..end];
    }

    private static string Quote(string value) => Printable.Quote(value);
}
