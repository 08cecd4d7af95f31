using Vlsm.IO;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Models.San;

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

    /// <summary>A copy of the CLIPSeg fixture: a model folder someone would lose if init or convert wrote over it.</summary>
    private string ClipSegCopy()
    {
        string dir = Path.Combine(tmp, "clipseg");
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(Path.Combine(Fixtures.Parity, "clipseg-tiny")))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }

    private static Dictionary<string, byte[]> Contents(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    [Theory]
    [InlineData("init")]
    [InlineData("convert smp")]
    [InlineData("convert cris")]
    public void InitAndConvertRefuseAFolderThatHoldsAModelAndLeaveItAsItWas(string command)
    {
        string model = ClipSegCopy();
        var before = Contents(model);
        string[] args = command switch
        {
            "init" => ["init", "--arch", "unet-resnet18", "--out", model],
            "convert smp" => ["convert", "smp", "--checkpoint", Path.Combine(Fixtures.Parity, "smp-unet-tiny", "model.pth"), "--out", model],
            _ => ["convert", "cris", "--checkpoint", Path.Combine(Fixtures.Parity, "cris-tiny", "cris-tiny.pth"), "--out", model],
        };
        var r = CliRunner.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--out {model} already holds config.json, merges.txt, model.safetensors", r.Stderr);
        Assert.Contains("give a new or empty folder", r.Stderr);
        var after = Contents(model);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in before) Assert.True(bytes.AsSpan().SequenceEqual(after[name]), name);
        Assert.DoesNotContain(Directory.GetFileSystemEntries(tmp), e => Path.GetFileName(e).StartsWith('.'));
    }

    [Fact]
    public void EveryModelFolderWriterRefusesAFolderThatHoldsFilesBeforeReadingItsSources()
    {
        string model = ClipSegCopy();
        string missing = Path.Combine(tmp, "never-read.pth");
        Assert.Contains("already holds", Assert.Throws<VlsmException>(() => SanConverter.FromCheckpoint(missing, null, model)).Message);
        Assert.Contains("already holds", Assert.Throws<VlsmException>(() => SanConverter.FromClip(missing, null, model, 1)).Message);
        Assert.Contains("already holds", Assert.Throws<VlsmException>(() => BiomedClipConverter.Convert(new BiomedClipSources { Checkpoint = missing }, model)).Message);

        string empty = Path.Combine(tmp, "empty");
        Directory.CreateDirectory(empty);
        OutputFolder.CheckNew(empty, "--out"); // an empty folder (made beforehand) is a new one
        OutputFolder.CheckNew(Path.Combine(tmp, "absent"), "--out");
        Assert.False(Directory.Exists(Path.Combine(tmp, "absent")));
    }

    /// <summary>The arguments of <paramref name="command"/> but its --out, with inputs it reaches the output check with.</summary>
    private string[] ArgsBeforeOut(string command)
    {
        string model = Path.Combine(Fixtures.Parity, "clipseg-tiny"), empty = Path.Combine(tmp, "inputs");
        Directory.CreateDirectory(empty);
        string spec = Path.Combine(tmp, "sweep.yaml");
        File.WriteAllText(spec, $"name: t\nmodel: {model}\ngrid:\n  data: [{empty}]\n  seed: [1]\ntrain: {{epochs: 1}}\neval: {{split: test}}\n");
        return command switch
        {
            "predict" => ["predict", "--model", model, "--prompt", "x", empty],
            "eval" => ["eval", "--model", model, "--data", empty],
            "train" => ["train", "--model", model, "--data", empty, "--epochs", "1"],
            "init" => ["init", "--arch", "unet-resnet18"],
            "convert smp" => ["convert", "smp", "--checkpoint", Path.Combine(Fixtures.Parity, "smp-unet-tiny", "model.pth")],
            "convert cris" => ["convert", "cris", "--checkpoint", Path.Combine(Fixtures.Parity, "cris-tiny", "cris-tiny.pth")],
            "report" => ["report", empty],
            "score" => ["score", "--pred", empty, "--data", empty],
            "synth" => ["synth", "--n", "1", "--seed", "1"],
            "sweep --dry-run" => ["sweep", spec, "--dry-run"],
            _ => ["sweep", spec],
        };
    }

    [Theory]
    [InlineData("predict")]
    [InlineData("eval")]
    [InlineData("train")]
    [InlineData("init")]
    [InlineData("convert smp")]
    [InlineData("report")]
    [InlineData("score")]
    [InlineData("synth")]
    [InlineData("sweep --dry-run")]
    [InlineData("sweep")]
    public void AnEmptyOutIsRefusedNamingTheOptionAndNothingIsWrittenToTheCurrentFolder(string command)
    {
        string cwd = Path.Combine(tmp, "cwd");
        Directory.CreateDirectory(cwd);
        var r = CliRunner.RunIn(cwd, [.. ArgsBeforeOut(command), "--out", ""]);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("error: --out is empty; give a folder path.", r.Stderr.Trim());
        Assert.Empty(Directory.GetFileSystemEntries(cwd));
    }

    [Theory]
    [InlineData("report")]
    [InlineData("score")]
    [InlineData("synth")]
    [InlineData("sweep")]
    public void AnOutThatCannotBeWrittenIsRefusedAsTrainPredictAndEvalRefuseIt(string command)
    {
        string file = Path.Combine(tmp, "notes.txt");
        File.WriteAllText(file, "x");
        const string unwritable = "/proc/vlsm-out"; // not writable, even by root
        var args = ArgsBeforeOut(command);

        var r = CliRunner.Run([.. args, "--out", unwritable]);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith($"error: --out {unwritable} cannot be written", r.Stderr);
        Assert.Contains("choose a folder you can write to", r.Stderr);

        r = CliRunner.Run([.. args, "--out", Path.Combine(file, "sub")]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{file} is a file, so no folder can be made under it", r.Stderr);

        r = CliRunner.Run([.. args, "--out", file]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--out {file} is a file; give a folder", r.Stderr);
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Theory]
    [InlineData("init")]
    [InlineData("convert smp")]
    [InlineData("convert cris")]
    public void AModelFolderThatCannotBeMadeIsRefusedNamingItNotItsTemporaries(string command)
    {
        foreach (var unwritable in new[] { "/proc/vlsm-model", "/proc/vlsm-models/a" }) // not writable, even by root
        {
            var r = CliRunner.Run([.. ArgsBeforeOut(command), "--out", unwritable]);
            Assert.Equal(2, r.ExitCode);
            Assert.StartsWith($"error: --out {unwritable} cannot be written", r.Stderr);
            Assert.Contains("choose a folder you can write to", r.Stderr);
            Assert.DoesNotContain(".tmp", r.Stderr);
            Assert.DoesNotContain(".vlsm-write-check", r.Stderr);
        }
    }
}
