namespace Vlsm.Tests;

/// <summary><c>vlsm report</c> given an evaluation folder whose summary.json is not what vlsm eval writes.</summary>
public sealed class ReportSummaryCliTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("vlsm-report-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Theory]
    [InlineData("", "not valid JSON")]
    [InlineData("[]", "the file should be a JSON object, not []")]
    [InlineData("{\"dice\": \"high\"}", "dice should be an object, not \"high\"")]
    [InlineData("{\"n\": 2, \"dice\": {\"mean\": \"x\", \"std\": 0}}", "dice.mean should be a number, not \"x\"")]
    [InlineData("{\"prompts\": {\"p0\": 3}}", "prompts.p0 should be an object, not 3")]
    [InlineData("{\"datasets\": {\"kvasir\": {\"dice\": {\"mean\": true}}}}", "datasets.kvasir.dice.mean should be a number, not true")]
    [InlineData("{\"prompts\": {\"p1\": {\"datasets\": {\"kvasir\": {\"iou\": 1}}}}}", "prompts.p1.datasets.kvasir.iou should be an object, not 1")]
    public void ACorruptSummaryIsAnErrorNamingTheFileAndTheField(string summary, string expected)
    {
        string eval = Path.Combine(root, "eval");
        Directory.CreateDirectory(eval);
        string path = Path.Combine(eval, "summary.json");
        File.WriteAllText(path, summary);
        string output = Path.Combine(root, "report");

        var r = CliRunner.Run("report", eval, "--out", output);

        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("error: ", r.Stderr);
        Assert.Contains(path + ": ", r.Stderr);
        Assert.Contains(expected, r.Stderr);
        Assert.Contains("re-run the evaluation", r.Stderr);
        Assert.DoesNotContain("Exception", r.Stderr);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void AGoodSummaryStillMakesATable()
    {
        string eval = Path.Combine(root, "eval");
        Directory.CreateDirectory(eval);
        File.WriteAllText(Path.Combine(eval, "summary.json"), "{\"dataset\": \"kvasir\", \"n\": 2, \"dice\": {\"mean\": 0.5, \"std\": 0.1}, \"hd95\": {\"mean\": null, \"std\": null}}");

        var r = CliRunner.Run("report", eval, "--out", Path.Combine(root, "report"));

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("| kvasir |", r.Stdout);
        Assert.Contains("50.00", r.Stdout);
    }
}
