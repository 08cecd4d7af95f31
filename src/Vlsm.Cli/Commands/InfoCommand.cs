using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using Vlsm.Models;
using Vlsm.Models.Registry;

namespace Vlsm.Cli.Commands;

internal static class InfoCommand
{
    public static Command Build()
    {
        var model = new Option<string?>("--model") { Description = "Model folder, of any family vlsm knows (reads its config.json)." };
        var arch = new Option<string?>("--arch") { Description = $"A built-in architecture with random weights: {string.Join(", ", ModelFamilies.ArchitectureNames)}." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var mode = new Option<string?>("--mode") { Description = "Fine-tuning mode to count trainable parameters for: shallow, dense, decoder, full (those the family trains)." };
        var parts = new Option<string?>("--parts") { Description = "Adapter placements for shallow/dense: any of v, l, c (default vlc)." };
        var adapterDim = new Option<int?>("--adapter-dim") { Description = "Adapter bottleneck width (default 512 shallow, 64 dense)." };
        var condDim = new Option<int?>("--cond-adapter-dim") { Description = "Conditional-embedding adapter width (default 256)." };
        var cmd = new Command("info", "Architecture summary and parameter counts.") { model, arch, json, mode, parts, adapterDim, condDim };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string? dir = parse.GetValue(model), name = parse.GetValue(arch);
            if ((dir is null) == (name is null))
                throw new VlsmException("give exactly one of --model DIR or --arch NAME.");
            var family = dir is not null ? ModelFamilies.ForFolder(dir) : ModelFamilies.ForArchitecture(name!);
            var source = dir is not null ? ModelSource.Folder(dir) : ModelSource.BuiltIn(name!);
            bool adapterSettings = parse.GetValue(parts) is not null || parse.GetValue(adapterDim) is not null || parse.GetValue(condDim) is not null;
            FineTuneSpec? spec = null;
            if (parse.GetValue(mode) is { } modeName)
            {
                var m = FamilyChecks.Mode(family, FineTuneSpec.ParseMode(modeName));
                spec = family.CheckSpec(FineTuneSpec.Create(m, parse.GetValue(parts), parse.GetValue(adapterDim), parse.GetValue(condDim)));
            }
            else if (adapterSettings)
            {
                throw new VlsmException("--parts, --adapter-dim and --cond-adapter-dim need --mode shallow or --mode dense.");
            }
            var summary = family.Describe(source, spec);
            if (parse.GetValue(json))
            {
                var o = new JsonObject
                {
                    ["source"] = summary.Source,
                    ["model_type"] = family.ModelType,
                    ["total_parameters"] = summary.TotalParameters,
                };
                foreach (var c in summary.Components) o[$"{c.Key}_parameters"] = c.Parameters;
                o["config"] = summary.Config.DeepClone();
                if (summary.Spec is not null)
                {
                    o["mode"] = summary.Spec.ToString();
                    o["trainable_parameters"] = summary.TrainableParameters;
                }
                foreach (var c in summary.Counts) o[$"{c.Key}_parameters"] = c.Parameters;
                Console.WriteLine(o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            var t = new Table().AddColumn("component").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn("shape");
            void Row(string a, string b, string c) => t.AddRow(Markup.Escape(a), Markup.Escape(b), Markup.Escape(c));
            foreach (var c in summary.Components) Row(c.Name, $"{c.Parameters:N0}", c.Shape);
            t.AddRow("[bold]total[/]", $"[bold]{summary.TotalParameters:N0}[/]", "");
            if (summary.Spec is not null)
                Row($"trainable ({summary.Spec})", $"{summary.TrainableParameters:N0}", $"{100.0 * summary.TrainableParameters!.Value / summary.TotalParameters:0.00} % of the model");
            foreach (var c in summary.Counts) Row(c.Name, $"{c.Parameters:N0}", c.Shape);
            AnsiConsole.MarkupLineInterpolated($"[bold]{summary.Source}[/] ({family.Name})"); // interpolated values are escaped
            AnsiConsole.Write(t);
            return 0;
        }));
        return cmd;
    }
}
