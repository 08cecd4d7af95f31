using System.CommandLine;
using System.Text.Json;
using Vlsm.IO;
using Spectre.Console;
using Vlsm.Data;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm data check</c>: find what would break or skew training before it starts.</summary>
internal static class DataCheckCommand
{
    /// <summary>Errors listed one by one on the console before the rest are summarised (all are in --json).</summary>
    private const int ErrorsShownPerKind = 20;

    public static Command Build()
    {
        var data = new Option<string>("--data") { Description = "Dataset folder (images/, masks/, anns/, optional dataset.yaml).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the full report as JSON." };
        var prompt = DataOptions.Prompt("Prompt key the records must have (p0…pN, or random for any of p1…pN).");
        var threshold = DataOptions.MaskThreshold();
        var workers = new Option<int>("--workers") { Description = "Files decoded in parallel.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var follow = DataOptions.FollowSymlinks();
        var cmd = new Command("check", "Check a dataset: counts per split; missing, unreadable or empty files; image/mask size mismatches; "
            + "empty or non-binary masks; duplicate records; images shared between splits; records without the prompt key. "
            + "Exit code 1 when any record is unusable, 0 when there are only warnings.")
        {
            data, json, prompt, threshold, workers, follow,
        };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var options = new DatasetCheckOptions
            {
                Prompt = DataOptions.ParsePrompt(parse.GetValue(prompt)),
                MaskThreshold = DataOptions.CheckThreshold(parse.GetValue(threshold)),
                Workers = parse.GetValue(workers) is int w and >= 1 ? w : throw new VlsmException($"--workers must be at least 1, got {parse.GetValue(workers)}."),
                FollowSymlinks = parse.GetValue(follow),
            };
            if (options.Prompt is { Kind: PromptChoice.Mode.Literal } literal)
                throw new VlsmException($"--prompt {literal} is neither a key (p0, p1, …) nor random; the checker checks keys records must have.");
            var checker = DatasetChecker.Plan(parse.GetValue(data)!, options);
            DatasetCheckReport report = null!;
            if (parse.GetValue(json))
            {
                // No progress lines: stdout is the JSON document.
                report = checker.Run();
                Console.WriteLine(report.ToJson().ToJsonString(JsonText.Indented));
            }
            else
            {
                ProgressReporter.Run("decoding images and masks", checker.FilesToDecode, advance => report = checker.Run(advance));
                Print(report);
            }
            return report.Ok ? 0 : 1;
        }));
        return cmd;
    }

    private static void Print(DatasetCheckReport report)
    {
        var table = new Table().AddColumn("split").AddColumn(new TableColumn("records").RightAligned())
            .AddColumn(new TableColumn("unusable").RightAligned()).AddColumn("annotation file");
        foreach (var s in report.Splits)
        {
            table.AddRow(Markup.Escape(s.Split), s.HasFile ? $"{s.Records:N0}" : "-",
                s.UnusableRecords > 0 ? $"[red]{s.UnusableRecords:N0}[/]" : "0",
                s.HasFile ? Markup.Escape(Path.GetRelativePath(report.Root, s.File!)) : "[grey](none)[/]");
        }
        AnsiConsole.MarkupLineInterpolated($"[bold]{report.Name}[/] ({report.Root})");
        TableOutput.Write(table);

        // Plain lines, not table cells: a file path must stay on one line to be found and copied.
        foreach (var kind in report.Errors.GroupBy(i => i.Kind))
        {
            foreach (var issue in kind.Take(ErrorsShownPerKind)) Console.WriteLine($"error: {issue.Message}");
            int more = kind.Count() - ErrorsShownPerKind;
            if (more > 0) Console.WriteLine($"error: … and {more} more {kind.Key} error(s); --json lists them all.");
        }
        foreach (var kind in report.Warnings.GroupBy(i => i.Kind))
        {
            int count = kind.Count();
            Console.WriteLine($"warning: {kind.Key}: {count} record(s), e.g. {kind.First().Message}");
        }
        if (report.Ok)
            AnsiConsole.MarkupLineInterpolated($"[green]ok[/]: {report.Records:N0} records, {report.Warnings.Count()} warning(s).");
        else if (report.Records == 0)
            AnsiConsole.MarkupLineInterpolated($"[red]FAILED[/]: no records could be read, {report.Errors.Count()} error(s).");
        else
            AnsiConsole.MarkupLineInterpolated($"[red]FAILED[/]: {report.UnusableRecords:N0} of {report.Records:N0} records unusable, {report.Errors.Count()} error(s), {report.Warnings.Count()} warning(s).");
    }
}
