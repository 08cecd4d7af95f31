using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Vlsm.Apps.Sweeps;
using Vlsm.IO;

namespace Vlsm.Apps.Reports;

/// <summary>One evaluation of one method on one column (dataset or prompt) with one seed, and where it came from.</summary>
public sealed record ReportEntry(string Method, string Column, string Seed, IReadOnlyDictionary<string, double?> Metrics, long? TrainableParameters, string Source);

/// <summary>A table cell: the mean and (sample) standard deviation over seeds, and the entries behind it.</summary>
public sealed record ReportCell(double Mean, double? Std, IReadOnlyList<ReportEntry> Entries);

/// <summary>Which metric a table shows and which way is better.</summary>
public sealed record ReportMetric(string Key, string Label, bool HigherIsBetter, bool Percent)
{
    public static readonly IReadOnlyList<ReportMetric> Known =
    [
        new("dice", "Dice", true, true),
        new("iou", "IoU", true, true),
        new("hd95", "HD95", false, false),
        new("nsd", "NSD", true, true),
        new("ones_dice_diff", "Dice over all-ones", true, true),
        new("zeros_dice_diff", "Dice over all-zeros", true, true),
    ];

    public static ReportMetric Parse(string key) => Known.FirstOrDefault(m => m.Key == key)
        ?? throw new VlsmException($"--metric \"{key}\" is not one of {string.Join(", ", Known.Select(m => m.Key))}.");
}

/// <summary>
/// The papers' comparison tables from run and evaluation folders: rows are methods (with their
/// trainable parameters, as VLSM-Adapter's Table 1), columns are datasets or prompts, each cell the
/// mean ± standard deviation over seeds (the sample std, as pandas and the seeds' eval_metrics.py
/// print it), the best of each column in bold. A missing cell is shown as missing, never as zero.
/// Written as report.md, report.csv, report.tex (<c>mean \smallStd{std}</c>), report.png (a heat
/// map) and cells.csv (every value and the folder it came from).
/// </summary>
public sealed class ComparisonReport
{
    private ComparisonReport(ReportMetric metric, string columnKind, IReadOnlyList<ReportEntry> entries)
    {
        Metric = metric;
        ColumnKind = columnKind;
        Entries = entries;
        Methods = entries.Select(e => e.Method).Distinct().ToList();
        Columns = entries.Select(e => e.Column).Distinct().ToList();
    }

