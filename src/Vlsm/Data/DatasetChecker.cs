using System.Text.Json.Nodes;
using Vlsm.Imaging;

namespace Vlsm.Data;

public sealed record DatasetCheckOptions
{
    /// <summary>When set, records that cannot give this prompt (a missing key) are errors.</summary>
    public PromptChoice? Prompt { get; init; }

    /// <summary>A mask with no value above this is reported as empty (what training would see in binary mode).</summary>
    public int MaskThreshold { get; init; } = 127;

    /// <summary>Files decoded at once.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Allow records reached through symbolic links out of the dataset (<see cref="MedvlsmDataset.FollowSymlinks"/>); null: the process default.</summary>
    public bool? FollowSymlinks { get; init; }
}

public enum IssueSeverity
{
    /// <summary>The record cannot be trained on.</summary>
    Error,

    /// <summary>Worth a look, but the record loads.</summary>
    Warning,
}

/// <summary>Issue kinds, as they appear in the report and its JSON.</summary>
public static class IssueKind
{
    public const string DatasetConfig = "dataset_config";
    public const string AnnotationFile = "annotation_file";
    public const string PathEscape = "path_escape";
    public const string MissingFile = "missing_file";
    public const string EmptyFile = "empty_file";
    public const string UnreadableFile = "unreadable_file";
    public const string SizeMismatch = "size_mismatch";
    public const string MissingPrompt = "missing_prompt";
    public const string EmptyMask = "empty_mask";
    public const string NonBinaryMask = "non_binary_mask";
    public const string DuplicateRecord = "duplicate_record";
    public const string SharedImage = "shared_image";
    public const string EmptySplit = "empty_split";
}

/// <summary>One finding; <see cref="File"/> is the file to fix, <see cref="Message"/> says what is wrong and names the files.</summary>
public sealed record CheckIssue(IssueSeverity Severity, string Kind, string File, string Message, string? Split = null, int? Index = null, string? ImgName = null);

/// <summary>Counts for one split.</summary>
/// <param name="File">The annotation file, or null when the split has none.</param>
public sealed record SplitSummary(string Split, string? File, bool HasFile, int Records, int UnusableRecords);

public sealed class DatasetCheckReport
{
    public required string Root { get; init; }
    public required string Name { get; init; }
    public required IReadOnlyList<SplitSummary> Splits { get; init; }

    /// <summary>Dataset-level issues first, then by split and record index.</summary>
    public required IReadOnlyList<CheckIssue> Issues { get; init; }

    public IEnumerable<CheckIssue> Errors => Issues.Where(i => i.Severity == IssueSeverity.Error);
    public IEnumerable<CheckIssue> Warnings => Issues.Where(i => i.Severity == IssueSeverity.Warning);
    public int Records => Splits.Sum(s => s.Records);
    public int UnusableRecords => Splits.Sum(s => s.UnusableRecords);

    /// <summary>No errors: every record can be loaded (warnings allowed).</summary>
    public bool Ok => !Errors.Any();

    public JsonObject ToJson()
    {
        var splits = new JsonObject();
        foreach (var s in Splits)
            splits[s.Split] = new JsonObject { ["file"] = s.File, ["has_file"] = s.HasFile, ["records"] = s.Records, ["unusable"] = s.UnusableRecords };
        var issues = new JsonArray();
        foreach (var i in Issues)
        {
            issues.Add(new JsonObject
            {
                ["severity"] = i.Severity == IssueSeverity.Error ? "error" : "warning",
                ["kind"] = i.Kind,
                ["split"] = i.Split,
                ["index"] = i.Index,
                ["img_name"] = i.ImgName,
                ["file"] = i.File,
                ["message"] = i.Message,
            });
        }
        return new JsonObject
        {
            ["dataset"] = Name,
            ["root"] = Root,
            ["ok"] = Ok,
            ["records"] = Records,
            ["unusable_records"] = UnusableRecords,
            ["errors"] = Errors.Count(),
            ["warnings"] = Warnings.Count(),
            ["splits"] = splits,
            ["issues"] = issues,
        };
    }
}

