using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.Inference;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm eval</c>: Dice, IoU and HD95 of a model (optionally with trained weights) on a dataset split.</summary>
internal static class EvalCommand
{
    public static Command Build()
    {
        var model = ModelOptions.Model("Model folder (the base model), of any family vlsm knows (config.json's model_type); not needed with --run.");
        var adapter = ModelOptions.Adapter();
        var run = ModelOptions.Run();
        var data = new Option<string[]>("--data")
        {
            Description = "Dataset folder (images/, masks/, anns/); repeat for several datasets: one summary each and their mean.",
            Required = true,
        };
        var split = new Option<string>("--split") { Description = "Split to evaluate.", DefaultValueFactory = _ => "test" };
        var prompt = new Option<string?>("--prompt")
        {
            Description = "A prompt key (p3), random (a key of p1…pN per record), all (every key, one row each) or literal text. "
                + "A list-valued key gives each record one of its texts, the same in every run. Default: with --run the prompt the run trained on (its config.yaml), else random.",
        };
        var threshold = new Option<float>("--threshold") { Description = "Sigmoid threshold for the predicted mask (0.5, as training's validation; with --run, the run's threshold if its config.yaml has one).", DefaultValueFactory = _ => MaskRule.DefaultThreshold };
        var allowOtherBase = ModelOptions.AllowOtherBase();
        var onError = DataOptions.OnErrorOption();
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass.", DefaultValueFactory = _ => 8 };
        var outDir = new Option<string?>("--out") { Description = $"Write {EvaluationReport.PerImageFile} and {EvaluationReport.SummaryFile} here (default: print only)." };
        var saveMasks = new Option<bool>("--save-masks") { Description = "Write predicted masks (0/255 PNG, original size) under OUT/masks/, named after mask_name." };
        var overlays = new Option<int>("--overlays") { Description = "Draw the N best and N worst cases by Dice under OUT/overlays/.", DefaultValueFactory = _ => 0 };
        var maskThreshold = DataOptions.MaskThreshold();
        var nsdTolerance = NsdTolerance();
        var json = new Option<bool>("--json") { Description = "Print summary.json to stdout instead of the table." };
        var familyFlags = ModelOptions.FamilyOptionFlags();
        var precision = PrecisionOption.Create();
        var imageSize = ModelOptions.ImageSize("default with --run: the size the run trained at (its config.yaml).");
        var cmd = new Command("eval", "Evaluate on a dataset split: Dice and IoU per image at the original mask resolution (and at network resolution), "
            + "HD95 in pixels; mean ± population std per dataset and prompt.")
        {
            model, adapter, run, data, split, prompt, threshold, batch, outDir, saveMasks, overlays, maskThreshold, nsdTolerance, json, precision, imageSize, allowOtherBase, onError,
        };
        foreach (var flag in familyFlags) cmd.Options.Add(flag);
        cmd.Options.Add(DataOptions.FollowSymlinks()); // applied by VlsmCli.Guard to every dataset the command opens
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string? output = parse.GetValue(outDir);
            bool masks = parse.GetValue(saveMasks);
            int overlayCount = parse.GetValue(overlays);
            if (output is null && masks) throw new VlsmException("--save-masks writes under the output folder; give --out DIR.");
            if (output is null && overlayCount > 0) throw new VlsmException("--overlays writes under the output folder; give --out DIR.");
            if (output is not null && File.Exists(output)) throw new VlsmException($"--out {output} is a file; give a folder.");
            var reference = ModelReference.Resolve(parse.GetValue(model), parse.GetValue(adapter), parse.GetValue(run));
            var runDefaults = reference.Run;
            // A run folder says how it was trained: its prompt and mask threshold unless flags say otherwise.
            bool promptFromRun = parse.GetValue(prompt) is null && runDefaults?.Prompt is not null;
            bool maskFromRun = !ModelOptions.Given(parse, maskThreshold) && runDefaults?.MaskThreshold is not null;
            bool thresholdFromRun = !ModelOptions.Given(parse, threshold) && runDefaults?.Threshold is not null;
            var options = new EvaluationOptions
            {
                Split = parse.GetValue(split)!,
                Prompt = parse.GetValue(prompt) ?? runDefaults?.Prompt ?? PromptChoice.RandomSpec,
                Threshold = thresholdFromRun ? runDefaults!.Threshold!.Value : parse.GetValue(threshold),
                MaskThreshold = DataOptions.CheckThreshold(maskFromRun ? runDefaults!.MaskThreshold!.Value : parse.GetValue(maskThreshold)),
                NsdTolerance = parse.GetValue(nsdTolerance),
                BatchSize = parse.GetValue(batch),
                MasksDirectory = output is not null && masks ? Path.Combine(output, EvaluationFolder.MasksFolder) : null,
                OverlaysDirectory = output is not null ? Path.Combine(output, EvaluationFolder.OverlaysFolder) : null,
                Overlays = overlayCount,
                OnError = parse.GetValue(onError),
            };
            options.Validate();
            var precisionValue = ModelOptions.Precision(parse.GetValue(precision)!);
            if (output is not null) EvaluationFolder.CheckReplaceable(output);
            using var outLock = output is null ? null : Vlsm.IO.FolderLock.Acquire(output, "eval", "--out");

            var datasets = PooledDataset.Open(parse.GetValue(data)!);
            var familyOptions = ModelOptions.FamilyOptions(parse, familyFlags);
            int? side = parse.GetValue(imageSize);
            using var predictor = reference.Open(precisionValue, familyOptions, parse.GetValue(allowOtherBase), ModelOptions.Note, side);
            var evaluator = Evaluator.Plan(predictor, datasets, options, Path.GetFullPath(reference.ModelDirectory),
                reference.Weights is null ? null : Path.GetFullPath(reference.Weights));
            string used = reference.Describe(
            [
                ("prompt", options.Prompt, promptFromRun),
                ("threshold", options.Threshold.ToString(CultureInfo.InvariantCulture), thresholdFromRun),
                ("mask threshold", options.MaskThreshold.ToString(CultureInfo.InvariantCulture), maskFromRun),
                ("precision", ComputePrecisions.Name(precisionValue), false),
                reference.ImageSizeSetting(predictor, side),
            ], familyOptions);
            (parse.GetValue(json) ? Console.Error : Console.Out).WriteLine(used);
            if (output is not null && EvaluationFolder.ClearPrevious(output) is { Count: > 0 } replaced)
                ModelOptions.Note($"note: replacing an earlier evaluation's {string.Join(", ", replaced)} in {output}");

            bool asJson = parse.GetValue(json);
            var report = RunWithProgress(evaluator, asJson);
            if (output is not null) report.Write(output);
            if (evaluator.Loading.Skipped is { Count: > 0 } skipped)
                Console.Error.WriteLine($"skipped {skipped.Count} unusable record(s) (--on-error skip), e.g. {skipped[0].Reason}");

            if (asJson)
            {
                Console.WriteLine(report.ToJsonText());
            }
            else
            {
                PrintTable(report);
                if (output is not null) Console.WriteLine($"wrote {report.Images.Count} score(s) to {Path.Combine(output, EvaluationReport.PerImageFile)} and the summary to {Path.Combine(output, EvaluationReport.SummaryFile)}");
            }
            return 0;
        }));
        return cmd;
    }

    internal static Option<double> NsdTolerance() => new("--nsd-tolerance")
    {
        Description = "Normalised surface Dice counts an edge pixel as right within this many pixels of the other mask's edge.",
        DefaultValueFactory = _ => EvaluationOptions.DefaultNsdTolerance,
    };

    private static EvaluationReport RunWithProgress(Evaluator evaluator, bool asJson)
    {
        EvaluationReport report = null!;
        string title = evaluator.Info.AllPrompts ? $"evaluating {evaluator.PromptKeys.Count} prompts" : "evaluating";
        if (!asJson)
        {
            ProgressReporter.Run(title, evaluator.Images, advance => report = evaluator.Run(advance));
            return report;
        }
        // stdout carries only the JSON document: progress lines go to stderr meanwhile.
        var stdout = Console.Out;
        Console.SetOut(Console.Error);
        try
        {
            ProgressReporter.Run(title, evaluator.Images, advance => report = evaluator.Run(advance));
        }
        finally
        {
            Console.SetOut(stdout);
        }
        return report;
    }

    /// <summary>Table cells as summary.json's numbers: Dice and IoU to 4 decimals, HD95 to 2, "mean ± std".</summary>
    private static string Cell(MetricStats stats, int decimals)
    {
        string format = "F" + decimals.ToString(CultureInfo.InvariantCulture);
        return $"{stats.Mean.ToString(format, CultureInfo.InvariantCulture)} ± {stats.Std.ToString(format, CultureInfo.InvariantCulture)}";
    }

    private static string Hd95Cell(ScoreSummary s) =>
        (s.Hd95 is { } hd ? Cell(hd, 2) : "-") + $" ({s.Hd95Missing})";

    internal static void PrintTable(EvaluationReport report)
    {
        var info = report.Info;
        // A log or a pipe gets no terminal width; 80 columns would wrap rows of this table.
        if (Console.IsOutputRedirected && AnsiConsole.Profile.Width < 160) AnsiConsole.Profile.Width = 160;
        var table = new Table();
        if (info.AllPrompts) table.AddColumn("prompt");
        if (info.Pooled) table.AddColumn("dataset");
        table.AddColumn(new TableColumn("n").RightAligned())
            .AddColumn(new TableColumn("Dice").RightAligned())
            .AddColumn(new TableColumn("IoU").RightAligned())
            .AddColumn(new TableColumn("HD95 (missing)").RightAligned())
            .AddColumn(new TableColumn("NSD").RightAligned());

        void Row(string promptKey, string? dataset, ScoreSummary s, bool emphasise)
        {
            var cells = new List<string>();
            if (info.AllPrompts) cells.Add(Markup.Escape(promptKey));
            if (info.Pooled) cells.Add(emphasise ? $"[bold]{Markup.Escape(dataset!)}[/]" : Markup.Escape(dataset!));
            cells.Add(s.N.ToString(CultureInfo.InvariantCulture));
            cells.Add(Cell(s.Dice, 4));
            cells.Add(Cell(s.IoU, 4));
            cells.Add(Hd95Cell(s));
            cells.Add(s.Nsd?.Stats is { } nsd ? Cell(nsd, 4) : "-");
            table.AddRow(cells.ToArray());
        }

        foreach (var p in report.Prompts)
        {
            foreach (var d in p.Datasets) Row(p.Prompt, d.Dataset, d.Summary, emphasise: false);
            if (p.Mean is not null) Row(p.Prompt, "mean", p.Mean, emphasise: true);
        }
        string what = info.Pooled ? "datasets " + string.Join(", ", info.Datasets) : "dataset " + info.Datasets[0];
        string source = info.Predictions is { } files
            ? $"mask files in {files} (above {info.PredictionThreshold} is foreground)"
            : (info.AllPrompts ? "every prompt key" : $"prompt {PromptChoice.Parse(info.Prompt)}") + $", threshold {info.Threshold.ToString(CultureInfo.InvariantCulture)}";
        AnsiConsole.MarkupLineInterpolated($"[bold]{what}[/], split {info.Split}, {source}");
        TableOutput.Write(table);
        Console.WriteLine("Dice, IoU: mean ± std (population) at the original mask resolution; HD95 in pixels, (images where it is undefined); NSD at "
            + $"{info.NsdTolerance.ToString(CultureInfo.InvariantCulture)} px."
            + (info.Pooled ? " mean: mean of the dataset means ± their std." : ""));
    }
}
