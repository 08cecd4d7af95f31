using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Vlsm.Adapters;
using Vlsm.Models.Cris;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm info</c> for CRIS: parameters of backbone, neck, decoder and projector.</summary>
internal static class CrisInfo
{
    public const string Rn50 = "cris-rn50";

    public static int Print(CrisConfig config, string source, bool json, string? modeName)
    {
        using var model = new CrisModel(config);
        var s = CrisSummary.Of(model);
        FineTuneMode? mode = modeName is null ? null : CrisCheckpointFile.CheckMode(FineTuneSpec.ParseMode(modeName));
        long? trainable = mode is { } m ? CrisCheckpointFile.TrainableParameterCount(model, m) : null;
        if (json)
        {
            var o = new JsonObject
            {
                ["source"] = source,
                ["model_type"] = "cris",
                ["total_parameters"] = s.TotalParameters,
                ["backbone_parameters"] = s.BackboneParameters,
                ["neck_parameters"] = s.NeckParameters,
                ["decoder_parameters"] = s.DecoderParameters,
                ["projector_parameters"] = s.ProjectorParameters,
                ["config"] = JsonNode.Parse(config.ToJson()),
            };
            if (mode is { } md)
            {
                o["mode"] = FineTuneSpec.ModeName(md);
                o["trainable_parameters"] = trainable;
            }
            Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        var c = config;
        var t = new Table().AddColumn("component").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn("shape");
        void Row(string a, string b, string d) => t.AddRow(Markup.Escape(a), Markup.Escape(b), Markup.Escape(d));
        Row("backbone", $"{s.BackboneParameters:N0}", $"CLIP ResNet [{string.Join(", ", c.Clip.VisionLayers)}] width {c.Clip.VisionWidth}, text {c.Clip.TransformerLayers} layers x {c.Clip.TransformerWidth}, embed {c.Clip.EmbedDim}");
        Row("neck", $"{s.NeckParameters:N0}", $"FPN in [{string.Join(", ", c.FpnIn)}], out [{string.Join(", ", c.FpnOut)}]");
        Row("decoder", $"{s.DecoderParameters:N0}", $"{c.NumLayers} layers, width {c.VisDim}, {c.NumHead} heads, FFN {c.DimFfn}");
        Row("projector", $"{s.ProjectorParameters:N0}", $"word {c.WordDim} -> {CrisConfig.KernelSize}x{CrisConfig.KernelSize} kernel over {c.VisDim / 2} channels; output {c.ImgSize} px");
        t.AddRow("[bold]total[/]", $"[bold]{s.TotalParameters:N0}[/]", "");
        if (mode is { } mm)
            Row($"trainable ({FineTuneSpec.ModeName(mm)})", $"{trainable:N0}", $"{100.0 * trainable!.Value / s.TotalParameters:0.00} % of the model");
        AnsiConsole.MarkupLineInterpolated($"[bold]{source}[/]");
        AnsiConsole.Write(t);
        return 0;
    }
}
