namespace Vlsm.IO;

/// <summary>Checks on a folder a command will write to, made before any work is done.</summary>
public static class OutputFolder
{
    /// <summary>
    /// Refuses an empty folder path (<c>--out ""</c>: .NET would throw an ArgumentException that names no
    /// option, or the current folder would be written), and a path that is a file or lies under one
    /// (<c>notes.txt/run</c>): creating it would fail with .NET's "Could not find a part of the path",
    /// which names no culprit.
    /// </summary>
    /// <exception cref="VlsmException">The path is empty, or it or one of its parents is a file.</exception>
    public static void RefuseFileOnPath(string dir, string flag)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (dir.Length == 0) throw new VlsmException($"{flag} is empty; give a folder path.");
        if (File.Exists(dir)) throw new VlsmException($"{flag} {dir} is a file; give a folder.");
        for (var parent = Path.GetDirectoryName(Path.GetFullPath(dir)); !string.IsNullOrEmpty(parent); parent = Path.GetDirectoryName(parent))
        {
            if (Directory.Exists(parent)) return;
            if (File.Exists(parent)) throw new VlsmException($"{flag} {dir}: {parent} is a file, so no folder can be made under it; give a folder path.");
        }
    }

    /// <summary>
    /// Creates <paramref name="dir"/> if needed and checks that a file can be created in it (a
    /// read-only or full disk fails here, not after an hour of work). Messages name the folder, never
    /// the probe file.
    /// </summary>
    /// <param name="flag">The option that named the folder (e.g. <c>--out</c>).</param>
    /// <exception cref="VlsmException">The path is a file, or the folder cannot be created or written.</exception>
    public static void EnsureWritable(string dir, string flag)
    {
        RefuseFileOnPath(dir, flag);
        ProbeWrite(dir, dir, flag);
    }

    /// <summary>Creates <paramref name="folder"/> if needed and a file in it, deleted at once; a failure is reported as <paramref name="dir"/> (what <paramref name="flag"/> named) being unwritable.</summary>
    private static void ProbeWrite(string folder, string dir, string flag)
    {
        string probe = Path.Combine(folder, $".vlsm-write-check-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(folder);
            using (new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string reason = e.Message.Replace(Path.GetFullPath(probe), dir, StringComparison.Ordinal).Replace(probe, dir, StringComparison.Ordinal);
            throw new VlsmException($"{flag} {dir} cannot be written ({reason.TrimEnd('.')}); choose a folder you can write to.", e);
        }
    }

    /// <summary>
    /// Checks, before any work, a folder that is written whole (a model folder, through
    /// <see cref="AtomicFolder"/>): its path as <see cref="RefuseFileOnPath"/> does, that it holds
    /// nothing yet, and that it can be made. Written over, the old folder's other files would stay beside
    /// the new ones (a CLIPSeg's vocab.json beside a UNet's weights) and its weights would be lost. A
    /// missing or empty folder passes; nothing is created, so a refused conversion leaves no trace.
    /// </summary>
    /// <exception cref="VlsmException">The path is empty or a file, the folder holds files or folders (the message names some of them), or it cannot be written.</exception>
    public static void CheckNew(string dir, string flag)
    {
        RefuseFileOnPath(dir, flag);
        string full = Path.GetFullPath(dir);
        if (Directory.Exists(full))
        {
            var held = Directory.EnumerateFileSystemEntries(full).Select(e => Path.GetFileName(e)!).Order(StringComparer.Ordinal).ToList();
            if (held.Count > 0)
            {
                const int Named = 5;
                string names = string.Join(", ", held.Take(Named)) + (held.Count > Named ? $" and {held.Count - Named} more" : "");
                throw new VlsmException($"{flag} {dir} already holds {names}; give a new or empty folder (or delete {dir} first to replace it).");
            }
        }
        CheckWritable(dir, flag);
        // AtomicFolder stages beside the folder, creating missing parents: the nearest folder above it that exists must take them.
        if (Directory.Exists(full)) ProbeWrite(NearestExisting(Path.GetDirectoryName(full) ?? full), dir, flag);
    }

    /// <summary>
    /// Checks, before any work and without creating anything, that <paramref name="dir"/> can be
    /// written: its path as <see cref="RefuseFileOnPath"/> does, then a test file in it if it exists,
    /// else in the nearest folder above it that exists (which must take the missing ones). A command
    /// that fails later on bad input then leaves no empty --out folder behind.
    /// </summary>
    /// <exception cref="VlsmException">The path is empty or a file, or the folder cannot be written.</exception>
    public static void CheckWritable(string dir, string flag)
    {
        RefuseFileOnPath(dir, flag);
        ProbeWrite(NearestExisting(Path.GetFullPath(dir)), dir, flag);
    }

    /// <summary><paramref name="path"/> if it is a folder, else the nearest folder above it that exists.</summary>
    private static string NearestExisting(string path)
    {
        while (!Directory.Exists(path)) path = Path.GetDirectoryName(path)!;
        return path;
    }
}
