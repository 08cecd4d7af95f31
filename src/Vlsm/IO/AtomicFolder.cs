namespace Vlsm.IO;

/// <summary>
/// Writes a folder of files so that it appears complete or not at all: the files go to a sibling
/// staging folder, which is then moved into place (or, when the target exists, its files are
/// moved over the target's one by one, after checking that none of them would land on a folder).
/// A failure removes the staging folder and leaves the target as it was.
/// </summary>
public static class AtomicFolder
{
    /// <param name="outDir">The folder to write (created; files already there with the same names are replaced).</param>
    /// <param name="fill">Writes the files into the staging folder it is given.</param>
    public static void Write(string outDir, Action<string> fill)
    {
        ArgumentNullException.ThrowIfNull(fill);
        OutputFolder.RefuseFileOnPath(outDir, "--out");
        string target = Path.GetFullPath(outDir);
        string parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, AtomicFile.TemporaryName(Path.GetFileName(target)));
        Directory.CreateDirectory(staging);
        try
        {
            fill(staging);
            if (!Directory.Exists(target))
            {
                Directory.Move(staging, target);
                return;
            }
            var files = Directory.GetFiles(staging);
            // A folder where a file goes would fail its move after the files before it had replaced
            // theirs, leaving a mixed set; refused before any move, so the target stays as it was.
            foreach (var file in files) AtomicFile.RefuseFolderAt(Path.Combine(target, Path.GetFileName(file)));
            foreach (var file in files)
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
