using System.Text.RegularExpressions;

namespace Vlsm.Data;

/// <summary>
/// A dataset in the medvlsm layout: <c>ROOT/images/</c>, <c>ROOT/masks/</c> and
/// <c>ROOT/anns/{train,val,test}.json</c>, with folders and files optionally renamed by
/// <c>ROOT/dataset.yaml</c> (<see cref="DatasetConfig"/>).
/// </summary>
/// <remarks>
/// Splits: train, val and test always exist (a split without a file is empty, as CAMUS has no
/// train file); other <c>anns/*.json</c> files (e.g. <c>testB.json</c>) are further splits. When
/// dataset.yaml has <c>annotations</c>, its keys are the splits besides those three. Asking for a
/// split with <see cref="RequiredRecords"/> demands its file.
/// </remarks>
public sealed partial class MedvlsmDataset
{
    public static readonly IReadOnlyList<string> StandardSplits = ["train", "val", "test"];

    /// <summary>Full path of the dataset folder.</summary>
    public string Root { get; }

    /// <summary>The folder's name (e.g. "kvasir_polyp"); names the dataset in records and reports.</summary>
    public string Name { get; }

    /// <summary>
    /// Whether a record's image or mask may be reached through a symbolic link that leads outside
    /// the dataset folder (the command line's <c>--follow-symlinks</c>). Off by default: a link in
    /// a dataset from elsewhere must not read files outside it (e.g. /etc/passwd).
    /// </summary>
    public bool FollowSymlinks { get; }

    /// <summary>What <see cref="Open"/> uses when not told: the process's <c>--follow-symlinks</c>, set once by the command line.</summary>
    public static bool FollowSymlinksByDefault { get; set; }

    private string? _realRoot;

    /// <summary>The <c>class</c> from dataset.yaml, if any.</summary>
    public string? ClassName { get; }

    public string ImagesDir { get; }
    public string MasksDir { get; }

    /// <summary>train, val, test, then any further splits in name order.</summary>
    public IReadOnlyList<string> Splits { get; }

    private readonly Dictionary<string, string> _splitFiles;
    private readonly bool _filesFromConfig;

    private MedvlsmDataset(string root, DatasetConfig config, bool followSymlinks)
    {
        Root = root;
        FollowSymlinks = followSymlinks;
        Name = Path.GetFileName(root);
        ClassName = config.Class;
        ImagesDir = Path.GetFullPath(Path.Combine(root, config.Images));
        MasksDir = Path.GetFullPath(Path.Combine(root, config.Masks));
        _filesFromConfig = config.Annotations is not null;
        _splitFiles = new Dictionary<string, string>(StringComparer.Ordinal);
        if (config.Annotations is { } named)
        {
            foreach (var (split, file) in named) _splitFiles[split] = Path.GetFullPath(Path.Combine(root, file));
        }
        else
        {
            string anns = Path.Combine(root, "anns");
            foreach (var split in StandardSplits) _splitFiles[split] = Path.Combine(anns, split + ".json");
            if (Directory.Exists(anns))
            {
                foreach (var file in Directory.EnumerateFiles(anns, "*.json"))
                {
                    string split = Path.GetFileNameWithoutExtension(file);
                    if (IsValidSplitName(split)) _splitFiles.TryAdd(split, Path.GetFullPath(file));
                }
            }
        }
        Splits = StandardSplits.Concat(_splitFiles.Keys.Except(StandardSplits).Order(StringComparer.Ordinal)).ToArray();
    }

    /// <summary>Opens a dataset folder, reading its dataset.yaml if present. Annotation files are read on demand.</summary>
    /// <exception cref="VlsmException">The folder does not exist or dataset.yaml is invalid.</exception>
    /// <param name="followSymlinks">Allow links out of the folder (<see cref="FollowSymlinks"/>); null: <see cref="FollowSymlinksByDefault"/>.</param>
    public static MedvlsmDataset Open(string root, bool? followSymlinks = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (root.Length == 0) throw new VlsmException("The dataset folder path is empty; give the folder holding images/, masks/ and anns/.");
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        if (File.Exists(full))
            throw new VlsmException($"{root}: is a file; give the dataset folder (holding images/, masks/ and anns/).");
        if (!Directory.Exists(full))
            throw new VlsmException($"{root}: dataset folder not found; give the folder holding images/, masks/ and anns/.");
        return new MedvlsmDataset(full, DatasetConfig.Load(full), followSymlinks ?? FollowSymlinksByDefault);
    }

