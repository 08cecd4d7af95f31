using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Vlsm.IO;
using Vlsm.Models.ClipSeg;
using Vlsm.Models.Cris;

namespace Vlsm.Cli.Commands;

internal static class VerifyCommand
{
    public static Command Build()
    {
        var model = new Option<string>("--model") { Description = "Model folder: HF CLIPSeg, or CRIS (config.json with a \"cris\" object).", Required = true };
        var reference = new Option<string>("--reference") { Description = "Safetensors file with inputs and expected outputs (shared/parity/README.md format).", Required = true };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest allowed absolute difference.", DefaultValueFactory = _ => 1e-4 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var adapter = new Option<string?>("--adapter") { Description = "Adapter or checkpoint file (safetensors, e.g. a run's best.safetensors) to apply to the model." };
        var cmd = new Command("verify", "Check a model against reference outputs (e.g. from the Python implementation).") { model, reference, tolerance, json, adapter };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            double tol = parse.GetValue(tolerance);
            IReadOnlyList<TensorComparison> results;
            if (CrisLoader.IsCrisFolder(parse.GetValue(model)!))
            {
                using var cris = CrisLoader.Load(parse.GetValue(model)!);
                if (parse.GetValue(adapter) is { } checkpoint) CrisCheckpointFile.Apply(cris, checkpoint);
                using var crisReference = SafetensorsFile.Open(parse.GetValue(reference)!);
                results = CrisReferenceVerifier.Verify(cris, crisReference);
            }
            else
            {
                var m = ClipSegLoader.Load(parse.GetValue(model)!);
                using var file = SafetensorsFile.Open(parse.GetValue(reference)!);
                var adapted = parse.GetValue(adapter) is { } a ? Vlsm.Adapters.AdapterFile.Load(m, a) : null;
                results = ReferenceVerifier.Verify(m, file, adapted);
            }
            bool passed = results.Count > 0 && results.All(r => r.Within(tol));
            if (parse.GetValue(json))
            {
                var tensors = new JsonObject();
                foreach (var r in results)
                {
                    var o = new JsonObject { ["max_abs_diff"] = double.IsNaN(r.MaxAbsDiff) ? null : r.MaxAbsDiff };
                    if (r.Problem is not null) o["problem"] = r.Problem;
                    tensors[r.Name] = o;
                }
                var root = new JsonObject { ["tensors"] = tensors, ["tolerance"] = tol, ["passed"] = passed };
                Console.WriteLine(root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                var t = new Table().AddColumn("tensor").AddColumn(new TableColumn("max |diff|").RightAligned()).AddColumn("");
                foreach (var r in results)
                    t.AddRow(Markup.Escape(r.Name), double.IsNaN(r.MaxAbsDiff) ? "-" : r.MaxAbsDiff.ToString("0.###e+0"),
                        r.Within(tol) ? "[green]ok[/]" : $"[red]{Markup.Escape(r.Problem ?? "over tolerance")}[/]");
                AnsiConsole.Write(t);
                AnsiConsole.MarkupLine(passed ? $"[green]passed[/] (tolerance {tol:g})" : $"[red]FAILED[/] (tolerance {tol:g})");
            }
            return passed ? 0 : 1;
        }));
        return cmd;
    }
}
