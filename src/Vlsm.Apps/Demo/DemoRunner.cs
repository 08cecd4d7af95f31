using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.Data;
using Vlsm.Data.Synthetic;
using Vlsm.Evaluation;
using Vlsm.Inference;
using Vlsm.IO;
using Vlsm.Text;
using Vlsm.Training;

namespace Vlsm.Apps.Demo;

/// <param name="OutDir">Where data, runs, results.json and examples.png go.</param>
/// <param name="CacheDir">Where the pretrained model folder is kept between runs.</param>
/// <param name="Retrain">Pretrain even when the cache has the model.</param>
public sealed record DemoOptions(string OutDir, string CacheDir, ulong Seed = 1, bool Quick = false, bool Retrain = false)
{
    /// <summary>$VLSM_CACHE, else $XDG_CACHE_HOME/vlsm, else ~/.cache/vlsm; the demo keeps its models under demo/.</summary>
    public static string DefaultCacheDir()
    {
        string? root = Environment.GetEnvironmentVariable("VLSM_CACHE");
        if (string.IsNullOrEmpty(root))
        {
            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            root = string.IsNullOrEmpty(xdg)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "vlsm")
                : Path.Combine(xdg, "vlsm");
        }
        return Path.Combine(root, "demo");
    }
}

/// <summary>Scores of one model on the medical test split.</summary>
/// <param name="PromptSwapDice">Dice against the record's own mask when the prompt names another object of the same image.</param>
public sealed record DemoScores(double Dice, double IoU, double PromptSwapDice, int TestRecords, int SwapRecords);

/// <summary>One row of the results table.</summary>
public sealed record DemoMethodResult(
    string Method, string Mode, string? Parts, long TrainableParameters, double TrainablePercent,
    int Epochs, int BestEpoch, double WallSeconds, DemoScores Test);

/// <summary>What the demo measured; written as results.json.</summary>
public sealed record DemoResults(
    string Recipe, ulong Seed, string ModelDescription, long TotalParameters, string Prompt,
    bool PretrainedFromCache, double PretrainSeconds, double PretrainValDice, int PretrainEpochs,
    DemoScores ZeroShot, IReadOnlyList<DemoMethodResult> Methods, string ExamplesImage)
{
    public const string FileName = "results.json";

    /// <summary>results.json's text: plain UTF-8 (a '+' stays '+'), snake_case keys, indented.</summary>
    public string ToJsonText() => ToJson().ToJsonString(JsonText.Indented) + "\n";

    public JsonObject ToJson()
    {
        static JsonObject Scores(DemoScores s) => new()
        {
            ["test_dice"] = Math.Round(s.Dice, 4),
            ["test_iou"] = Math.Round(s.IoU, 4),
            ["prompt_swap_dice"] = Math.Round(s.PromptSwapDice, 4),
            ["test_records"] = s.TestRecords,
            ["swap_records"] = s.SwapRecords,
        };
        var methods = new JsonArray();
        foreach (var m in Methods)
        {
            var row = Scores(m.Test);
            row["method"] = m.Method;
            row["mode"] = m.Mode;
            row["parts"] = m.Parts;
            row["trainable_parameters"] = m.TrainableParameters;
            row["trainable_percent"] = Math.Round(m.TrainablePercent, 3);
            row["epochs"] = m.Epochs;
            row["best_epoch"] = m.BestEpoch;
            methods.Add(row);
        }
        // Wall times are kept apart: everything else is a function of the seed.
        var timing = new JsonObject { ["pretrain_seconds"] = Math.Round(PretrainSeconds, 1), ["pretrained_from_cache"] = PretrainedFromCache };
        foreach (var m in Methods) timing[JsonText.SnakeKey(m.Method) + "_seconds"] = Math.Round(m.WallSeconds, 1);
        return new JsonObject
        {
            ["recipe"] = Recipe,
            ["seed"] = Seed,
            ["model"] = ModelDescription,
            ["total_parameters"] = TotalParameters,
            ["prompt"] = Prompt,
            ["pretrain"] = new JsonObject { ["epochs"] = PretrainEpochs, ["val_dice"] = Math.Round(PretrainValDice, 4) },
            ["zero_shot"] = Scores(ZeroShot),
            ["methods"] = methods,
            ["examples"] = ExamplesImage,
            ["timing"] = timing,
        };
    }
}

