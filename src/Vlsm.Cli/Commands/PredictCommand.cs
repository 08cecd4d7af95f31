using System.CommandLine;
using System.Globalization;
using Vlsm.Data;
using Vlsm.Inference;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Cli.Commands;

internal static class PredictCommand
{
    public static Command Build()
    {
        var model = ModelOptions.Model("Model folder, of any family vlsm knows (config.json's model_type); not needed with --run.");
        var run = ModelOptions.Run();
        var prompt = new Option<string[]>("--prompt")
        {
            Description = "What to segment, e.g. \"small pink polyp at the top left\" (models that read text). Repeat for several prompts: "
                + "each writes its own outputs, <name>.p1.mask.png, <name>.p2.mask.png, … in the order given. "
                + "Default with --run: the run's prompt when it trained on one text.",
        };
        var threshold = new Option<float>("--threshold") { Description = "Sigmoid threshold for the mask (0.5, as training's validation; with --run, the run's threshold if its config.yaml has one).", DefaultValueFactory = _ => MaskRule.DefaultThreshold };
        var probs = new Option<bool>("--probs") { Description = "Also write <name>.probs.npy (float32 sigmoid; at the model's resolution unless --probs-size original)." };
        var probsSize = new Option<string>("--probs-size")
        {
            Description = "model (default: the network's output resolution) or original (the image's size, resized bilinearly).",
            DefaultValueFactory = _ => "model",
        };
        var outDir = new Option<string>("--out") { Description = "Output folder.", Required = true };
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass.", DefaultValueFactory = _ => 8 };
        var adapter = ModelOptions.Adapter();
        var allowOtherBase = ModelOptions.AllowOtherBase();
        var familyFlags = ModelOptions.FamilyOptionFlags();
        var precision = PrecisionOption.Create();
        var imageSize = ModelOptions.ImageSize("default with --run: the size the run trained at (its config.yaml).");
        var inputs = new Argument<string[]>("IMAGE")
        {
            Description = "Image files or folders of images (PNG, JPEG, BMP, GIF, WebP, TIFF); predict's own outputs (*.mask.png, *.overlay.png) in a folder are skipped.",
            Arity = ArgumentArity.OneOrMore,
        };
        var cmd = new Command("predict", "Segment images with a text prompt; writes <name>.mask.png and <name>.overlay.png.")
            { model, run, prompt, threshold, probs, probsSize, outDir, batch, adapter, allowOtherBase, precision, imageSize, inputs };
        foreach (var flag in familyFlags) cmd.Options.Add(flag);
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var imagePaths = parse.GetValue(inputs)!;
            // An unknown flag is taken by the parser as an image path: name it as an option.
            foreach (var path in imagePaths)
                if (path.StartsWith('-') && !File.Exists(path) && !Directory.Exists(path))
                    throw new VlsmException($"unknown option {path}; see vlsm predict --help.");
            string output = parse.GetValue(outDir)!;
            var reference = ModelReference.Resolve(parse.GetValue(model), parse.GetValue(adapter), parse.GetValue(run));
            var given = parse.GetValue(prompt) ?? [];
            bool promptFromRun = given.Length == 0 && reference.Run?.Prompt is not null;
            bool thresholdFromRun = !ModelOptions.Given(parse, threshold) && reference.Run?.Threshold is not null;
            var prompts = given.Length > 0 ? given : RunPrompt(reference);
            var options = new PredictionOptions
            {
                OutputDirectory = output,
                Prompts = prompts,
                Threshold = thresholdFromRun ? reference.Run!.Threshold!.Value : parse.GetValue(threshold),
                WriteProbabilities = parse.GetValue(probs),
                ProbabilitiesSize = parse.GetValue(probsSize) switch
                {
                    "model" => ProbabilitiesSize.Model,
                    "original" => ProbabilitiesSize.Original,
                    var other => throw new VlsmException($"--probs-size must be model or original, got \"{other}\"."),
                },
                BatchSize = parse.GetValue(batch),
            };
            options.Validate();
            var precisionValue = ModelOptions.Precision(parse.GetValue(precision)!);
            using var outLock = Vlsm.IO.FolderLock.Acquire(output, "predict", "--out");
            var familyOptions = ModelOptions.FamilyOptions(parse, familyFlags);
            int? side = parse.GetValue(imageSize);
            using var predictor = reference.Open(precisionValue, familyOptions, parse.GetValue(allowOtherBase), ModelOptions.Note, side);
            var job = PredictionJob.Plan(predictor, imagePaths, options);
            var settings = new List<(string, string, bool)>();
            for (int k = 0; k < prompts.Count; k++)
                settings.Add((prompts.Count > 1 ? $"prompt {k + 1}" : "prompt", $"\"{prompts[k]}\"", promptFromRun));
            settings.Add(("threshold", options.Threshold.ToString(CultureInfo.InvariantCulture), thresholdFromRun));
            settings.Add(("precision", ComputePrecisions.Name(precisionValue), false));
            settings.Add(reference.ImageSizeSetting(predictor, side));
            Console.WriteLine(reference.Describe(settings, familyOptions));
            if (job.SkippedOutputs.Count > 0)
                ModelOptions.Note($"note: skipped {job.SkippedOutputs.Count} file(s) predict wrote itself (*{string.Join(", *", PredictionJob.OutputSuffixes)}) in the input folder(s).");
            PredictionReport report = null!;
            ProgressReporter.Run("predict", job.Files.Count, advance => report = job.Run(advance));
            foreach (var failure in report.Failures) Console.Error.WriteLine($"error: {failure}");
            Console.WriteLine($"wrote {report.Written} prediction(s)" + (prompts.Count > 1 ? $" x {prompts.Count} prompts" : "") + $" to {options.OutputDirectory}"
                + (report.Failures.Count > 0 ? $"; {report.Failures.Count} image(s) could not be read" : ""));
            return report.Failures.Count > 0 ? 2 : 0;
        }));
        return cmd;
    }

    /// <summary>
    /// The prompt of a run folder, when it trained on one text; a run trained on a prompt key has a
    /// text per record, which predict cannot know.
    /// </summary>
    private static IReadOnlyList<string> RunPrompt(ModelReference reference)
    {
        if (reference.Run?.Prompt is not { } spec || !reference.Family.TakesText) return [];
        var choice = PromptChoice.Parse(spec);
        if (choice.Kind == PromptChoice.Mode.Literal) return spec.Length == 0 ? [] : [spec];
        throw new VlsmException($"give --prompt \"TEXT\": the run trained on {(choice.Kind == PromptChoice.Mode.Key ? $"prompt key {spec}" : "random prompt keys")} "
            + $"({reference.Run.ConfigFile}), a text per record, and predict has no records to take it from.");
    }
}
