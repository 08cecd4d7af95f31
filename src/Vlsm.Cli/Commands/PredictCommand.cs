using System.CommandLine;
using Vlsm.Inference;

namespace Vlsm.Cli.Commands;

internal static class PredictCommand
{
    public static Command Build()
    {
        var model = ModelOptions.Model("Model folder, of any family vlsm knows (config.json's model_type); not needed with --run.");
        var run = ModelOptions.Run();
        var prompt = new Option<string?>("--prompt") { Description = "What to segment, e.g. \"small pink polyp at the top left\" (models that read text)." };
        var threshold = new Option<float>("--threshold") { Description = "Sigmoid threshold for the mask.", DefaultValueFactory = _ => MaskRule.DefaultThreshold };
        var probs = new Option<bool>("--probs") { Description = "Also write <name>.probs.npy (float32 sigmoid at model resolution)." };
        var outDir = new Option<string>("--out") { Description = "Output folder.", Required = true };
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass.", DefaultValueFactory = _ => 8 };
        var adapter = ModelOptions.Adapter();
        var familyFlags = ModelOptions.FamilyOptionFlags();
        var precision = PrecisionOption.Create();
        var inputs = new Argument<string[]>("IMAGE") { Description = "Image files or folders of images.", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("predict", "Segment images with a text prompt; writes <name>.mask.png and <name>.overlay.png.")
            { model, run, prompt, threshold, probs, outDir, batch, adapter, precision, inputs };
        foreach (var flag in familyFlags) cmd.Options.Add(flag);
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var options = new PredictionOptions
            {
                OutputDirectory = parse.GetValue(outDir)!,
                Prompt = parse.GetValue(prompt),
                Threshold = parse.GetValue(threshold),
                WriteProbabilities = parse.GetValue(probs),
                BatchSize = parse.GetValue(batch),
            };
            options.Validate();
            using var outLock = Vlsm.IO.FolderLock.Acquire(options.OutputDirectory, "predict");
            var precisionValue = ModelOptions.Precision(parse.GetValue(precision)!);
            var reference = ModelReference.Resolve(parse.GetValue(model), parse.GetValue(adapter), parse.GetValue(run));
            using var predictor = reference.Open(precisionValue, ModelOptions.FamilyOptions(parse, familyFlags));
            var job = PredictionJob.Plan(predictor, parse.GetValue(inputs)!, options);
            PredictionReport report = null!;
            ProgressReporter.Run("predict", job.Files.Count, advance => report = job.Run(advance));
            foreach (var failure in report.Failures) Console.Error.WriteLine($"error: {failure}");
            Console.WriteLine($"wrote {report.Written} prediction(s) to {options.OutputDirectory}" + (report.Failures.Count > 0 ? $"; {report.Failures.Count} image(s) could not be read" : ""));
            return report.Failures.Count > 0 ? 2 : 0;
        }));
        return cmd;
    }
}