/// <summary>
/// Checks a dataset before training: reads every split's annotations, resolves every path, decodes
/// every image and mask once (in parallel), and reports per-record errors (the record is unusable)
/// and warnings. Two steps so a caller can show progress: <see cref="Plan"/> reads the annotations
/// and counts the files, <see cref="Run"/> decodes them.
/// </summary>
public sealed class DatasetChecker
{
    private readonly DatasetCheckOptions _options;
    private readonly string _root;
    private readonly string _name;
    private readonly List<CheckIssue> _datasetIssues = [];
    private readonly List<SplitRecords> _splits = [];
    private readonly List<(string Path, bool IsMask)> _files;

    private sealed record SplitRecords(string Split, string? File, bool HasFile, List<RecordEntry> Records);

    /// <summary>A record as read from the file; <see cref="Resolved"/> is null when its paths escape.</summary>
    private sealed record RecordEntry(int Index, AnnotationRecord Annotation, DatasetRecord? Resolved, List<CheckIssue> Issues);

    /// <summary>What decoding one file found.</summary>
    private sealed record FileResult(int Width, int Height, string? ErrorKind, string? Error, bool EmptyMask = false, long NonBinaryPixels = 0);

    /// <summary>Files to decode in <see cref="Run"/> (each distinct image and mask once).</summary>
    public int FilesToDecode => _files.Count;

    private DatasetChecker(string root, string name, DatasetCheckOptions options, List<(string, bool)> files)
    {
        _root = root;
        _name = name;
        _options = options;
        _files = files;
    }