/// <summary>Stages of a demo run, for progress display.</summary>
public interface IDemoObserver
{
    /// <summary>The stages this run will go through, in order, before the first starts (for an ETA).</summary>
    void Planned(IReadOnlyList<DemoStagePlan> stages) { }

    /// <summary>A stage starts ("pretraining", "fine-tuning dense VL", ...); titles and order are the plan's.</summary>
    void Stage(string title);

    /// <summary>The observer for the training run of the current stage.</summary>
    ITrainingObserver Training { get; }
}

/// <summary>
/// The paper's experiment in miniature: pretrain a small CLIPSeg end to end on synthetic natural
/// scenes, move to synthetic "medical" scenes, evaluate zero-shot, fine-tune with four methods
/// through the real trainer, and compare test Dice, IoU and prompt-swap Dice.
/// </summary>
public sealed class DemoRunner
{
    /// <summary>Split of the medical data whose records carry another object's prompts (prompt-swap evaluation).</summary>
    public const string SwapSplit = "swap";

    private readonly DemoOptions options;
    private readonly DemoRecipe recipe;
    private readonly IDemoObserver observer;

    public DemoRunner(DemoOptions options, IDemoObserver observer, DemoRecipe? recipe = null)
    {
        this.options = options;
        this.observer = observer;
        this.recipe = recipe ?? (options.Quick ? DemoRecipe.Quick : DemoRecipe.Full);
    }

    public DemoRecipe Recipe => recipe;

    public DemoResults Run(CancellationToken cancellation = default)
    {
        string outDir = Path.GetFullPath(options.OutDir);
        if (File.Exists(outDir)) throw new VlsmException($"--out {options.OutDir} is a file; give a folder for the demo's data, runs and results.");
        if (Directory.Exists(Path.Combine(outDir, "runs")))
            throw new VlsmException($"{outDir} already holds a demo run; give a new or empty --out folder (or delete {Path.Combine(outDir, "runs")}).");
        Directory.CreateDirectory(outDir);

        string natural = Path.Combine(outDir, "data", "natural");
        string medical = Path.Combine(outDir, "data", "medical");
        string runs = Path.Combine(outDir, "runs");

        observer.Planned(Plan());
        var (modelDir, fromCache, pretrainSeconds, pretrainDice, pretrainEpochs) = Pretrained(natural, runs, cancellation);

        observer.Stage(DomainShiftTitle);
        SyntheticDataset.Generate(medical, new SynthOptions(recipe.MedicalScenes, options.Seed + 1000, recipe.ImageSize, SynthStyle.Medical));
        PromptSwap.WriteSplit(medical, "test", SwapSplit);

        observer.Stage(ZeroShotTitle);
        var (zeroShot, _, total) = Score(modelDir, null, medical);

        var methods = new List<DemoMethodResult>();
        foreach (var method in recipe.Methods)
        {
            cancellation.ThrowIfCancellationRequested();
            observer.Stage(FineTuneTitle(method));
            var config = FineTuneConfig(method, modelDir, medical);
            var run = new RunFolder(Path.Combine(runs, Slug(method.Name)));
            var clock = Stopwatch.StartNew();
            var result = new Trainer(config, run, observer.Training).Run(resume: false, cancellation);
            double seconds = clock.Elapsed.TotalSeconds;
            var (scores, trainable, _) = Score(modelDir, run.BestFile, medical);
            methods.Add(new DemoMethodResult(method.Name, method.Mode, method.Parts, trainable, 100.0 * trainable / total,
                result.EpochsCompleted, result.BestEpoch, seconds, scores));
        }

        observer.Stage(ExamplesTitle);
        string examples = Path.Combine(outDir, "examples.png");
        var columns = new List<ExampleMethod> { new("zero-shot", null) };
        columns.AddRange(recipe.Methods.Select(m => new ExampleMethod(m.Name, new RunFolder(Path.Combine(runs, Slug(m.Name))).BestFile)));
        ExampleGrid.Write(examples, modelDir, columns, medical, recipe.Prompt,
            $"every method on the same test prompts ({recipe.Prompt}), two objects per scene: a model that reads the text fills a different object in each row");

        var results = new DemoResults(recipe.Name, options.Seed, recipe.Describe(), total, recipe.Prompt,
            fromCache, pretrainSeconds, pretrainDice, pretrainEpochs, zeroShot, methods, "examples.png");
        AtomicFile.WriteAllText(Path.Combine(outDir, DemoResults.FileName),
            results.ToJsonText());
        return results;
    }