    public ReportMetric Metric { get; }
    public string ColumnKind { get; }
    public IReadOnlyList<ReportEntry> Entries { get; }
    public IReadOnlyList<string> Methods { get; }
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Reads every sweep, cell, or evaluation folder given.</summary>
    /// <param name="columns">"data" (a column per dataset) or "prompt" (per prompt; rows then also name the dataset when there are several).</param>
    /// <exception cref="VlsmException">A folder holds nothing a report reads, or no evaluation at all is found.</exception>
    public static ComparisonReport Collect(IEnumerable<string> folders, string metric = "dice", string columns = "data")
    {
        if (columns is not ("data" or "prompt")) throw new VlsmException($"--columns \"{columns}\" is not one of data, prompt.");
        var entries = new List<ReportEntry>();
        foreach (var folder in folders)
        {
            if (!Directory.Exists(folder)) throw new VlsmException($"{folder}: no such folder; give sweep folders (--out of vlsm sweep), cell folders or evaluation folders (--out of vlsm eval).");
            int before = entries.Count;
            if (File.Exists(Path.Combine(folder, Sweep.PlanFile)))
            {
                var sweep = Sweep.Open(folder);
                foreach (var cell in sweep.Cells) entries.AddRange(FromCell(sweep.CellDir(cell), sweep.Spec, columns));
            }
            else if (File.Exists(Path.Combine(folder, CellRunner.RecordFile)))
            {
                entries.AddRange(FromCell(folder, null, columns));
            }
            else if (File.Exists(Path.Combine(folder, "summary.json")))
            {
                entries.AddRange(FromEvaluation(folder, Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/')), "-", null, columns));
            }
            else
            {
                throw new VlsmException($"{folder}: holds no sweep.json, cell.json or summary.json; give sweep, cell or evaluation folders.");
            }
            if (entries.Count == before && !File.Exists(Path.Combine(folder, Sweep.PlanFile)))
                throw new VlsmException($"{folder}: no finished evaluation in it.");
        }
        if (entries.Count == 0) throw new VlsmException("no finished evaluation in the folders given; has the sweep run?");
        return new ComparisonReport(ReportMetric.Parse(metric), columns, entries);
    }

    /// <summary>Entries of a finished cell; a cell that is not done contributes nothing (its table cells show as missing).</summary>
    private static IEnumerable<ReportEntry> FromCell(string cellDir, SweepSpec? spec, string columns)
    {
        var record = CellRunner.Read(cellDir);
        if (record is null || record.Status != CellStatus.Done) yield break;
        var methodValues = record.Values.Where(v => v.Key is not ("data" or "seed" or "trial") && !(columns == "prompt" && v.Key == "prompt")).ToList();
        string method = methodValues.Count switch
        {
            0 => spec?.Name ?? "model",
            1 => Text(methodValues[0].Value),
            _ => string.Join(", ", methodValues.Select(v => $"{v.Key}={Text(v.Value)}")),
        };
        if (record.Values.TryGetValue("trial", out var trial)) method += $" (trial {Text(trial)})";
        string seed = record.Values.TryGetValue("seed", out var s) ? Text(s) : "-";
        string? promptColumn = columns == "prompt" && record.Values.TryGetValue("prompt", out var p) ? Text(p) : null;
        foreach (var (_, relative) in record.Evaluations.OrderBy(e => e.Key, StringComparer.Ordinal))
            foreach (var entry in FromEvaluation(Path.Combine(cellDir, relative), method, seed, record.TrainableParameters, columns, promptColumn))
                yield return entry;
    }

    private static string Text(JsonNode? node) => node switch
    {
        null => "none",
        JsonObject bundle => bundle["name"] is { } name ? Text(name) : string.Join("+", bundle.Select(kv => Text(kv.Value))),
        JsonArray a => string.Join("+", a.Select(x => Path.GetFileName(x!.GetValue<string>().TrimEnd('/')))),
        _ => node.GetValue<string>() is var t && (t.Contains('/')) ? Path.GetFileName(t.TrimEnd('/')) : node.GetValue<string>(),
    };

    /// <summary>Entries of one summary.json: a column per dataset (or per prompt), as the report's columns ask.</summary>
    /// <exception cref="VlsmException">The file is not a summary vlsm eval writes; the message names the file and the field.</exception>
    private static IEnumerable<ReportEntry> FromEvaluation(string dir, string method, string seed, long? trainable, string columns, string? promptColumn = null)
    {
        string path = Path.Combine(dir, "summary.json");
        if (!File.Exists(path)) return [];
        var summaryFile = new SummaryFile(path);
        var root = summaryFile.Root();
        // Each part with its field path ("prompts.p0.datasets.kvasir."), so an error names the field in full.
        IEnumerable<(string Prompt, JsonObject Node, string Field)> prompts = root["prompts"] is { } all
            ? summaryFile.Object(all, "prompts").Select(kv => (kv.Key, summaryFile.Object(kv.Value, $"prompts.{kv.Key}"), $"prompts.{kv.Key}."))
            : [(summaryFile.String(root["prompt"], "prompt") ?? "", root, "")];
        var entries = new List<ReportEntry>();
        foreach (var (prompt, node, promptField) in prompts)
        {
            List<(string Dataset, JsonObject Summary, string Field)> datasets = node["datasets"] is { } many
                ? summaryFile.Object(many, $"{promptField}datasets").Select(kv => (kv.Key, summaryFile.Object(kv.Value, $"{promptField}datasets.{kv.Key}"), $"{promptField}datasets.{kv.Key}.")).ToList()
                : [(summaryFile.String(root["dataset"], "dataset") ?? "dataset", node, promptField)];
            foreach (var (dataset, summary, field) in datasets)
            {
                var metrics = ReportMetric.Known.ToDictionary(m => m.Key, m => summaryFile.Mean(summary, field + m.Key));
                if (columns == "prompt")
                {
                    string row = datasets.Count > 1 ? $"{method} / {dataset}" : method;
                    entries.Add(new ReportEntry(row, promptColumn ?? prompt, seed, metrics, trainable, dir));
                }
                else
                {
                    entries.Add(new ReportEntry(method, dataset, seed, metrics, trainable, dir));
                }
            }
        }
        return entries;
    }

    /// <summary>
    /// Reads one summary.json as vlsm eval writes it (<see cref="Vlsm.Evaluation.EvaluationReport"/>);
    /// anything else is an error naming the file, the field, what it should hold and how to get a good one.
    /// </summary>
    private sealed class SummaryFile(string path)
    {
        private const string Fix = "re-run the evaluation that wrote it (vlsm eval --out this folder; in a sweep, delete the cell's cell.json and run the sweep again)";

        public JsonObject Root()
        {
            JsonNode? root;
            try
            {
                root = JsonNode.Parse(File.ReadAllText(path));
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new VlsmException($"{path}: not valid JSON ({e.Message}); {Fix}.", e);
            }
            return root as JsonObject ?? throw Wrong("the file", "a JSON object", root);
        }

        public JsonObject Object(JsonNode? node, string field) => node as JsonObject ?? throw Wrong(field, "an object", node);

        /// <summary>The string at <paramref name="node"/>, or null when the field is absent.</summary>
        public string? String(JsonNode? node, string field) =>
            node is null ? null
            : node is JsonValue value && value.TryGetValue<string>(out var text) ? text
            : throw Wrong(field, "a string", node);

        /// <summary>The mean of the metric at <paramref name="field"/> ("datasets.kvasir.dice"), or null when the summary has none (a metric not computed, or undefined).</summary>
        public double? Mean(JsonObject summary, string field)
        {
            var node = summary[field[(field.LastIndexOf('.') + 1)..]];
            if (node is null) return null;
            var mean = Object(node, field)["mean"];
            if (mean is null) return null;
            return mean is JsonValue value && value.TryGetValue<double>(out var number)
                ? number
                : throw Wrong($"{field}.mean", "a number", mean);
        }

        private VlsmException Wrong(string field, string expected, JsonNode? got) =>
            new($"{path}: {field} should be {expected}, not {Printable.Clip(got?.ToJsonString() ?? "null")}; {Fix}.");
    }

    /// <summary>The cell of a method and column, or null when no run of it finished.</summary>
    public ReportCell? Cell(string method, string column)
    {
        var entries = Entries.Where(e => e.Method == method && e.Column == column && e.Metrics[Metric.Key] is not null).ToList();
        if (entries.Count == 0) return null;
        var values = entries.Select(e => e.Metrics[Metric.Key]!.Value).ToList();
        double mean = values.Average();
        double? std = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : null;
        return new ReportCell(mean, std, entries);
    }

    /// <summary>The method(s) with the best mean in each column.</summary>
    public IReadOnlySet<string> Best(string column)
    {
        var cells = Methods.Select(m => (m, Cell(m, column))).Where(c => c.Item2 is not null).ToList();
        if (cells.Count == 0) return new HashSet<string>();
        double best = Metric.HigherIsBetter ? cells.Max(c => c.Item2!.Mean) : cells.Min(c => c.Item2!.Mean);
        return cells.Where(c => c.Item2!.Mean == best).Select(c => c.m).ToHashSet();
    }

    public long? Trainable(string method) => Entries.Where(e => e.Method == method).Select(e => e.TrainableParameters).FirstOrDefault(t => t is not null);

    private string Number(double value) => (Metric.Percent ? value * 100 : value).ToString("0.00", CultureInfo.InvariantCulture);

    private static string Count(long? n) => n is { } v ? v.ToString("N0", CultureInfo.InvariantCulture) : "";

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        string unit = Metric.Percent ? " (%)" : Metric.Key == "hd95" ? " (px)" : "";
        text.Append($"{Metric.Label}{unit}, mean ± std over seeds; best per column in bold; — = no finished run.\n\n");
        text.Append("| method | trainable parameters | ").Append(string.Join(" | ", Columns)).Append(" |\n");
        text.Append("|---|---:|").Append(string.Concat(Columns.Select(_ => "---:|"))).Append('\n');
        foreach (var method in Methods)
        {
            text.Append($"| {method} | {Count(Trainable(method))} |");
            foreach (var column in Columns)
            {
                var cell = Cell(method, column);
                string value = cell is null ? "—" : Number(cell.Mean) + (cell.Std is { } s ? " ± " + Number(s) : "");
                if (cell is not null && Best(column).Contains(method)) value = $"**{value}**";
                text.Append($" {value} |");
            }
            text.Append('\n');
        }
        return text.ToString();
    }

    public string ToCsv()
    {
        var text = new StringBuilder();
        text.Append("method,trainable_parameters");
        foreach (var c in Columns) text.Append($",{Csv(c + "_mean")},{Csv(c + "_std")},{Csv(c + "_n")}");
        text.Append("\r\n");
        foreach (var method in Methods)
        {
            text.Append(Csv(method)).Append(',').Append(Trainable(method)?.ToString(CultureInfo.InvariantCulture) ?? "");
            foreach (var column in Columns)
            {
                var cell = Cell(method, column);
                text.Append(cell is null ? ",,,0" : $",{R(cell.Mean)},{(cell.Std is { } s ? R(s) : "")},{cell.Entries.Count}");
            }
            text.Append("\r\n");
        }
        return text.ToString();
    }

    public string ToLatex()
    {
        var text = new StringBuilder();
        text.Append("% ").Append(Metric.Label).Append(Metric.Percent ? " (%)" : "").Append(", mean \\smallStd{std} over seeds; best per column in bold; -- = no finished run.\n");
        text.Append("\\providecommand{\\smallStd}[1]{{\\scriptsize$\\pm$#1}}\n");
        text.Append("\\begin{tabular}{lr").Append(new string('c', Columns.Count)).Append("}\n\\toprule\n");
        text.Append("Method & Params & ").Append(string.Join(" & ", Columns.Select(Tex))).Append(" \\\\\n\\midrule\n");
        foreach (var method in Methods)
        {
            text.Append(Tex(method)).Append(" & ").Append(Count(Trainable(method)).Replace(",", "{,}"));
            foreach (var column in Columns)
            {
                var cell = Cell(method, column);
                string value;
                if (cell is null) value = "--";
                else
                {
                    string mean = Number(cell.Mean);
                    if (Best(column).Contains(method)) mean = $"\\textbf{{{mean}}}";
                    value = cell.Std is { } s ? $"${mean} \\smallStd{{{Number(s)}}}$" : $"${mean}$";
                }
                text.Append(" & ").Append(value);
            }
            text.Append(" \\\\\n");
        }
        text.Append("\\bottomrule\n\\end{tabular}\n");
        return text.ToString();
    }

    /// <summary>Every value behind the table, with the folder it came from.</summary>
    public string CellsCsv()
    {
        var text = new StringBuilder("method,column,seed,trainable_parameters," + string.Join(",", ReportMetric.Known.Select(m => m.Key)) + ",source\r\n");
        foreach (var e in Entries)
        {
            text.Append($"{Csv(e.Method)},{Csv(e.Column)},{Csv(e.Seed)},{e.TrainableParameters?.ToString(CultureInfo.InvariantCulture) ?? ""}");
            foreach (var m in ReportMetric.Known) text.Append(',').Append(e.Metrics[m.Key] is { } v ? R(v) : "");
            text.Append(',').Append(Csv(e.Source)).Append("\r\n");
        }
        return text.ToString();
    }

    /// <summary>A heat map of the means (rows methods, columns as the table), missing cells left blank.</summary>
    public byte[] ToPng()
    {
        var plot = new ScottPlot.Plot();
        var values = new double[Methods.Count, Columns.Count];
        for (int r = 0; r < Methods.Count; r++)
            for (int c = 0; c < Columns.Count; c++)
                values[r, c] = Cell(Methods[r], Columns[c]) is { } cell ? (Metric.Percent ? cell.Mean * 100 : cell.Mean) : double.NaN;
        var heatmap = plot.Add.Heatmap(values);
        heatmap.FlipVertically = false;
        plot.Add.ColorBar(heatmap).Label = Metric.Label + (Metric.Percent ? " (%)" : "");
        for (int r = 0; r < Methods.Count; r++)
        {
            for (int c = 0; c < Columns.Count; c++)
            {
                string text = double.IsNaN(values[r, c]) ? "missing" : values[r, c].ToString("0.0", CultureInfo.InvariantCulture);
                var label = plot.Add.Text(text, c, Methods.Count - 1 - r);
                label.LabelAlignment = ScottPlot.Alignment.MiddleCenter;
                label.LabelBackgroundColor = ScottPlot.Colors.White.WithAlpha(0.75); // readable on dark and light cells
            }
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, Columns.Count).Select(i => (double)i).ToArray(), Columns.ToArray());
        plot.Axes.Left.SetTicks(Enumerable.Range(0, Methods.Count).Select(i => (double)(Methods.Count - 1 - i)).ToArray(), Methods.ToArray());
        plot.Title($"{Metric.Label}: mean over seeds");
        return plot.GetImageBytes(Math.Max(500, 160 * Columns.Count + 300), Math.Max(300, 60 * Methods.Count + 160), ScottPlot.ImageFormat.Png);
    }

    public const string MarkdownFile = "report.md";
    public const string CsvFile = "report.csv";
    public const string LatexFile = "report.tex";
    public const string FigureFile = "report.png";
    public const string CellsFile = "cells.csv";

    /// <summary>Writes every format into <paramref name="dir"/>, each atomically.</summary>
    public void Write(string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, MarkdownFile), ToMarkdown());
        AtomicFile.WriteAllText(Path.Combine(dir, CsvFile), ToCsv());
        AtomicFile.WriteAllText(Path.Combine(dir, LatexFile), ToLatex());
        AtomicFile.WriteAllText(Path.Combine(dir, CellsFile), CellsCsv());
        AtomicFile.WriteAllBytes(Path.Combine(dir, FigureFile), ToPng());
    }

    private static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Csv(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;

    private static string Tex(string value) => value.Replace("\\", "\\textbackslash{}").Replace("_", "\\_").Replace("&", "\\&").Replace("%", "\\%").Replace("#", "\\#");
}