    /// <summary>Reads the dataset's annotation files and lists the files to decode.</summary>
    /// <exception cref="VlsmException">The folder does not exist (an invalid dataset.yaml or annotation file is reported, not thrown).</exception>
    public static DatasetChecker Plan(string root, DatasetCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaskThreshold is < 0 or > 254)
            throw new VlsmException($"The mask threshold must be within 0..254, got {options.MaskThreshold}.");
        if (options.Workers < 1) throw new VlsmException($"The checker needs at least 1 worker, got {options.Workers}.");
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root.Length == 0 ? "." : root));
        if (!Directory.Exists(full))
            throw new VlsmException($"{root}: dataset folder not found; give the folder holding images/, masks/ and anns/.");

        MedvlsmDataset dataset;
        try
        {
            dataset = MedvlsmDataset.Open(full, options.FollowSymlinks);
        }
        catch (VlsmException e)
        {
            var failed = new DatasetChecker(full, Path.GetFileName(full), options, []);
            failed._datasetIssues.Add(new CheckIssue(IssueSeverity.Error, IssueKind.DatasetConfig, Path.Combine(full, DatasetConfig.FileName), e.Message));
            return failed;
        }

        var files = new List<(string, bool)>();
        var seen = new HashSet<(string, bool)>();
        var checker = new DatasetChecker(dataset.Root, dataset.Name, options, files);
        // One line for a missing folder says more than a missing-file error for every record.
        foreach (var (folder, key) in new[] { (dataset.ImagesDir, "images"), (dataset.MasksDir, "masks") })
        {
            if (!Directory.Exists(folder))
            {
                checker._datasetIssues.Add(new CheckIssue(IssueSeverity.Error, IssueKind.MissingFile, folder,
                    $"{folder}: the {key} folder does not exist; create it, or name the folder with \"{key}:\" in {Path.Combine(dataset.Root, DatasetConfig.FileName)}."));
            }
        }
        if (!dataset.Splits.Any(dataset.HasFile))
        {
            string anns = Path.Combine(dataset.Root, "anns");
            checker._datasetIssues.Add(new CheckIssue(IssueSeverity.Error, IssueKind.AnnotationFile, anns,
                $"{dataset.Root}: no annotation file for any split ({(Directory.Exists(anns) ? $"{anns} holds no train.json, val.json, test.json or other *.json" : $"{anns} does not exist")}); "
                + "a medvlsm dataset needs anns/<split>.json (see vlsm synth for the layout)."));
        }
        foreach (var split in dataset.Splits)
        {
            IReadOnlyList<AnnotationRecord> annotations;
            string? file;
            try
            {
                annotations = dataset.ReadAnnotations(split, required: false, out file);
            }
            catch (VlsmException e)
            {
                string at = dataset.SplitFile(split) ?? dataset.Root;
                checker._datasetIssues.Add(new CheckIssue(IssueSeverity.Error, IssueKind.AnnotationFile, at, e.Message, split));
                checker._splits.Add(new SplitRecords(split, at, File.Exists(at), []));
                continue;
            }
            var entries = new List<RecordEntry>(annotations.Count);
            for (int i = 0; i < annotations.Count; i++)
            {
                var annotation = annotations[i];
                var issues = new List<CheckIssue>();
                var resolved = dataset.Resolve(split, file!, i, annotation, out string? problem);
                if (resolved is null)
                {
                    issues.Add(new CheckIssue(IssueSeverity.Error, IssueKind.PathEscape, file!,
                        $"{RecordPaths.Where(file!, i, annotation.ImgName)}: {problem}; record paths must stay inside the images/masks folders.", split, i, annotation.ImgName));
                }
                else
                {
                    if (seen.Add((resolved.ImagePath, false))) files.Add((resolved.ImagePath, false));
                    if (seen.Add((resolved.MaskPath, true))) files.Add((resolved.MaskPath, true));
                }
                if (options.Prompt?.Problem(annotation) is { } promptProblem)
                {
                    issues.Add(new CheckIssue(IssueSeverity.Error, IssueKind.MissingPrompt, file!,
                        $"{RecordPaths.Where(file!, i, annotation.ImgName)}: {promptProblem}.", split, i, annotation.ImgName));
                }
                entries.Add(new RecordEntry(i, annotation, resolved, issues));
            }
            if (file is not null && annotations.Count == 0)
                checker._datasetIssues.Add(new CheckIssue(IssueSeverity.Warning, IssueKind.EmptySplit, file, $"{file}: split \"{split}\" has no records.", split));
            checker._splits.Add(new SplitRecords(split, file ?? dataset.SplitFile(split), file is not null, entries));
        }
        return checker;
    }

    /// <summary>Decodes every file (calling <paramref name="progress"/> with the number done, from one thread at a time) and builds the report.</summary>
    public DatasetCheckReport Run(Action<int>? progress = null)
    {
        var results = new FileResult[_files.Count];
        var progressGate = new object();
        Parallel.For(0, _files.Count, new ParallelOptions { MaxDegreeOfParallelism = _options.Workers }, i =>
        {
            results[i] = Inspect(_files[i].Path, _files[i].IsMask);
            if (progress is not null)
            {
                lock (progressGate) progress(1);
            }
        });
        var byFile = new Dictionary<(string, bool), FileResult>();
        for (int i = 0; i < _files.Count; i++) byFile[_files[i]] = results[i];

        var issues = new List<CheckIssue>(_datasetIssues);
        var summaries = new List<SplitSummary>();
        foreach (var split in _splits)
        {
            var firstOfPair = new Dictionary<(string, string), int>();
            foreach (var entry in split.Records)
            {
                if (entry.Resolved is { } record) CheckRecord(record, split, entry, byFile, firstOfPair);
            }
            issues.AddRange(split.Records.SelectMany(r => r.Issues));
            int unusable = split.Records.Count(r => r.Issues.Any(i => i.Severity == IssueSeverity.Error));
            summaries.Add(new SplitSummary(split.Split, split.File, split.HasFile, split.Records.Count, unusable));
        }
        issues.AddRange(SharedImages());
        return new DatasetCheckReport { Root = _root, Name = _name, Splits = summaries, Issues = issues };
    }

    private void CheckRecord(DatasetRecord record, SplitRecords split, RecordEntry entry,
        Dictionary<(string, bool), FileResult> byFile, Dictionary<(string, string), int> firstOfPair)
    {
        void Add(IssueSeverity severity, string kind, string file, string message) =>
            entry.Issues.Add(new CheckIssue(severity, kind, file, $"{record.Where}: {message}", split.Split, entry.Index, record.Id.ImgName));

        var image = byFile[(record.ImagePath, false)];
        var mask = byFile[(record.MaskPath, true)];
        if (image.ErrorKind is not null) Add(IssueSeverity.Error, image.ErrorKind, record.ImagePath, image.Error!);
        if (mask.ErrorKind is not null) Add(IssueSeverity.Error, mask.ErrorKind, record.MaskPath, mask.Error!);
        if (image.ErrorKind is null && mask.ErrorKind is null)
        {
            if (image.Width != mask.Width || image.Height != mask.Height)
            {
                Add(IssueSeverity.Error, IssueKind.SizeMismatch, record.MaskPath,
                    $"image '{record.ImagePath}' is {image.Width}x{image.Height} but mask '{record.MaskPath}' is {mask.Width}x{mask.Height}; give the mask the image's size.");
            }
            if (mask.EmptyMask)
                Add(IssueSeverity.Warning, IssueKind.EmptyMask, record.MaskPath, $"mask '{record.MaskPath}' has no pixel above {_options.MaskThreshold} (nothing to segment).");
            if (mask.NonBinaryPixels > 0)
            {
                Add(IssueSeverity.Warning, IssueKind.NonBinaryMask, record.MaskPath,
                    $"mask '{record.MaskPath}' has {mask.NonBinaryPixels} of {(long)mask.Width * mask.Height} pixels neither 0 nor 255 (JPEG compression or anti-aliasing?); binary loading thresholds them at {_options.MaskThreshold}.");
            }
        }
        if (!firstOfPair.TryAdd((record.ImagePath, record.MaskPath), entry.Index))
        {
            Add(IssueSeverity.Warning, IssueKind.DuplicateRecord, record.AnnotationPath,
                $"same image and mask as record {firstOfPair[(record.ImagePath, record.MaskPath)]}; it counts twice in training and evaluation.");
        }
    }

    /// <summary>Images in train and an evaluation split (val, test, others), or in both val and test: results would be optimistic.</summary>
    private IEnumerable<CheckIssue> SharedImages()
    {
        var images = _splits.ToDictionary(s => s.Split, s => s.Records.Where(r => r.Resolved is not null)
            .GroupBy(r => r.Resolved!.ImagePath).ToDictionary(g => g.Key, g => g.First()));
        var pairs = new List<(string, string)>();
        if (images.ContainsKey("train"))
            pairs.AddRange(images.Keys.Where(k => k != "train").Select(k => ("train", k)));
        if (images.ContainsKey("val") && images.ContainsKey("test")) pairs.Add(("val", "test"));
        foreach (var (a, b) in pairs)
        {
            foreach (var (path, entry) in images[b].Where(kv => images[a].ContainsKey(kv.Key)).OrderBy(kv => kv.Value.Index))
            {
                var first = images[a][path];
                string fileA = _splits.First(s => s.Split == a).File!, fileB = _splits.First(s => s.Split == b).File!;
                yield return new CheckIssue(IssueSeverity.Warning, IssueKind.SharedImage, path,
                    $"image '{path}' is in {a} ({RecordPaths.Where(fileA, first.Index, first.Annotation.ImgName)}) and in {b} ({RecordPaths.Where(fileB, entry.Index, entry.Annotation.ImgName)}); evaluation on {b} would be optimistic.",
                    $"{a}+{b}", entry.Index, entry.Annotation.ImgName);
            }
        }
    }

    private FileResult Inspect(string path, bool isMask)
    {
        string role = isMask ? "mask" : "image";
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return Directory.Exists(path)
                    ? new FileResult(0, 0, IssueKind.UnreadableFile, $"{role} '{path}' is a folder, not a file.")
                    : new FileResult(0, 0, IssueKind.MissingFile, $"{role} file '{path}' does not exist; add it or fix {(isMask ? "mask_name" : "img_name")} in the record.");
            }
            if (info.Length == 0) return new FileResult(0, 0, IssueKind.EmptyFile, $"{role} file '{path}' is empty (0 bytes); replace it with a valid image.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new FileResult(0, 0, IssueKind.UnreadableFile, $"cannot read {role} file '{path}': {e.Message}");
        }
        try
        {
            if (!isMask)
            {
                var rgb = ImageCodec.DecodeRgb(path);
                return new FileResult(rgb.Width, rgb.Height, null, null);
            }
            var gray = ImageCodec.DecodeGray(path);
            int threshold = _options.MaskThreshold;
            bool any = false;
            long nonBinary = 0;
            foreach (byte v in gray.Pixels)
            {
                if (v > threshold) any = true;
                if (v is not (0 or 255)) nonBinary++;
            }
            return new FileResult(gray.Width, gray.Height, null, null, !any, nonBinary);
        }
        catch (VlsmException e)
        {
            return new FileResult(0, 0, IssueKind.UnreadableFile, e.Message);
        }
        catch (OutOfMemoryException)
        {
            return new FileResult(0, 0, IssueKind.UnreadableFile, $"{role} file '{path}' is too large to decode.");
        }
    }
}
