namespace Vlsm.Imaging;

/// <summary>
/// Writes a file so that readers see either the old content or the complete new content:
/// write a temporary file in the same folder, then rename it over the target.
/// Kept tiny and internal on purpose: it is meant to be replaced by <c>Vlsm.IO.AtomicFile</c>.
/// </summary>
internal static class AtomicWrite
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
