using System.Text;
using System.Text.RegularExpressions;
using Vlsm.Cli;

namespace Vlsm.Tests;

/// <summary>
/// Every <c>vlsm</c> command line quoted in a code block of README.md and docs/*.md must parse: a
/// renamed or misspelt option or command in the docs fails here. Lines whose paths exist once the
/// documentation's example folders are replaced by fixtures (and whose command is quick) also run.
/// </summary>
public sealed partial class DocsCommandLinesTests
{
    public sealed record DocLine(string File, int Number, string Text)
    {
        public override string ToString() => $"{File}:{Number}";
    }

    public static IEnumerable<object[]> QuotedCommandLines() => QuotedLines().Select(l => new object[] { l });

    /// <summary>Lines of fenced code blocks that start with <c>./vlsm</c> or <c>vlsm</c> (after environment assignments).</summary>
    internal static List<DocLine> QuotedLines()
    {
        var files = new List<string> { Path.Combine(Fixtures.RepoRoot, "README.md") };
        files.AddRange(Directory.EnumerateFiles(Path.Combine(Fixtures.RepoRoot, "docs"), "*.md").Order(StringComparer.Ordinal));
        var lines = new List<DocLine>();
        foreach (var file in files)
        {
            bool inBlock = false;
            int number = 0;
            foreach (var raw in File.ReadLines(file))
            {
                number++;
                if (raw.TrimStart().StartsWith("```", StringComparison.Ordinal)) { inBlock = !inBlock; continue; }
                if (!inBlock) continue;
                var text = EnvironmentPrefix().Replace(raw.Trim(), "");
                if (text.StartsWith("./vlsm ", StringComparison.Ordinal) || text.StartsWith("vlsm ", StringComparison.Ordinal))
                    lines.Add(new DocLine(Path.GetRelativePath(Fixtures.RepoRoot, file), number, text));
            }
        }
        return lines;
    }

    [GeneratedRegex(@"^([A-Z_]+=\S*\s+)+")]
    private static partial Regex EnvironmentPrefix();

    /// <summary>Shell words of a line without its comment: quotes removed, <c>[optional]</c> groups dropped.</summary>
    internal static List<string> Words(string line)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        foreach (char c in line)
        {
            if (quote != '\0')
            {
                if (c == quote) quote = '\0'; else word.Append(c);
                continue;
            }
            if (c is '"' or '\'') { quote = c; inWord = true; continue; }
            if (c == '#' && !inWord) break;
            if (char.IsWhiteSpace(c))
            {
                if (inWord) words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            word.Append(c);
            inWord = true;
        }
        if (inWord) words.Add(word.ToString());
        // Drop the program name and any "[--size 96]" style optional groups of a synopsis line.
        var result = new List<string>();
        int depth = 0;
        foreach (var w in words.Skip(1))
        {
            if (w.StartsWith('[')) depth++;
            if (depth == 0) result.Add(w);
            if (w.EndsWith(']')) depth--;
        }
        return result;
    }

    [Fact]
    public void TheDocsQuoteCommandLinesOfEveryKind()
    {
        var commands = QuotedLines().Select(l => Words(l.Text).FirstOrDefault()).ToHashSet();
        foreach (var command in new[] { "demo", "train", "eval", "predict", "verify", "info", "convert", "sweep", "serve", "prompts", "synth" })
            Assert.Contains(command, commands);
    }

