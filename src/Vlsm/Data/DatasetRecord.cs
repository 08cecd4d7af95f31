namespace Vlsm.Data;

/// <summary>
/// Which record a sample came from: dataset (its folder name), split, position in the split's
/// annotation file, and the file names as written there. Stable across runs, so it seeds the
/// per-record random draws and names records in reports.
/// </summary>
public readonly record struct RecordId(string Dataset, string Split, int Index, string ImgName, string MaskName)
{
    public override string ToString() => $"{Dataset}/{Split}[{Index}] {ImgName}";
}

/// <summary>One annotation record with its image and mask paths resolved inside the dataset folders.</summary>
public sealed record DatasetRecord(RecordId Id, AnnotationRecord Annotation, string AnnotationPath, string ImagePath, string MaskPath)
{
    /// <summary>"anns/train.json: record 12 (img_name "a.jpg")": where to look to fix this record.</summary>
    public string Where => RecordPaths.Where(AnnotationPath, Id.Index, Id.ImgName);

    /// <summary>The record's image (RGB) and mask (one channel); a decoding error names the record and the file.</summary>
    public (Imaging.RgbImage Image, Imaging.GrayImage Mask) Decode()
    {
        try
        {
            return (Imaging.ImageCodec.DecodeRgb(ImagePath), Imaging.ImageCodec.DecodeGray(MaskPath));
        }
        catch (VlsmException e)
        {
            throw new VlsmException($"{Where}: {e.Message}", e);
        }
    }
}

/// <summary>Checks that names from annotation files stay inside their folder.</summary>
internal static class RecordPaths
{
    public static string Where(string annotationPath, int index, string imgName) =>
        $"{annotationPath}: record {index} (img_name \"{imgName}\")";

    /// <summary>
    /// Why <paramref name="name"/> cannot be used as a path relative to a dataset folder, or null
    /// when it can: absolute paths, drive letters, '..' segments and control characters would let an
    /// annotation file read files outside the dataset.
    /// </summary>
    public static string? Problem(string name)
    {
        if (name.Length == 0) return "is empty";
        if (name.Any(char.IsControl)) return "contains a control character";
        if (name[0] is '/' or '\\' || Path.IsPathRooted(name) || (name.Length >= 2 && name[1] == ':' && char.IsAsciiLetter(name[0])))
            return "is an absolute path";
        // Backslashes count as separators too: annotation files written on Windows use them.
        if (name.Split('/', '\\').Any(segment => segment == ".."))
            return "contains '..'";
        return null;
    }

    /// <summary>The full path of <paramref name="name"/> inside <paramref name="folder"/>, or null with the reason it escapes.</summary>
    /// <remarks>
    /// The check is on the path as written; symbolic links are checked by <see cref="RealPath"/>
    /// (<see cref="MedvlsmDataset.FollowSymlinks"/>).
    /// </remarks>
    public static string? Resolve(string folder, string name, out string? problem)
    {
        problem = Problem(name);
        if (problem is not null) return null;
        string baseDir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        string full = Path.GetFullPath(Path.Combine(baseDir, name));
        if (!full.StartsWith(baseDir + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            problem = $"resolves outside {baseDir}";
            return null;
        }
        return full;
    }

    /// <summary>
    /// <paramref name="path"/> with every symbolic link along it replaced by its target (as
    /// realpath(3), but a missing tail is kept as written). At most 40 links are followed.
    /// </summary>
    public static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full)!;
        var pending = new Stack<string>(full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse());
        string current = root;
        int links = 0;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            string next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (!info.Exists || info.LinkTarget is not { } target)
            {
                current = next;
                continue;
            }
            if (++links > 40) return next; // a loop of links: nothing real behind it
            string resolved = Path.GetFullPath(Path.Combine(current, target));
            string resolvedRoot = Path.GetPathRoot(resolved)!;
            foreach (var p in resolved[resolvedRoot.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse()) pending.Push(p);
            current = resolvedRoot;
        }
        return current;
    }

    /// <summary>Whether <paramref name="path"/> is <paramref name="folder"/> or inside it (both full paths).</summary>
    public static bool IsInside(string path, string folder)
    {
        string f = Path.TrimEndingDirectorySeparator(folder);
        return path == f || path.StartsWith(f + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }
}
