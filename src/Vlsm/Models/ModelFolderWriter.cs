namespace Vlsm.Models;

/// <summary>Writes a model folder as a whole: its files go to a sibling staging folder, which then takes the folder's place.</summary>
public static class ModelFolderWriter
{
    /// <summary>
    /// Calls <paramref name="fill"/> with an empty staging folder beside <paramref name="outDir"/>, then
    /// moves it into place (or, when the folder exists, its files over the folder's). A failure
    /// leaves <paramref name="outDir"/> as it was and removes the staging folder.
    /// </summary>
    /// <exception cref="VlsmException"><paramref name="outDir"/> is a file.</exception>
    public static void Write(string outDir, Action<string> fill)
    {
        string target = Path.GetFullPath(outDir);
        if (File.Exists(target)) throw new VlsmException($"--out {outDir} is a file; give a folder.");
        string parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staging);
        try
        {
            fill(staging);
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
