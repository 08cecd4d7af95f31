namespace Vlsm.Evaluation;

/// <summary>
/// The output folder of <c>vlsm eval --out</c>. An evaluation owns <c>masks/</c>, <c>overlays/</c>,
/// <c>per_image.csv</c> and <c>summary.json</c> there; a new evaluation into the same folder replaces
/// them all, so masks or overlays of an earlier run never sit beside this run's report. Nothing else
/// in the folder is touched, and a folder whose <c>masks/</c> or <c>overlays/</c> an evaluation did not
/// write (a dataset, say) is refused rather than cleared.
/// </summary>
public static class EvaluationFolder
{
    public const string MasksFolder = "masks";
    public const string OverlaysFolder = "overlays";

    private static readonly string[] ReportFiles = [EvaluationReport.PerImageFile, EvaluationReport.SummaryFile];
    private static readonly string[] OwnedFolders = [MasksFolder, OverlaysFolder];

    /// <summary>What an earlier evaluation left in <paramref name="dir"/> (names relative to it), in a fixed order.</summary>
    public static IReadOnlyList<string> Previous(string dir) =>
        OwnedFolders.Where(f => Directory.Exists(Path.Combine(dir, f))).Select(f => f + "/")
            .Concat(ReportFiles.Where(f => File.Exists(Path.Combine(dir, f)))).ToArray();

    /// <summary>Refuses a folder whose outputs an evaluation could not have written; call before any work.</summary>
    /// <exception cref="VlsmException">The folder holds masks/ or overlays/ but no report of an evaluation, or looks like a dataset (anns/).</exception>
    public static void CheckReplaceable(string dir)
    {
        if (!Directory.Exists(dir)) return;
        bool hasReport = ReportFiles.Any(f => File.Exists(Path.Combine(dir, f)));
        var folders = OwnedFolders.Where(f => Directory.Exists(Path.Combine(dir, f))).ToArray();
        if (Directory.Exists(Path.Combine(dir, "anns")) && folders.Length > 0)
            throw new VlsmException($"--out {dir} looks like a dataset (anns/, {string.Join(", ", folders.Select(f => f + "/"))}); eval replaces the masks/ and overlays/ of its output folder, so give another folder.");
        if (folders.Length > 0 && !hasReport)
            throw new VlsmException($"--out {dir} holds {string.Join(" and ", folders.Select(f => f + "/"))} but no {EvaluationReport.SummaryFile}, so vlsm eval did not write them; "
                + "eval replaces those folders, so give an empty or new folder (or remove them).");
    }

    /// <summary>Removes what an earlier evaluation wrote (after <see cref="CheckReplaceable"/>); returns what it removed.</summary>
    public static IReadOnlyList<string> ClearPrevious(string dir)
    {
        CheckReplaceable(dir);
        var removed = Previous(dir);
        foreach (var name in removed)
        {
            string path = Path.Combine(dir, name.TrimEnd('/'));
            if (name.EndsWith('/')) Directory.Delete(path, recursive: true);
            else File.Delete(path);
        }
        return removed;
    }
}