    private string CachedModelDir => Path.Combine(options.CacheDir, recipe.PretrainKey(options.Seed));

    private bool UsesCache => !options.Retrain && File.Exists(Path.Combine(CachedModelDir, "model.safetensors"))
        && File.Exists(Path.Combine(CachedModelDir, PretrainInfoFile));

    private string CacheTitle => $"pretrained model from the cache: {CachedModelDir} (--retrain to pretrain again)";
    private string PretrainTitle => $"pretraining on {recipe.NaturalScenes} synthetic natural scenes: {recipe.Describe()}";
    private string DomainShiftTitle => $"domain shift: {recipe.MedicalScenes} synthetic medical scenes";
    private const string ZeroShotTitle = "zero-shot evaluation of the pretrained model";
    private static string FineTuneTitle(DemoMethod method) => $"fine-tuning: {method.Name}";
    private const string ExamplesTitle = "drawing examples.png";

    /// <summary>The stages <see cref="Run"/> goes through, in order, with their expected durations.</summary>
    public IReadOnlyList<DemoStagePlan> Plan()
    {
        var stages = new List<DemoStagePlan>
        {
            UsesCache ? new(CacheTitle, 0.5, false) : new(PretrainTitle, recipe.EstimatedPretrainSeconds(), true),
            new(DomainShiftTitle, 1.5, false),
            new(ZeroShotTitle, 1, false),
        };
        stages.AddRange(recipe.Methods.Select(m => new DemoStagePlan(FineTuneTitle(m), recipe.EstimatedSeconds(m), true)));
        stages.Add(new(ExamplesTitle, 1, false));
        return stages;
    }

    /// <summary>The pretrained model folder: from the cache, or pretrained now and stored there.</summary>
    private (string Dir, bool FromCache, double Seconds, double ValDice, int Epochs) Pretrained(string natural, string runs, CancellationToken cancellation)
    {
        string cached = CachedModelDir;
        string info = Path.Combine(cached, PretrainInfoFile);
        if (UsesCache)
        {
            observer.Stage(CacheTitle);
            var saved = JsonNode.Parse(File.ReadAllText(info))!;
            return (cached, true, saved["seconds"]!.GetValue<double>(), saved["val_dice"]!.GetValue<double>(), saved["epochs"]!.GetValue<int>());
        }

        observer.Stage(PretrainTitle);
        var clock = Stopwatch.StartNew();
        SyntheticDataset.Generate(natural, new SynthOptions(recipe.NaturalScenes, options.Seed, recipe.ImageSize, SynthStyle.Natural, MinObjects: recipe.NaturalMinObjects));
        string initial = Path.Combine(runs, "initial-model");
        WriteInitialModel(initial);
        var config = RunConfig(initial, natural, "full", recipe.PretrainLr, recipe.PretrainEpochs, recipe.PretrainPrompt);
        // A text tower trained from scratch collapses to one embedding for every prompt before
        // the decoder learns to use it; kept at its random initialisation, its prompt features
        // stay distinct and the decoder learns to read them (measured; see README).
        config.FreezeText = true;
        config.Validate();
        var run = new RunFolder(Path.Combine(runs, "pretrain"));
        var result = new Trainer(config, run, observer.Training).Run(resume: false, cancellation);
        double seconds = clock.Elapsed.TotalSeconds;

        // Staged next to the cache entry and renamed into place, so a killed run never leaves half a model there.
        Directory.CreateDirectory(options.CacheDir);
        string staging = cached + $".tmp-{Environment.ProcessId}";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        var pretrained = ClipSegLoader.Load(initial);
        using (AdapterFile.Load(pretrained, run.BestFile)) // full-mode weights into the base, which the wrapper owns
            ClipSegLoader.SaveFolder(pretrained, staging, initial);
        var infoJson = new JsonObject { ["seconds"] = Math.Round(seconds, 1), ["val_dice"] = result.BestValDice, ["epochs"] = result.EpochsCompleted };
        File.WriteAllText(Path.Combine(staging, PretrainInfoFile), infoJson.ToJsonString());
        if (Directory.Exists(cached)) Directory.Delete(cached, recursive: true);
        Directory.Move(staging, cached);
        return (cached, false, seconds, result.BestValDice, result.EpochsCompleted);
    }