    [GeneratedRegex("^[A-Za-z0-9_-]+$")]
    private static partial Regex SplitNamePattern();

    public static bool IsValidSplitName(string split) => SplitNamePattern().IsMatch(split);

    /// <summary>The annotation file of <paramref name="split"/> (which may not exist), or null for a split the dataset does not define.</summary>
    public string? SplitFile(string split) => _splitFiles.GetValueOrDefault(split);

    /// <summary>Whether <paramref name="split"/> has an annotation file on disk.</summary>
    public bool HasFile(string split) => SplitFile(split) is { } file && File.Exists(file);

    /// <summary>
    /// The records of <paramref name="split"/>; empty when a standard split has no file.
    /// </summary>
    /// <exception cref="VlsmException">
    /// The split is unknown, a file named by dataset.yaml is missing, the file is invalid, or a
    /// record's path escapes the images/masks folder (named by file, index and img_name).
    /// </exception>
    public IReadOnlyList<DatasetRecord> Records(string split) => Records(split, required: false);

    /// <summary>Like <see cref="Records(string)"/>, but a split without an annotation file is an error: for splits asked for explicitly.</summary>
    public IReadOnlyList<DatasetRecord> RequiredRecords(string split) => Records(split, required: true);

    private IReadOnlyList<DatasetRecord> Records(string split, bool required)
    {
        var annotations = ReadAnnotations(split, required, out string? file);
        if (file is null) return [];
        var records = new List<DatasetRecord>(annotations.Count);
        for (int i = 0; i < annotations.Count; i++)
        {
            records.Add(Resolve(split, file, i, annotations[i], out string? problem)
                ?? throw new VlsmException($"{RecordPaths.Where(file, i, annotations[i].ImgName)}: {problem}."
                    + (problem!.Contains("--follow-symlinks", StringComparison.Ordinal) ? "" : " Record paths must be relative to the images/masks folders, without '..'; fix the record.")));
        }
        return records;
    }

    /// <summary>
    /// The raw annotation records of a split, and the file they came from (null, with no records,
    /// when a split that may be absent has no file).
    /// </summary>
    public IReadOnlyList<AnnotationRecord> ReadAnnotations(string split, bool required, out string? file)
    {
        ArgumentNullException.ThrowIfNull(split);
        file = SplitFile(split);
        if (file is null)
        {
            // dataset.yaml's annotations may leave out a standard split: it is empty, like a missing file.
            if (!required && StandardSplits.Contains(split)) return [];
            throw new VlsmException(
                $"{Root}: dataset {Name} has no split \"{split}\"; splits with annotation files: {SplitsWithFiles()}."
                + (_filesFromConfig ? $" Add it under annotations in {Path.Combine(Root, DatasetConfig.FileName)}." : ""));
        }
        // Checked before "no file": a folder there is a mistake to name, not an empty split to skip.
        if (Directory.Exists(file))
            throw new VlsmException($"{file} is a folder, not the annotation file of split \"{split}\" of dataset {Name}; remove it, or replace it with the split's JSON file (a list of img_name, mask_name, prompts records).");
        if (!File.Exists(file))
        {
            if (required || _filesFromConfig)
            {
                throw new VlsmException(_filesFromConfig
                    ? $"{file}: annotation file for split \"{split}\" of dataset {Name} not found, but {Path.Combine(Root, DatasetConfig.FileName)} names it. Create it or fix the path."
                    : $"{file}: dataset {Name} has no annotation file for split \"{split}\". Create it, or choose a split that has one ({SplitsWithFiles()}).");
            }
            file = null;
            return [];
        }
        return AnnotationFile.Read(file);
    }

