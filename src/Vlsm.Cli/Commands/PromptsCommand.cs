using System.CommandLine;
using Vlsm.Data.Prompts;

namespace Vlsm.Cli.Commands;

internal static class PromptsCommand
{
    private static readonly SplitRatios DefaultSplit = SplitRatios.TrainValTest70_15_15;
    private const ulong DefaultSeed = Defaults.Seed;

    public static Command Build()
    {
        var data = new Option<string>("--data") { HelpName = "ROOT", Description = "Dataset folder with images/ and masks/ (paired by file stem); anns/ is written there.", Required = true };
        var className = new Option<string>("--class") { HelpName = "NAME", Description = "Class word of the prompts, e.g. polyp, \"skin melanoma\", \"foot ulcer\".", Required = true };
        var descriptions = new Option<string?>("--descriptions")
        {
            HelpName = "FILE",
            Description = "File of class descriptions for p7–p9 (one per line or a JSON list). Default: medvlsm's for polyp, skin melanoma "
                + "and foot ulcer; other classes get no p7–p9.",
        };
        var split = new Option<string?>("--split")
        {
            HelpName = "TRAIN,VAL,TEST",
            Description = $"Fractions of images for train,val,test (default {DefaultSplit}); 0,0,1 puts every record in anns/test.json.",
        };
        var seed = new Option<ulong?>("--seed") { HelpName = "N", Description = $"Seed of the split's shuffle (default {DefaultSeed}, as every vlsm command); the same seed gives the same split." };
        var force = new Option<bool>("--force") { Description = "Replace the split files when anns/ already holds annotation files (other files there are kept)." };
        var cmd = new Command("prompts",
            "Write medvlsm annotation files (anns/*.json, prompts p0–p9) for a folder of images and masks, computing number, size and "
            + $"location as medvlsm did and colour and shape from the image and mask, split by image into train, val and test ({DefaultSplit} unless --split).")
            { data, className, descriptions, split, seed, force };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string root = parse.GetValue(data)!;
            string name = parse.GetValue(className)!.Trim();
            if (name.Length == 0) throw new VlsmException("--class is empty; give the class word of the prompts, e.g. --class polyp.");
            var ratios = parse.GetValue(split) is { } splitText ? SplitRatios.Parse(splitText) : DefaultSplit;
            ulong seedValue = parse.GetValue(seed) ?? DefaultSeed;
            var phrases = parse.GetValue(descriptions) is { } file ? ClassDescriptions.Load(file, name) : null;
            // Pair first so bad folders fail before any progress output.
            int total = PromptFolder.Pair(root).Count;
            PromptFolderResult result = null!;
            ProgressReporter.Run("prompts", total, advance =>
                result = PromptFolder.Generate(new PromptFolderOptions(root, name, phrases, ratios, seedValue, parse.GetValue(force)), advance));
            var parts = result.RecordsPerSplit.Select(kv => $"{kv.Key} {kv.Value}");
            Console.WriteLine($"split {total} images into train,val,test {ratios} with seed {seedValue} (--split, --seed)");
            Console.WriteLine($"wrote {result.RecordsPerSplit.Values.Sum()} records ({string.Join(", ", parts)}) to {Path.Combine(root, "anns")}"
                + (result.EmptyMasks > 0 ? $"; {result.EmptyMasks} empty mask(s) got \"no {name}\" prompts" : "")
                + (result.HasDescriptions ? "" : $"; no descriptions for \"{name}\", so no p7–p9 (give --descriptions FILE)"));
            foreach (var old in result.Untouched)
                Console.WriteLine($"note: {old} is from an earlier run and was left as it was.");
            return 0;
        }));
        return cmd;
    }
}