    private const string PretrainInfoFile = "demo-pretrain.json";

    /// <summary>A freshly initialised model as an HF folder, with the built-in CLIP vocabulary and a 96-px preprocessor.</summary>
    private void WriteInitialModel(string dir)
    {
        Directory.CreateDirectory(dir);
        TorchSharp.torch.manual_seed((long)(options.Seed % long.MaxValue));
        using var model = new ClipSegModel(recipe.ModelConfig());
        ClipSegInitializer.Initialize(model, (long)(options.Seed % long.MaxValue));
        ClipTokenizer.WriteBuiltInVocabulary(dir);
        var preprocessor = new JsonObject
        {
            ["do_resize"] = true,
            ["size"] = new JsonObject { ["height"] = recipe.ImageSize, ["width"] = recipe.ImageSize },
            ["resample"] = 2,
            ["do_rescale"] = true,
            ["rescale_factor"] = 1.0 / 255,
            ["do_normalize"] = true,
            ["image_mean"] = new JsonArray(0.485, 0.456, 0.406),
            ["image_std"] = new JsonArray(0.229, 0.224, 0.225),
        };
        File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"), preprocessor.ToJsonString());
        ClipSegLoader.SaveFolder(model, dir, dir);
    }

    private TrainConfig FineTuneConfig(DemoMethod method, string modelDir, string medical)
    {
        var config = RunConfig(modelDir, medical, method.Mode, method.Lr, recipe.FineTuneEpochs, recipe.Prompt);
        config.Parts = method.Parts;
        config.AdapterDim = method.Mode switch { "dense" => recipe.DenseAdapterDim, "shallow" => recipe.ShallowAdapterDim, _ => null };
        config.CondAdapterDim = method.Mode == "shallow" ? recipe.ShallowAdapterDim : null;
        config.Validate();
        return config;
    }

    /// <summary>What every demo run shares: fixed epochs (no early stop), the recipe's batch size and loss, the demo's seed.</summary>
    private TrainConfig RunConfig(string model, string data, string mode, double lr, int epochs, string prompt) => new()
    {
        Model = model,
        Data = [data],
        Mode = mode,
        Lr = lr,
        BatchSize = recipe.BatchSize,
        MaxEpochs = epochs,
        MinEpochs = epochs,
        Prompt = prompt,
        Loss = recipe.Loss,
        Seed = (int)(options.Seed % int.MaxValue),
    };

    /// <summary>Test and prompt-swap scores of the model with <paramref name="adapter"/>, and its trainable and total parameter counts (the file's spec).</summary>
    private (DemoScores Scores, long Trainable, long Total) Score(string modelDir, string? adapter, string medical)
    {
        using var predictor = ClipSegPredictor.FromFolder(modelDir, adapter);
        var data = PooledDataset.Open([medical]);
        var test = Evaluator.Plan(predictor, data, new EvaluationOptions { Split = "test", Prompt = recipe.Prompt, BatchSize = 32 }, modelDir, adapter).Run();
        var swap = Evaluator.Plan(predictor, data, new EvaluationOptions { Split = SwapSplit, Prompt = recipe.Prompt, BatchSize = 32 }, modelDir, adapter).Run();
        var t = test.Prompts[0].Datasets[0].Summary;
        var s = swap.Prompts[0].Datasets[0].Summary;
        long total = predictor.Model.parameters().Sum(p => p.numel());
        return (new DemoScores(t.Dice.Mean, t.IoU.Mean, s.Dice.Mean, t.N, s.N), predictor.Adapted?.TrainableParameterCount ?? 0, total);
    }

    internal static string Slug(string name) => name.Replace(' ', '-').ToLowerInvariant();
}
