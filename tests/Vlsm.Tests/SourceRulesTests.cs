using System.Text.RegularExpressions;

namespace Vlsm.Tests;

/// <summary>Rules about the project's own source that keep its guarantees true as it grows.</summary>
public class SourceRulesTests
{
    private static IEnumerable<string> SourceFiles(string under) =>
        Directory.EnumerateFiles(Path.Combine(Fixtures.RepoRoot, under), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"));

    /// <summary>
    /// libtorch's convolutions are wrong on some CPUs (docs/known-issues.md); only the safe path
    /// (src/Vlsm/Tensors) may call them, so every model, present and future, goes through it.
    /// </summary>
    private static readonly Regex DirectConvolution =
        new(@"(?<![\w.])(nn\.)?(Conv[123]d|ConvTranspose[123]d)\s*\(|functional\s*\.\s*conv(_transpose)?[123]d\s*\(|\bconv(_transpose)?[123]d\s*\(", RegexOptions.Compiled);

    [Fact]
    public void OnlyTheSafeConvolutionPathCallsLibTorchsConvolutions()
    {
        var direct = DirectConvolution;
        string allowed = Path.Combine(Fixtures.RepoRoot, "src", "Vlsm", "Tensors") + Path.DirectorySeparatorChar;
        var offenders = SourceFiles("src").Concat(SourceFiles("bench"))
            .Where(f => !f.StartsWith(allowed, StringComparison.Ordinal))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, line, i)))
            .Where(x => !x.line.TrimStart().StartsWith("//", StringComparison.Ordinal) && direct.IsMatch(x.line))
            .Select(x => $"{Path.GetRelativePath(Fixtures.RepoRoot, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "use SafeConv2d/SafeConvTranspose2d/SafeConvolution instead of:\n" + string.Join("\n", offenders));
    }

    [Fact]
    public void TheRuleSeesADirectConvolution()
    {
        var direct = DirectConvolution;
        Assert.Matches(direct, "conv = Conv2d(3, 8, 3);");
        Assert.Matches(direct, "var y = functional.conv2d(x, w);");
        Assert.Matches(direct, "nn.functional.conv_transpose2d(x, w, null)");
        Assert.DoesNotMatch(direct, "conv = new SafeConv2d(3, 8, 3);");
        Assert.DoesNotMatch(direct, "SafeConvolution.Conv2d(x, w, b, g)");
    }
}
