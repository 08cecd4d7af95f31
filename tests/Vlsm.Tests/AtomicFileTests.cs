using System.Text;
using Vlsm.IO;

namespace Vlsm.Tests;

public sealed class AtomicFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vlsm-atomic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string[] FilesInDir() => Directory.GetFiles(_dir).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public void WriteCreatesTheFileAndMissingParentDirectories()
    {
        var path = Path.Combine(_dir, "a", "b", "out.bin");
        AtomicFile.Write(path, s => s.Write([1, 2, 3]));
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
        Assert.Equal(["out.bin"], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    [Fact]
    public void WriteReplacesAnExistingFile()
    {
        var path = Path.Combine(_dir, "out.txt");
        File.WriteAllText(path, "old content that is longer");
        AtomicFile.WriteAllText(path, "new");
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal(["out.txt"], FilesInDir());
    }

    [Fact]
    public void ExceptionInTheCallbackLeavesThePreviousContentAndNoTempFile()
    {
        var path = Path.Combine(_dir, "out.txt");
        File.WriteAllText(path, "previous");
        var thrown = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.Write("partial new content"u8);
            s.Flush();
            throw new InvalidOperationException("boom");
        }));
        Assert.Equal("boom", thrown.Message);
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Equal(["out.txt"], FilesInDir());
    }

    [Fact]
    public void ExceptionWithoutAPreviousFileLeavesNothing()
    {
        var path = Path.Combine(_dir, "never.bin");
        Assert.Throws<IOException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[100_000]);
            throw new IOException("disk on fire");
        }));
        Assert.Empty(FilesInDir());
    }

    [Fact]
    public void TheTargetKeepsItsOldContentWhileTheTempFileIsWritten()
    {
        var path = Path.Combine(_dir, "out.txt");
        File.WriteAllText(path, "old");
        AtomicFile.Write(path, s =>
        {
            s.Write("new"u8);
            s.Flush();
            Assert.Equal("old", File.ReadAllText(path));
            var temp = Assert.Single(FilesInDir(), f => f != "out.txt");
            Assert.StartsWith(".out.txt.", temp);
            Assert.EndsWith(".tmp", temp);
        });
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal(["out.txt"], FilesInDir());
    }

    [Fact]
    public void TheCallbackMayDisposeTheStream()
    {
        var path = Path.Combine(_dir, "out.txt");
        AtomicFile.Write(path, s =>
        {
            using var writer = new StreamWriter(s, new UTF8Encoding(false));
            writer.Write("via a writer");
        });
        Assert.Equal("via a writer", File.ReadAllText(path));
        Assert.Equal(["out.txt"], FilesInDir());
    }

    [Fact]
    public void WriteAllBytesAndTextWriteExactly()
    {
        var a = Path.Combine(_dir, "a.bin");
        var b = Path.Combine(_dir, "b.bin");
        var c = Path.Combine(_dir, "c.txt");
        AtomicFile.WriteAllBytes(a, new byte[] { 0, 255, 7 });
        AtomicFile.WriteAllBytes(b, ReadOnlySpan<byte>.Empty);
        AtomicFile.WriteAllText(c, "héllo\n");
        Assert.Equal(new byte[] { 0, 255, 7 }, File.ReadAllBytes(a));
        Assert.Empty(File.ReadAllBytes(b));
        Assert.Equal("héllo\n"u8.ToArray(), File.ReadAllBytes(c)); // UTF-8, no byte order mark
    }

    [Fact]
    public void WritingOverADirectoryFailsAndCleansUp()
    {
        var path = Path.Combine(_dir, "sub");
        Directory.CreateDirectory(path);
        Assert.ThrowsAny<IOException>(() => AtomicFile.WriteAllText(path, "x"));
        Assert.Empty(FilesInDir());
        Assert.True(Directory.Exists(path));
    }
}
