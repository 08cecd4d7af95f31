namespace Vlsm.IO;

/// <summary>Checks on a folder a command will write to, made before any work is done.</summary>
public static class OutputFolder
{
    /// <summary>
    /// Creates <paramref name="dir"/> if needed and checks that a file can be created in it (a
    /// read-only or full disk fails here, not after an hour of work). Messages name the folder, never
    /// the probe file.
    /// </summary>
    /// <param name="flag">The option that named the folder (e.g. <c>--out</c>).</param>
    /// <exception cref="VlsmException">The path is a file, or the folder cannot be created or written.</exception>
    public static void EnsureWritable(string dir, string flag)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        if (File.Exists(dir)) throw new VlsmException($"{flag} {dir} is a file; give a folder.");
        string probe = Path.Combine(dir, $".vlsm-write-check-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(dir);
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
}
