using System.CommandLine;
using Vlsm.Data.Prompts;

namespace Vlsm.Cli.Commands;

internal static class PromptsCommand
{
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
        var split = new Option<string?>("--split") { HelpName = "TRAIN,VAL,TEST", Description = "Fractions of images for train,val,test, e.g. 0.8,0.1,0.1. Without it every record goes to anns/test.json." };
        var seed = new Option<ulong?>("--seed") { HelpName = "N", Description = $"Seed of the --split shuffle (default {Defaults.Seed}, as every vlsm command); the same seed gives the same split." };
        var cmd = new Command("prompts",
            "Write medvlsm annotation files (anns/*.json, prompts p0–p9) for a folder of images and masks, computing number, size and "
            + "location as medvlsm did and colour and shape from the image and mask. Without --split, everything goes to anns/test.json.")
            { data, className, descriptions, split, seed };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string root = parse.GetValue(data)!;
            string name = parse.GetValue(className)!.Trim();
            if (name.Length == 0) throw new VlsmException("--class is empty; give the class word of the prompts, e.g. --class polyp.");
            string? splitText = parse.GetValue(split);
            ulong? seedValue = parse.GetValue(seed);
            if (splitText is null && seedValue is not null)
                throw new VlsmException($"--seed {seedValue} only chooses the --split shuffle; add --split a,b,c or drop --seed.");
            SplitRatios? ratios = splitText is null ? null : SplitRatios.Parse(splitText);
            var phrases = parse.GetValue(descriptions) is { } file ? ClassDescriptions.Load(file, name) : null;
            // Pair first so bad folders fail before any progress output.
            int total = PromptFolder.Pair(root).Count;
            PromptFolderResult result = null!;
            ProgressReporter.Run("prompts", total, advance =>
                result = PromptFolder.Generate(new PromptFolderOptions(root, name, phrases, ratios, seedValue ?? (ulong)Defaults.Seed), advance));
            var parts = result.RecordsPerSplit.Select(kv => $"{kv.Key} {kv.Value}");
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
