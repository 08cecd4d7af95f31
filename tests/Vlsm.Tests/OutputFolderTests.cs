using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary>An output folder under a file is refused naming that file, not with .NET's "Could not find a part of the path" (#19).</summary>
public sealed class OutputFolderTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-outfolder-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    [Fact]
    public void AFolderUnderAFileIsRefusedNamingTheFile()
    {
        string file = Path.Combine(tmp, "notes.txt");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<VlsmException>(() => OutputFolder.RefuseFileOnPath(Path.Combine(file, "run", "deeper"), "--out"));
        Assert.Contains($"{file} is a file", e.Message);
        OutputFolder.RefuseFileOnPath(Path.Combine(tmp, "new", "run"), "--out"); // missing parents are fine: they get created
        Assert.False(Directory.Exists(Path.Combine(tmp, "new")));
    }

    [Theory]
    [InlineData("train")]
    [InlineData("eval")]
    [InlineData("predict")]
    public void CommandsRefuseAnOutFolderUnderAFile(string command)
    {
        string file = Path.Combine(tmp, "notes.txt");
        File.WriteAllText(file, "x");
        string model = Path.Combine(Fixtures.Parity, "clipseg-tiny");
        string[] args = command switch
        {
            "train" => ["train", "--model", model, "--data", tmp, "--out", Path.Combine(file, "run")],
            "eval" => ["eval", "--model", model, "--data", tmp, "--out", Path.Combine(file, "ev")],
            _ => ["predict", "--model", model, "--prompt", "x", "--out", Path.Combine(file, "preds"), tmp],
        };
        var r = CliRunner.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{file} is a file", r.Stderr);
        Assert.DoesNotContain("Could not find a part of the path", r.Stderr);
    }
}
