namespace Vlsm.IO;

/// <summary>
/// Writes files so that a reader sees either the old content or the complete new content, never
/// a partial file: the data goes to a temporary file in the target's directory, is flushed to
/// disk, and is then renamed over the target. If writing fails, the temporary file is deleted
/// and an existing target is left as it was.
/// </summary>
public static class AtomicFile
{
    /// <summary>A hidden, unique name for a temporary beside <paramref name="name"/>: <c>.NAME.32-hex.tmp</c> (files here, staging folders in <see cref="AtomicFolder"/>).</summary>
    public static string TemporaryName(string name) => $".{name}.{Guid.NewGuid():N}.tmp";

    /// <summary>Whether <paramref name="name"/> has the form <see cref="TemporaryName"/> gives (what <see cref="FolderLock"/> cleans after a killed process).</summary>
    public static bool IsTemporaryName(string name)
    {
        if (name.Length < 1 + 1 + 1 + 32 + 4 || name[0] != '.' || !name.EndsWith(".tmp", StringComparison.Ordinal)) return false;
        var guid = name.AsSpan(name.Length - 4 - 32, 32);
        if (name[name.Length - 4 - 32 - 1] != '.') return false;
        foreach (char c in guid)
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
        return true;
    }

    /// <summary>
    /// Writes <paramref name="path"/> atomically with whatever <paramref name="write"/> writes to
    /// the stream it is given. The callback may dispose the stream (e.g. through a
    /// <see cref="StreamWriter"/>); the data is still flushed to disk before the rename.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var (target, temp) = Stage(path, write);
        try
        {
            File.Move(temp, target, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    public static void WriteAllBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        WriteAllBytes(path, bytes.AsSpan());
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var (target, temp, stream) = Begin(path);
        try
        {
            stream.Write(bytes);
            Commit(stream, temp, target);
        }
        catch
        {
            Abort(stream, temp);
            throw;
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte order mark.</summary>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
    }

    /// <summary>
    /// Writes several files as one set, as far as a file system allows: every file goes to its
    /// temporary first, and only when all are complete are they renamed over their targets. A target
    /// that is a folder is refused before anything is written, so an error leaves the old set as it was.
    /// </summary>
    /// <exception cref="VlsmException">A target is a folder.</exception>
    public static void WriteAllTexts(IReadOnlyList<(string Path, string Text)> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        foreach (var (path, _) in files) RefuseFolderAt(path);
        var staged = new List<(string Target, string Temp)>();
        try
        {
            foreach (var (path, text) in files)
                staged.Add(Stage(path, stream => stream.Write(System.Text.Encoding.UTF8.GetBytes(text))));
            foreach (var (target, temp) in staged) File.Move(temp, target, overwrite: true);
        }
        catch
        {
            foreach (var (_, temp) in staged) TryDelete(temp);
            throw;
        }
    }

    /// <summary>Refuses to write a file at <paramref name="path"/> when a folder is there (the rename would fail only after the data was written).</summary>
    /// <exception cref="VlsmException">The path is a folder.</exception>
    public static void RefuseFolderAt(string path)
    {
        if (Directory.Exists(path))
            throw new VlsmException($"{path} is a folder, so {System.IO.Path.GetFileName(path)} cannot be written there and nothing was written; remove that folder, or write somewhere else.");
    }

    /// <summary>
    /// Writes a temporary beside <paramref name="path"/> with <paramref name="write"/> and flushes it to
    /// disk, ready to be renamed over the target; a failure deletes it.
    /// </summary>
    private static (string Target, string Temp) Stage(string path, Action<Stream> write)
    {
        var (target, temp, stream) = Begin(path);
        try
        {
            write(stream);
            FlushToDisk(stream, temp);
            return (target, temp);
        }
        catch
        {
            Abort(stream, temp);
            throw;
        }
    }

    private static (string Target, string Temp, FileStream Stream) Begin(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var target = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(target)
            ?? throw new ArgumentException($"'{path}' names no file", nameof(path));
        var name = System.IO.Path.GetFileName(target);
        if (name.Length == 0)
        {
            throw new ArgumentException($"'{path}' names a directory, not a file", nameof(path));
        }
        Directory.CreateDirectory(directory);
        // Random suffix plus CreateNew: two concurrent writers of the same target never share a temp file.
        while (true)
        {
            var temp = System.IO.Path.Combine(directory, TemporaryName(name));
            try
            {
                var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);
                return (target, temp, stream);
            }
            catch (IOException) when (File.Exists(temp))
            {
                // Name collision (practically impossible): try another name.
            }
        }
    }

    private static void Commit(FileStream stream, string temp, string target)
    {
        FlushToDisk(stream, temp);
        File.Move(temp, target, overwrite: true);
    }

    private static void FlushToDisk(FileStream stream, string temp)
    {
        if (stream.CanWrite)
        {
            stream.Flush(flushToDisk: true);
            stream.Dispose();
        }
        else
        {
            // The callback disposed the stream: its buffers reached the OS, but not necessarily the disk.
            using var reopened = new FileStream(temp, FileMode.Open, FileAccess.Write, FileShare.None);
            reopened.Flush(flushToDisk: true);
        }
    }

    private static void Abort(FileStream stream, string temp)
    {
        try
        {
            stream.Dispose();
        }
        catch (Exception)
        {
            // Flushing the rest of a failed write can fail again; the file is deleted anyway.
        }
        TryDelete(temp);
    }

    private static void TryDelete(string temp)
    {
        try
        {
            File.Delete(temp);
        }
        catch (Exception)
        {
            // Best effort: the original exception is the one worth reporting.
        }
    }
}