    [Theory]
    [MemberData(nameof(QuotedCommandLines))]
    public void EveryQuotedCommandLineParses(DocLine line)
    {
        var args = Words(line.Text);
        if (args.Contains("...")) return; // "VLSM_CONVOLUTION=direct ./vlsm ..." stands for any command
        var parse = VlsmCli.BuildRoot().Parse(args);
        Assert.True(parse.Errors.Count == 0,
            $"{line}: `{line.Text}` does not parse: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
    }

    /// <summary>Every option name of every vlsm command.</summary>
    private static HashSet<string> CliOptionNames()
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "--help" };
        void Visit(System.CommandLine.Command command)
        {
            foreach (var option in command.Options)
            {
                names.Add(option.Name);
                foreach (var alias in option.Aliases) names.Add(alias);
            }
            foreach (var sub in command.Subcommands) Visit(sub);
        }
        Visit(VlsmCli.BuildRoot());
        return names;
    }

    [GeneratedRegex(@"(?<![\w-])--[a-z][a-z0-9-]*")]
    private static partial Regex OptionName();

    [Fact]
    public void EveryOptionNamedInTheProseExists()
    {
        // The bench's own flags (bench/Vlsm.Bench) and dotnet's --project are the only other programs' options the docs name.
        var known = CliOptionNames();
        foreach (var source in Directory.EnumerateFiles(Path.Combine(Fixtures.RepoRoot, "bench", "Vlsm.Bench"), "*.cs"))
            foreach (Match m in Regex.Matches(File.ReadAllText(source), "\"(--[a-z][a-z0-9-]*)\""))
                known.Add(m.Groups[1].Value);
        known.Add("--project");
        var unknown = new List<string>();
        foreach (var file in new[] { "README.md" }.Concat(Directory.EnumerateFiles(Path.Combine(Fixtures.RepoRoot, "docs"), "*.md").Select(f => Path.GetRelativePath(Fixtures.RepoRoot, f))))
        {
            var text = Regex.Replace(File.ReadAllText(Path.Combine(Fixtures.RepoRoot, file)), "```.*?```", "", RegexOptions.Singleline);
            foreach (Match span in Regex.Matches(text, "`([^`]+)`"))
                foreach (Match option in OptionName().Matches(span.Groups[1].Value))
                    if (!known.Contains(option.Value)) unknown.Add($"{file}: `{span.Groups[1].Value}` names {option.Value}, which no vlsm command has");
        }
        Assert.True(unknown.Count == 0, string.Join("\n", unknown));
    }

    /// <summary>The documentation's example model folders, as the fixture of the same family.</summary>
    private static string Substitute(string word)
    {
        var models = new Dictionary<string, string>
        {
            ["~/models/clipseg-rd64-refined"] = "clipseg-tiny",
            ["~/models/cris"] = "cris-tiny",
            ["~/models/biomedclipseg"] = "biomedclipseg-tiny",
            ["~/models/san"] = "san-tiny",
            ["~/models/unet"] = "smp-unet-tiny",
        };
        if (models.TryGetValue(word, out var fixture)) return Path.Combine(Fixtures.Parity, fixture);
        if (word.StartsWith("../shared/", StringComparison.Ordinal)) return Path.Combine(Fixtures.Shared, word["../shared/".Length..]);
        return word;
    }

    [Fact]
    public void TheQuickQuotedCommandsRunOnFixtures()
    {
        int ran = 0;
        var failures = new List<string>();
        foreach (var line in QuotedLines())
        {
            var args = Words(line.Text).Select(Substitute).ToList();
            if (args.Count == 0 || args[0] is not ("info" or "tokenize" or "verify")) continue;
            int model = args.IndexOf("--model");
            if (model < 0 || !Directory.Exists(args[model + 1])) continue;
            // verify's example reference file is the fixture's own reference outputs.
            int reference = args.IndexOf("--reference");
            if (reference >= 0 && !File.Exists(args[reference + 1]))
                args[reference + 1] = Path.Combine(args[model + 1], "reference.safetensors");
            if (args.Contains("--adapter")) continue; // needs a trained adapter file the docs leave to the reader
            var r = CliRunner.Run([.. args]);
            ran++;
            if (r.ExitCode != 0) failures.Add($"{line}: vlsm {string.Join(' ', args)} exited {r.ExitCode}: {r.Stderr.Trim()}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(ran >= 5, $"only {ran} quoted commands ran on fixtures");
    }
}
