using Vlsm.Data.Synthetic;
using Vlsm.IO;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>Output folders are locked by the process that writes them (issue 19, bad 1), and what a killed process left is cleaned.</summary>
public sealed class RunLockTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-lock-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    private string Data(int scenes = 24)
    {
        string data = Path.Combine(tmp, $"data{scenes}");
        if (!Directory.Exists(data)) SyntheticDataset.Generate(data, new SynthOptions(scenes, 3, Size: 64, Style: SynthStyle.Medical), null);
        return data;
    }

    [Fact]
    public void ASecondTrainOnTheSameOutIsRefusedNamingTheFirstsPid()
    {
        string data = Data();
        string run = Path.Combine(tmp, "run");
        var (a, output) = CliRunner.Start("train", "--model", Tiny, "--data", data, "--mode", "decoder", "--epochs", "50", "--batch-size", "4",
            "--prompt", "p1", "--seed", "1", "--lr", "0.01", "--out", run);
        try
        {
            CliRunner.WaitFor(() => File.Exists(Path.Combine(run, FolderLock.OwnerFileName)), a, "the first train taking its lock");
            var b = CliRunner.Run("train", "--model", Tiny, "--data", data, "--mode", "decoder", "--epochs", "3", "--batch-size", "4",
                "--prompt", "p1", "--seed", "7", "--lr", "0.001", "--out", run);
            Assert.Equal(2, b.ExitCode);
            Assert.Contains($"in use by process {a.Id}", b.Stderr);
            Assert.False(a.HasExited, "the first run must go on: " + output);
            var resume = CliRunner.Run("train", "--resume", run);
            Assert.Equal(2, resume.ExitCode);
            Assert.Contains($"process {a.Id}", resume.Stderr);
        }
        finally
        {
            a.Kill(); // SIGKILL: the operating system drops the lock with the process
            a.WaitForExit();
            a.Dispose();
        }
        using var after = FolderLock.Acquire(run, "test");
        Assert.Equal(Environment.ProcessId, FolderLock.HolderPid(run));
    }

    [Fact]
    public void EvalPredictAndTrainRefuseAFolderAnotherProcessHolds()
    {
        string data = Data(12);
        string held = Path.Combine(tmp, "held");
        using (FolderLock.Acquire(held, "test"))
        {
            string image = Directory.GetFiles(Path.Combine(data, "images")).Order(StringComparer.Ordinal).First();
            var predict = CliRunner.Run("predict", "--model", Tiny, "--prompt", "a polyp", "--out", held, image);
            Assert.Equal(2, predict.ExitCode);
            Assert.Contains($"in use by process {Environment.ProcessId}", predict.Stderr);
            Assert.Empty(Directory.GetFiles(held, "*.png"));

            var eval = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--out", held);
            Assert.Equal(2, eval.ExitCode);
            Assert.Contains($"in use by process {Environment.ProcessId}", eval.Stderr);

            var train = CliRunner.Run("train", "--model", Tiny, "--data", data, "--mode", "decoder", "--epochs", "1", "--out", held);
            Assert.Equal(2, train.ExitCode);
            Assert.Contains($"in use by process {Environment.ProcessId}", train.Stderr);
            Assert.False(File.Exists(Path.Combine(held, "config.yaml")));
        }
        var free = CliRunner.Run("eval", "--model", Tiny, "--data", data, "--prompt", "p1", "--out", held);
        Assert.True(free.ExitCode == 0, free.Stderr);
        Assert.Null(FolderLock.HolderPid(held)); // the owner record goes with the lock
    }

    [Fact]
    public void TheLockIsExclusiveWithinAProcessTooAndNamesItsHolder()
    {
        string folder = Path.Combine(tmp, "f");
        using (var first = FolderLock.Acquire(folder, "train"))
        {
            Assert.True(FolderLock.IsHeld(folder));
            Assert.Null(FolderLock.TryAcquire(folder, "eval"));
            var e = Assert.Throws<VlsmException>(() => FolderLock.Acquire(folder, "eval"));
            Assert.Contains($"process {Environment.ProcessId} (vlsm train)", e.Message);
            Assert.Contains(folder, e.Message);
        }
        Assert.False(FolderLock.IsHeld(folder));
        File.WriteAllText(Path.Combine(tmp, "file"), "x");
        var notAFolder = Assert.Throws<VlsmException>(() => FolderLock.Acquire(Path.Combine(tmp, "file"), "predict"));
        Assert.Contains("is a file", notAFolder.Message);
    }

    [Fact]
    public void StaleTemporariesOfAKilledProcessAreRemovedWhenTheFolderIsLockedAgain()
    {
        string folder = Path.Combine(tmp, "out");
        Directory.CreateDirectory(Path.Combine(folder, "checkpoints", "epoch-0001"));
        var old = DateTime.UtcNow.AddDays(-1);
        string Stale(string path, bool directory = false)
        {
            if (directory)
            {
                Directory.CreateDirectory(path);
                Directory.SetLastWriteTimeUtc(path, old);
            }
            else
            {
                File.WriteAllText(path, "partial");
                File.SetLastWriteTimeUtc(path, old);
            }
            return path;
        }
        string guid() => Guid.NewGuid().ToString("N");
        var stale = new[]
        {
            Stale(Path.Combine(folder, $".metrics.csv.{guid()}.tmp")),
            Stale(Path.Combine(folder, "checkpoints", "epoch-0001", $".weights.safetensors.{guid()}.tmp")),
            Stale(Path.Combine(tmp, $".out.{guid()}.tmp"), directory: true), // AtomicFolder's staging beside the folder
        };
        string fresh = Path.Combine(folder, $".state.json.{guid()}.tmp");
        File.WriteAllText(fresh, "being written now");
        string other = Stale(Path.Combine(folder, ".keep.tmp")); // not a temporary's name
        string neighbour = Stale(Path.Combine(tmp, $".other.{guid()}.tmp"), directory: true); // another folder's staging
        string openElsewhere = Stale(Path.Combine(folder, $".open.bin.{guid()}.tmp"));
        using (new FileStream(openElsewhere, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        using (FolderLock.Acquire(folder, "train"))
        {
            foreach (var path in stale) Assert.False(Path.Exists(path), path);
            Assert.True(File.Exists(fresh));
            Assert.True(File.Exists(other));
            Assert.True(Directory.Exists(neighbour));
            Assert.True(File.Exists(openElsewhere)); // a writer has it open
        }
        Assert.True(AtomicFile.IsTemporaryName($".a.{guid()}.tmp"));
        Assert.False(AtomicFile.IsTemporaryName($"a.{guid()}.tmp"));
        Assert.False(AtomicFile.IsTemporaryName(".a.tmp"));
    }
}
