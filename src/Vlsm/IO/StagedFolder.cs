namespace Vlsm.IO;

/// <summary>
/// Writes a folder of files so that a reader never sees half of it: everything goes to a sibling
/// staging folder first, which is then moved into place (or, when the folder exists, its files are
/// moved over the old ones). A failure leaves the target as it was and removes the staging folder.
/// </summary>
public static class StagedFolder
{
    /// <param name="outDir">The folder to create or update.</param>
    /// <param name="write">Writes the files into the staging folder it is given.</param>
    /// <exception cref="VlsmException"><paramref name="outDir"/> is a file.</exception>
    public static void Write(string outDir, Action<string> write)
    {
        string target = Path.GetFullPath(outDir);
        if (File.Exists(target)) throw new VlsmException($"--out {outDir} is a file; give a folder.");
        string parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staging);
        try
        {
            write(staging);
            if (!Directory.Exists(target))
            {
                Directory.Move(staging, target);
                return;
            }
            foreach (var file in Directory.GetFiles(staging))
                File.Move(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
            Directory.Delete(staging, recursive: true);
        }
        catch
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            throw;
        }
    }
}
