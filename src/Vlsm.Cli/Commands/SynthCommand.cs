using System.CommandLine;
using System.Diagnostics;
using Vlsm.Data.Prompts;
using Vlsm.Data.Synthetic;
using Vlsm.IO;

namespace Vlsm.Cli.Commands;

internal static class SynthCommand
{
    public static Command Build()
    {
        var outDir = new Option<string>("--out") { HelpName = "DIR", Description = "Folder to write images/, masks/ and anns/ to (created if missing; must not hold a dataset).", Required = true };
        var count = new Option<int>("--n") { HelpName = "N", Description = "Number of scenes (images); each has 1–3 objects and one record per object.", Required = true };
        var seed = new Option<ulong>("--seed") { HelpName = "N", Description = "Random seed; the same seed and options give byte-identical files.", Required = true };
        var size = new Option<int>("--size") { HelpName = "PIXELS", Description = "Image width and height in pixels.", DefaultValueFactory = _ => 96 };
        var style = new Option<string>("--style")
        {
            HelpName = "natural|medical",
            Description = "natural: flat bright circles, squares, triangles, ellipses; medical: low-contrast blurred blobs (round, oval, elongated, irregular).",
            DefaultValueFactory = _ => "natural",
        };
        var maxObjects = new Option<int>("--max-objects") { HelpName = "K", Description = "Most objects per scene (1–3); with 1 every mask is named like its image.", DefaultValueFactory = _ => 3 };
        var minObjects = new Option<int>("--min-objects") { HelpName = "K", Description = "Fewest objects per scene (1 to --max-objects).", DefaultValueFactory = _ => 1 };
        var className = new Option<string?>("--class") { HelpName = "WORD", Description = "Class word of the prompts (default: shape for natural, polyp for medical)." };
        var split = new Option<string>("--split") { HelpName = "TRAIN,VAL,TEST", Description = "Fractions of images for train,val,test.", DefaultValueFactory = _ => "0.7,0.15,0.15" };
        var cmd = new Command("synth",
            "Generate a synthetic segmentation dataset in the medvlsm layout: images/, masks/ (one per object) and anns/{train,val,test}.json "
            + "split by image, with prompts p0–p9 that single out each object by colour, shape, size and location.")
            { outDir, count, seed, size, style, maxObjects, minObjects, className, split };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string styleName = parse.GetValue(style)!.Trim().ToLowerInvariant();
            var synthStyle = styleName switch
            {
                "natural" => SynthStyle.Natural,
                "medical" => SynthStyle.Medical,
                _ => throw new VlsmException($"--style '{parse.GetValue(style)}' is not known; use natural or medical."),
            };
            var options = new SynthOptions(parse.GetValue(count), parse.GetValue(seed), parse.GetValue(size), synthStyle,
                parse.GetValue(maxObjects), parse.GetValue(className), SplitRatios.Parse(parse.GetValue(split)!), parse.GetValue(minObjects));
            options.Validate();
            string dir = parse.GetValue(outDir)!;
            OutputFolder.CheckWritable(dir, "--out");
            var clock = Stopwatch.StartNew();
            SynthSummary summary = null!;
            ProgressReporter.Run("synth", options.Scenes, advance => summary = SyntheticDataset.Generate(dir, options, advance));
            var parts = DatasetSplit.Names.Select(n => $"{n} {summary.PerSplit[n].Images} images / {summary.PerSplit[n].Records} records");
            Console.WriteLine($"wrote {summary.Images} images and {summary.Records} records (one per object) to {dir} in {clock.Elapsed.TotalSeconds:0.0} s: {string.Join(", ", parts)}");
            return 0;
        }));
        return cmd;
    }
}
