using System.Diagnostics;
using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Imaging;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.Text;
using Vlsm.Training;

namespace Vlsm.Bench;

/// <summary>Peak and current resident memory (VmHWM, VmRSS) of this process, on Linux.</summary>
internal static class PeakRss
{
    public static long Megabytes() => Kilobytes("VmHWM:") / 1024;

    /// <summary>VmRSS in kB after a full garbage collection (finalizers run, so disposed native tensors are freed).</summary>
    public static long ResidentKilobytesAfterGc()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Kilobytes("VmRSS:");
    }

    /// <summary>VmHWM of another process, in kB (-1024 when the field is missing).</summary>
    public static long PeakKilobytesOf(int pid) => Kilobytes("VmHWM:", $"/proc/{pid}/status");

    private static long Kilobytes(string field, string status = "/proc/self/status")
    {
        foreach (var line in File.ReadLines(status))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return -1024;
    }
}

/// <summary>
/// One training step of the library (<see cref="TrainingSession.TrainStep"/>: forward, reference
/// loss, backward, clip at 0.5, AdamW) at batch 4, 352x352, of random-weight clipseg-rd64-refined,
/// in a child process of its own so its peak RSS is its own.
/// </summary>
internal static class TrainingMeasurement
{
    public const int Batch = 4;

    /// <summary>
    /// Cached steps timed (after one warm-up): a cached step is about 0.2 s and the first few after
    /// the uncached ones run slower, so a median of 3 overstated it by up to 20 %; 15 cost 3 s.
    /// </summary>
    private const int CachedRepeats = 15;
    public static readonly string[] Keys = { "train_shallow_vlc_b4", "train_dense_vl_b4" };

    private static FineTuneSpec Spec(string key) => key switch
    {
        "train_shallow_vlc_b4" => FineTuneSpec.Create(FineTuneMode.Shallow, "vlc"),
        "train_dense_vl_b4" => FineTuneSpec.Create(FineTuneMode.Dense, "vl"),
        _ => throw new ArgumentException($"unknown measurement {key}"),
    };

    /// <summary>
    /// The measurement itself (in the child): median step time, peak RSS, and for shallow fp32 the step
    /// with the feature cache warm, and its parts over <paramref name="cachedRepeats"/> steps (--steps, for a profiler to attach).
    /// </summary>
    public static JsonObject Run(string key, string precisionName, int repeats, bool warmUp, int? cachedRepeats = null)
    {
        var spec = Spec(key);
        var precision = ComputePrecisions.Parse(precisionName);
        string scratch = Directory.CreateTempSubdirectory("vlsm-bench-train-").FullName;
        try
        {
            ClipTokenizer.WriteBuiltInVocabulary(scratch);
            var run = new RunFolder(scratch);
            var setup = new TrainingSetup { Spec = spec, CacheDirectory = run.CacheDir, FeatureCache = true };
            var model = ClipSegFamily.Instance.Trainable(new ClipSegModel(ClipSegConfig.Rd64Refined), ClipTokenizer.FromFolder(scratch), ImagePreprocessor.Default, precision, setup);
            var plan = new TrainingPlan(
                new ModelSection("random clipseg-rd64-refined", ClipSegFamily.Instance, spec, precision, new Dictionary<string, string>()),
                new DataSection([], "train", "val", PromptChoice.Literal(""), MaskMode.Binary, 127, false, OnError.Fail),
                new OptimizationSection(Batch, 1e-3, 0.9, 0.999, 1e-8, 1e-3, 0.5),
                new ScheduleSection(1, 1, true, 0.3, 5, 1e-4, 20, 1e-4),
                new DiceBceLoss(BceInput.Reference), 0, new CacheSection(true, 2048L << 20));
            using var session = new TrainingSession(plan, model, run, new Silent());
            session.Model.SetTraining(true);
            int fresh = 0;
            // Each uncached step gets records never seen, so the frozen towers run (and their outputs are stored).
            var result = new JsonObject
            {
                ["spec"] = $"{spec} {precisionName}",
                ["seconds"] = Math.Round(Bench.Median(repeats, () =>
                {
                    var batch = RandomBatch(fresh++);
                    return Bench.Time(() => session.TrainStep(batch));
                }, warmUp), 4),
                ["peak_rss_mb"] = PeakRss.Megabytes(),
            };
            if (spec.Mode == FineTuneMode.Shallow && precision == ComputePrecision.Fp32)
            {
                // The same records again: the feature cache serves the towers, and only the head runs.
                var cachedBatch = RandomBatch(-1);
                session.TrainStep(cachedBatch);
                int cachedSteps = cachedRepeats ?? CachedRepeats;
                result["cached_seconds"] = Math.Round(Bench.Median(cachedSteps, () => Bench.Time(() => session.TrainStep(cachedBatch)), warmUp), 4);
                result["cached_parts_s"] = CachedStepParts(session, cachedBatch, cachedSteps);
            }
            return result;
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>
    /// Where a cached step's time goes: the forward pass (cache lookup, adapters, decoder), the loss,
    /// the backward pass, clipping, the optimizer and freeing the step's tensors, each the median over <paramref name="repeats"/> steps.
    /// </summary>
    private static JsonObject CachedStepParts(TrainingSession session, Batch batch, int repeats)
    {
        var parts = new PartTimes();
        for (int i = 0; i < repeats; i++)
        {
            var scope = TorchSharp.torch.NewDisposeScope();
            var clock = Stopwatch.StartNew();
            void Lap(string part)
            {
                parts.Add(part, clock.Elapsed.TotalSeconds);
                clock.Restart();
            }
            var (logits, target) = session.Forward(batch);
            Lap("forward");
            var loss = session.Loss.Compute(logits, target);
            loss.item<float>();
            Lap("loss");
            session.Optimizer.ZeroGrad();
            loss.backward();
            Lap("backward");
            TorchSharp.torch.nn.utils.clip_grad_norm_(session.Optimizer.Parameters, session.Plan.Optimization.GradClip);
            Lap("clip");
            session.Optimizer.StepOnce();
            Lap("optimizer");
            scope.Dispose(); // the step's tensors freed, as at the end of TrainStep
            Lap("release");
        }
        return parts.Medians(new JsonObject());
    }

    /// <summary>Runs <see cref="Run"/> in a child process of this program and returns its result.</summary>
    public static JsonObject InChildProcess(string key, string precision, bool quick, int threads)
    {
        string[] args = ["--child", key, "--precision", precision, "--threads", threads.ToString()];
        var (exit, _, result) = Bench.RunSelf(quick ? [.. args, "--quick"] : args);
        if (exit != 0) throw new InvalidOperationException($"measurement {key} {precision} failed with exit code {exit}");
        return (JsonObject)JsonNode.Parse(result)!;
    }

    /// <summary>A batch of random 352x352 images, one prompt and binary masks; <paramref name="id"/> names its records.</summary>
    private static Batch RandomBatch(int id) => Bench.RandomTrainBatch(id, Batch, 352, Prompt);

    /// <summary>The prompt of every training measurement's samples.</summary>
    public const string Prompt = "a small pink polyp at the top left of the image";

    internal sealed class Silent : ITrainingObserver
    {
        public void RunStarted(string description) { }
        public void EpochStarted(int epoch, int maxEpochs, int steps) { }
        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond) { }
        public void EpochCompleted(EpochMetrics metrics, bool best) { }
        public void Message(string text) { }
    }
}