    /// <summary>Why <paramref name="path"/> leaves the dataset folder through a symbolic link, or null when its real path stays inside.</summary>
    private string? Outside(string path)
    {
        _realRoot ??= RecordPaths.RealPath(Root);
        string real = RecordPaths.RealPath(path);
        if (RecordPaths.IsInside(real, _realRoot)) return null;
        return $"\"{Path.GetRelativePath(Root, path)}\" is a symbolic link (or lies under one) that leads outside the dataset folder {Root}, to {real}; "
            + "links out of a dataset are refused unless --follow-symlinks is given";
    }

    private string SplitsWithFiles() => Splits.Where(HasFile).ToArray() is { Length: > 0 } present ? string.Join(", ", present) : "none";

    /// <summary>
    /// Resolves one annotation record's image and mask paths; null with the reason when either
    /// escapes its folder (absolute, '..', or resolving outside).
    /// </summary>
    public DatasetRecord? Resolve(string split, string annotationPath, int index, AnnotationRecord annotation, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(annotation);
        string? image = RecordPaths.Resolve(ImagesDir, annotation.ImgName, out string? imageProblem);
        if (image is null)
        {
            problem = $"img_name \"{annotation.ImgName}\" {imageProblem}";
            return null;
        }
        string? mask = RecordPaths.Resolve(MasksDir, annotation.MaskName, out string? maskProblem);
        if (mask is null)
        {
            problem = $"mask_name \"{annotation.MaskName}\" {maskProblem}";
            return null;
        }
        if (!FollowSymlinks && (Outside(image) ?? Outside(mask)) is { } escape)
        {
            problem = escape;
            return null;
        }
        problem = null;
        var id = new RecordId(Name, split, index, annotation.ImgName, annotation.MaskName);
        return new DatasetRecord(id, annotation, annotationPath, image, mask);
    }
}

/// <summary>
/// Several datasets trained on together: records of a split from every dataset, in the order the
/// datasets were given; each record keeps its dataset's name.
/// </summary>
public sealed class PooledDataset
{
    public IReadOnlyList<MedvlsmDataset> Datasets { get; }

    public PooledDataset(IReadOnlyList<MedvlsmDataset> datasets)
    {
        ArgumentNullException.ThrowIfNull(datasets);
        if (datasets.Count == 0) throw new VlsmException("No datasets given; pass at least one dataset folder.");
        var clash = datasets.GroupBy(d => d.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
        {
            throw new VlsmException(
                $"{string.Join(" and ", clash.Select(d => d.Root).Distinct())}: two datasets are both named \"{clash.Key}\"; records are identified by dataset folder name, so give the folders distinct names"
                + (clash.Select(d => d.Root).Distinct().Count() == 1 ? " (or pass each folder once)." : "."));
        }
        Datasets = datasets;
    }

    /// <summary>Opens each folder (see <see cref="MedvlsmDataset.Open"/>).</summary>
    /// <param name="followSymlinks">Allow links out of the folders (<see cref="MedvlsmDataset.FollowSymlinks"/>); null: <see cref="MedvlsmDataset.FollowSymlinksByDefault"/>.</param>
    public static PooledDataset Open(IEnumerable<string> roots, bool? followSymlinks = null)
    {
        ArgumentNullException.ThrowIfNull(roots);
        return new PooledDataset(roots.Select(r => MedvlsmDataset.Open(r, followSymlinks)).ToArray());
    }

    /// <summary>All datasets' records of <paramref name="split"/>; datasets without a file for it contribute none.</summary>
    public IReadOnlyList<DatasetRecord> Records(string split) => Datasets.SelectMany(d => d.Records(split)).ToArray();

    /// <summary>Like <see cref="Records"/>, but every dataset must have a file for <paramref name="split"/> (the error names the dataset that lacks one).</summary>
    public IReadOnlyList<DatasetRecord> RequiredRecords(string split) => Datasets.SelectMany(d => d.RequiredRecords(split)).ToArray();
}
