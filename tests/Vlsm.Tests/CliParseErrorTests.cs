namespace Vlsm.Tests;

/// <summary>
/// Command-line mistakes (issue #19's parse errors, #20 item 13): one error line naming the option,
/// the value and the expected type in words, then one usage line; no .NET type names, no full help.
/// </summary>
public sealed class CliParseErrorTests
{
    /// <summary>Exit code 2, nothing on stdout, the error lines first and a usage line last.</summary>
    private static string[] Lines(CliResult r, int errors)
    {
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout.Trim());
        var lines = r.Stderr.Trim().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(errors + 1, lines.Length);
        Assert.All(lines[..errors], l => Assert.StartsWith("error: ", l));
        Assert.StartsWith("usage: vlsm ", lines[^1]);
        Assert.DoesNotContain("System.", r.Stderr);
        Assert.DoesNotContain("Description:", r.Stderr);
        return lines;
    }

    [Theory]
    [InlineData("train", "--epochs", "abc", "expected a whole number", "")]
    [InlineData("predict", "--threshold", "high", "expected a number", "image.png --out o")]
    [InlineData("eval", "--batch-size", "x", "expected a whole number", "--data d")]
    public void AValueOfTheWrongTypeIsOneLineInWords(string command, string option, string value, string expected, string rest)
    {
        string[] args = [command, option, value, .. rest.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        var lines = Lines(CliRunner.Run(args), 1);
        Assert.Equal($"error: {option} \"{value}\": {expected}", lines[0][..(lines[0].IndexOf(expected, StringComparison.Ordinal) + expected.Length)]);
        Assert.StartsWith($"usage: vlsm {command} ", lines[1]);
    }

    [Fact]
    public void AMissingRequiredOptionComesFirstWithAUsageLine()
    {
        var lines = Lines(CliRunner.Run("predict", "image.png"), 1);
        Assert.StartsWith("error: vlsm predict needs --out", lines[0]);
        Assert.Equal("usage: vlsm predict <IMAGE>... --out <out> [options]   (vlsm predict --help lists every option)", lines[1]);
    }

    [Fact]
    public void AMisspeltCommandGivesOnlyTheSuggestion()
    {
        var lines = Lines(CliRunner.Run("prdict"), 1);
        Assert.Equal("error: \"prdict\" is not a command of vlsm; did you mean predict?", lines[0]);
        var sub = Lines(CliRunner.Run("convert", "criss"), 1);
        Assert.Equal("error: \"criss\" is not a command of vlsm convert; did you mean cris?", sub[0]);
    }

    [Fact]
    public void AMisspeltOptionIsNamedWithTheNearestOne()
    {
        var lines = Lines(CliRunner.Run("info", "--modle", "m"), 1);
        Assert.Equal("error: vlsm info has no option --modle; did you mean --mode or --model?", lines[0]);
        var missing = Lines(CliRunner.Run("eval", "--data", "d", "--batch-size"), 1);
        Assert.Equal("error: --batch-size needs a value (a whole number).", missing[0]);
    }

    [Fact]
    public void HelpStillPrintsTheHelp()
    {
        var r = CliRunner.Run("train", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("--epochs", r.Stdout);
    }
}
