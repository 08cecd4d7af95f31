using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using Vlsm.Adapters;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Cli.Commands;

internal static class InfoCommand
{
    private static readonly Dictionary<string, Func<ClipSegConfig>> Architectures = new()
    {
        ["clipseg-rd64-refined"] = () => ClipSegConfig.Rd64Refined,
    };

    public static Command Build()
    {
        var model = new Option<string?>("--model") { Description = "Model folder, HF CLIPSeg or CRIS (reads its config.json)." };
        var arch = new Option<string?>("--arch") { Description = $"A built-in architecture with random weights: {string.Join(", ", Architectures.Keys)}, {CrisInfo.Rn50}." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var mode = new Option<string?>("--mode") { Description = "Fine-tuning mode to count trainable parameters for: shallow, dense, decoder, full." };
        var parts = new Option<string?>("--parts") { Description = "Adapter placements for shallow/dense: any of v, l, c (default vlc)." };
        var adapterDim = new Option<int?>("--adapter-dim") { Description = "Adapter bottleneck width (default 512 shallow, 64 dense)." };
        var condDim = new Option<int?>("--cond-adapter-dim") { Description = "Conditional-embedding adapter width (default 256)." };
        var cmd = new Command("info", "Architecture summary and parameter counts.") { model, arch, json, mode, parts, adapterDim, condDim };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string? dir = parse.GetValue(model), name = parse.GetValue(arch);
            if ((dir is null) == (name is null))
                throw new VlsmException("give exactly one of --model DIR or --arch NAME.");
            if (name == CrisInfo.Rn50 || (dir is not null && Vlsm.Models.Cris.CrisLoader.IsCrisFolder(dir)))
            {
                if (parse.GetValue(parts) is not null || parse.GetValue(adapterDim) is not null || parse.GetValue(condDim) is not null)
                    throw new VlsmException("--parts, --adapter-dim and --cond-adapter-dim are CLIPSeg adapter settings; CRIS trains in full or decoder mode.");
                return dir is null
                    ? CrisInfo.Print(Vlsm.Models.Cris.CrisConfig.Rn50, $"{name} (random weights)", parse.GetValue(json), parse.GetValue(mode))
                    : CrisInfo.Print(Vlsm.Models.Cris.CrisLoader.ReadConfig(dir), dir, parse.GetValue(json), parse.GetValue(mode));
            }
            ClipSegConfig config;
            string source;
            if (dir is not null)
            {
                config = ClipSegLoader.ReadConfig(dir);
                source = dir;
            }
            else if (Architectures.TryGetValue(name!, out var make))
            {
                config = make();
                source = $"{name} (random weights)";
            }
            else
            {
                throw new VlsmException($"unknown --arch \"{name}\"; known: {string.Join(", ", Architectures.Keys)}, {CrisInfo.Rn50}.");
            }
            using var built = new ClipSegModel(config);
            var s = ClipSegSummary.Of(built);
            FineTuneSpec? spec = null;
            long? trainable = null;
            if (parse.GetValue(mode) is { } modeName)
            {
                spec = FineTuneSpec.Create(FineTuneSpec.ParseMode(modeName), parse.GetValue(parts), parse.GetValue(adapterDim), parse.GetValue(condDim));
                using var adapted = new AdaptedClipSeg(built, spec);
                trainable = adapted.TrainableParameterCount;
            }
            else if (parse.GetValue(parts) is not null || parse.GetValue(adapterDim) is not null || parse.GetValue(condDim) is not null)
            {
                throw new VlsmException("--parts, --adapter-dim and --cond-adapter-dim need --mode shallow or --mode dense.");
            }
            if (parse.GetValue(json))
            {
                var o = new JsonObject
                {
                    ["source"] = source,
                    ["total_parameters"] = s.TotalParameters,
                    ["text_parameters"] = s.TextParameters,
                    ["vision_parameters"] = s.VisionParameters,
                    ["projection_parameters"] = s.ProjectionParameters,
                    ["decoder_parameters"] = s.DecoderParameters,
                    ["config"] = JsonNode.Parse(config.ToJson()),
                };
                if (spec is not null)
                {
                    o["mode"] = spec.ToString();
                    o["trainable_parameters"] = trainable;
                }
                Console.WriteLine(o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            var t = new Table().AddColumn("component").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn("shape");
            var c = config;
            void Row(string a, string b, string c2) => t.AddRow(Markup.Escape(a), Markup.Escape(b), Markup.Escape(c2));
            Row("text tower", $"{s.TextParameters:N0}", $"{c.Text.NumHiddenLayers} layers, width {c.Text.HiddenSize}, {c.Text.NumAttentionHeads} heads, MLP {c.Text.IntermediateSize}");
            Row("vision tower", $"{s.VisionParameters:N0}", $"{c.Vision.NumHiddenLayers} layers, width {c.Vision.HiddenSize}, {c.Vision.NumAttentionHeads} heads, patch {c.Vision.PatchSize}, {c.Vision.ImageSize} px grid");
            Row("projections", $"{s.ProjectionParameters:N0}", $"to {c.ProjectionDim}");
            Row("decoder", $"{s.DecoderParameters:N0}", $"reduce {c.ReduceDim}, extract layers [{string.Join(", ", c.ExtractLayers)}], {(c.UseComplexTransposedConvolution ? "complex" : "simple")} transposed convolution");
            t.AddRow("[bold]total[/]", $"[bold]{s.TotalParameters:N0}[/]", "");
            if (spec is not null)
                Row($"trainable ({spec})", $"{trainable:N0}", $"{100.0 * trainable!.Value / s.TotalParameters:0.00} % of the base model");
            AnsiConsole.MarkupLineInterpolated($"[bold]{source}[/]"); // interpolated values are escaped
            AnsiConsole.Write(t);
            return 0;
        }));
        return cmd;
    }
}
