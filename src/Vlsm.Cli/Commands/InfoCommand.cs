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
        var run = new Option<string?>("--run") { Description = "A training run folder: family, mode, base model and its fingerprint, prompt, epochs and best validation Dice." };
        var adapter = new Option<string?>("--adapter") { Description = "A trained-weights file (adapters or a checkpoint, e.g. best.safetensors): family, mode, base fingerprint, tensors." };
        var cmd = new Command("info", "Architecture summary and parameter counts; or what a training run folder or a trained-weights file holds.")
            { model, arch, json, mode, parts, adapterDim, condDim, run, adapter };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string? dir = parse.GetValue(model), name = parse.GetValue(arch);
            string? runDir = parse.GetValue(run), weightsFile = parse.GetValue(adapter);
            // A run folder or a weights file given as --model is taken for what it is.
            if (dir is not null && File.Exists(dir) && dir.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) && weightsFile is null) (weightsFile, dir) = (dir, null);
            else if (dir is not null && Directory.Exists(dir) && !File.Exists(Path.Combine(dir, "config.json")) && File.Exists(Path.Combine(dir, "config.yaml")) && runDir is null) (runDir, dir) = (dir, null);
            if (new[] { dir, name, runDir, weightsFile }.Count(v => v is not null) != 1)
                throw new VlsmException("give exactly one of --model DIR, --arch NAME, --run RUN or --adapter FILE.");
            if (runDir is not null || weightsFile is not null)
                return TrainedInfo.Print(runDir, weightsFile, parse.GetValue(json));
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
