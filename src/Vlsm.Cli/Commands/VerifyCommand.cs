using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Vlsm.Inference;

namespace Vlsm.Cli.Commands;

internal static class VerifyCommand
{
    public static Command Build()
    {
        var model = new Option<string>("--model") { Description = "Model folder, of any family vlsm knows (config.json's model_type).", Required = true };
        var reference = new Option<string>("--reference") { Description = "A safetensors file written by the Python model: its inputs (pixel_values, input_ids, attention_mask) and the outputs to compare, under the model's output names (logits, ...).", Required = true };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest allowed absolute difference.", DefaultValueFactory = _ => 1e-4 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var adapter = new Option<string?>("--adapter") { Description = "Adapter or checkpoint file (safetensors, e.g. a run's best.safetensors) to apply to the model." };
        var allowOtherBase = ModelOptions.AllowOtherBase();
        var cmd = new Command("verify", "Check a model against reference outputs (e.g. from the Python implementation).") { model, reference, tolerance, json, adapter, allowOtherBase };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var report = Verification.Run(parse.GetValue(model)!, parse.GetValue(reference)!, parse.GetValue(adapter), parse.GetValue(tolerance),
                parse.GetValue(allowOtherBase), ModelOptions.Note);
            double tol = report.Tolerance;
            if (parse.GetValue(json))
            {
                var tensors = new JsonObject();
                foreach (var r in report.Tensors)
                {
                    var o = new JsonObject { ["max_abs_diff"] = double.IsNaN(r.MaxAbsDiff) ? null : r.MaxAbsDiff };
                    if (r.Problem is not null) o["problem"] = r.Problem;
                    tensors[r.Name] = o;
                }
                var root = new JsonObject { ["model_type"] = report.Family.ModelType, ["tensors"] = tensors, ["tolerance"] = tol, ["passed"] = report.Passed };
                Console.WriteLine(root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                var t = new Table().AddColumn("tensor").AddColumn(new TableColumn("max |diff|").RightAligned()).AddColumn("");
                foreach (var r in report.Tensors)
                    t.AddRow(Markup.Escape(r.Name), double.IsNaN(r.MaxAbsDiff) ? "-" : r.MaxAbsDiff.ToString("0.###e+0"),
                        r.Within(tol) ? "[green]ok[/]" : $"[red]{Markup.Escape(r.Problem ?? "over tolerance")}[/]");
                TableOutput.Write(t);
                AnsiConsole.MarkupLine(report.Passed ? $"[green]passed[/] (tolerance {tol:g})" : $"[red]FAILED[/] (tolerance {tol:g})");
            }
            return report.Passed ? 0 : 1;
        }));
        return cmd;
    }
}
