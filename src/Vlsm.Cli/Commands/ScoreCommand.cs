using System.CommandLine;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.IO;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm score</c>: eval's metrics and report for mask files any tool wrote.</summary>
internal static class ScoreCommand
{
    public static Command Build()
    {
        var pred = new Option<string>("--pred") { Description = "Folder of predicted masks (PNG; eval --save-masks's masks/, vlsm predict's output, or any tool's, named after mask_name).", Required = true };
        var data = new Option<string[]>("--data") { Description = "Dataset folder (images/, masks/, anns/); repeat for several datasets.", Required = true };
        var split = new Option<string>("--split") { Description = "Split whose records are scored.", DefaultValueFactory = _ => "test" };
        var maskThreshold = DataOptions.MaskThreshold();
        var predThreshold = new Option<int>("--pred-threshold") { Description = "Prediction pixels above this value are foreground (0: anything not black).", DefaultValueFactory = _ => 0 };
        var nsdTolerance = EvalCommand.NsdTolerance();
        var outDir = new Option<string?>("--out") { Description = $"Write {EvaluationReport.PerImageFile} and {EvaluationReport.SummaryFile} here." };
        var json = new Option<bool>("--json") { Description = "Print summary.json to stdout instead of the table." };
        var cmd = new Command("score", "Score mask files from any tool against a dataset split: eval's Dice, IoU, HD95, NSD and Dice over trivial predictions, and its report.")
        {
            pred, data, split, maskThreshold, predThreshold, nsdTolerance, outDir, json,
        };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string? output = parse.GetValue(outDir);
            if (output is not null) OutputFolder.CheckWritable(output, "--out");
            var options = new ScoringOptions
            {
                Split = parse.GetValue(split)!,
                MaskThreshold = DataOptions.CheckThreshold(parse.GetValue(maskThreshold)),
                PredictionThreshold = parse.GetValue(predThreshold),
                NsdTolerance = parse.GetValue(nsdTolerance),
            };
            var scoring = MaskFileScoring.Plan(parse.GetValue(pred)!, PooledDataset.Open(parse.GetValue(data)!), options);
            EvaluationReport report = null!;
            bool asJson = parse.GetValue(json);
            var stdout = Console.Out;
            if (asJson) Console.SetOut(Console.Error); // stdout carries only the JSON document
            try
            {
                ProgressReporter.Run("scoring", scoring.Images, advance => report = scoring.Run(advance));
            }
            finally
            {
                Console.SetOut(stdout);
            }
            if (output is not null)
            {
                Directory.CreateDirectory(output);
                report.Write(output);
            }
            if (asJson) Console.WriteLine(report.ToJsonText());
            else EvalCommand.PrintTable(report);
            return 0;
        }));
        return cmd;
    }
}
