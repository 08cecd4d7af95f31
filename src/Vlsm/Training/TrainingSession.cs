using System.Diagnostics;
using TorchSharp;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.Inference;
using Vlsm.IO;
using Vlsm.Models;
using static TorchSharp.torch;

namespace Vlsm.Training;

/// <summary>What a training run reports while it works (the CLI draws bars or prints lines).</summary>
public interface ITrainingObserver
{
    void RunStarted(string description);
    void EpochStarted(int epoch, int maxEpochs, int steps);
    void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond);
    void EpochCompleted(EpochMetrics metrics, bool best);
    void Message(string text);
}

/// <param name="BestEpoch">The best epoch, numbered from 1 as in state.json and on the console; 0 before any.</param>
public sealed record TrainResult(int EpochsCompleted, int BestEpoch, double BestValDice, double? StartValDice, string StopReason, string RunDir)
{
    public long TrainableParameters { get; init; }
    public long TotalParameters { get; init; }
}

/// <summary>Validation loss and per-image mean Dice and IoU (network resolution, <see cref="MaskRule"/> at its default threshold).</summary>
public sealed record ValidationResult(double Loss, double Dice, double IoU);

/// <summary>
/// The VLSM-Adapter training recipe over one opened model: AdamW, ReduceLROnPlateau on validation
/// loss, early stopping on validation Dice, gradient clipping, best-validation-Dice weights as the
/// result. Its seams are public: <see cref="TrainStep"/> (one optimizer step on a batch, as the
/// bench times it), <see cref="ValidateEpoch"/>, and <see cref="Recorders"/>, which write the
/// checkpoints and the run's logs after each epoch. Every completed epoch is checkpointed, so a
/// resumed run continues exactly where it stopped.
/// </summary>
public sealed class TrainingSession : IDisposable
{
    private readonly PooledDataset? data;
    private int epoch, step;
    private TrainingState state = new();

    /// <param name="plan">The resolved run.</param>
    /// <param name="model">The model, opened for this plan (<see cref="Open"/>); the session disposes it.</param>
    /// <param name="run">Where checkpoints, logs and the state go.</param>
    /// <param name="data">The datasets, when already open (a sweep reuses them); else opened from the plan when needed.</param>
    public TrainingSession(TrainingPlan plan, ITrainableModel model, RunFolder run, ITrainingObserver observer, PooledDataset? data = null)
    {
        Plan = plan;
        Model = model;
        Run = run;
        Observer = observer;
        this.data = data;
        var o = plan.Optimization;
        Optimizer = new AdamW(model.TrainableNamed(), o.Lr, o.Beta1, o.Beta2, o.Eps, o.WeightDecay);
        Loss = plan.Loss;
        Recorders = [new CheckpointRecorder(), new MetricsRecorder(), new TensorBoardRecorder(run)];
    }

    /// <summary>Opens the plan's model through its family, seeding first so random initial weights (adapters) follow the seed.</summary>
    public static ITrainableModel Open(TrainingPlan plan, RunFolder run)
    {
        manual_seed(plan.Seed);
        return plan.Model.Family.OpenTrainable(plan.Model.Request, new TrainingSetup
        {
            Spec = plan.Model.Spec,
            FeatureCache = plan.Cache.Enabled,
            FeatureCacheBytes = plan.Cache.MemoryBytes,
            CacheDirectory = run.CacheDir,
            Augment = plan.Data.Augment,
        });
    }

    public TrainingPlan Plan { get; }

    /// <summary>Resume although the datasets differ from what the run recorded in data.json when it started (<c>--allow-data-change</c>).</summary>
    public bool AllowDataChange { get; init; }
    public ITrainableModel Model { get; }
    public RunFolder Run { get; }
    public ITrainingObserver Observer { get; }
    public AdamW Optimizer { get; }
    public ISegmentationLoss Loss { get; }

    /// <summary>Called after every epoch, in order; those with <see cref="ITrainingRecorder.BeforeCommit"/> before state.json names the epoch.</summary>
    public List<ITrainingRecorder> Recorders { get; }

    /// <summary>Standard augmentation when <c>augment: true</c> (the reference trains without).</summary>
    public static AugmentOptions DefaultAugmentation { get; } = new()
    {
        HorizontalFlipProbability = 0.5, VerticalFlipProbability = 0.5, MaxRotationDegrees = 15, MaxScaleChange = 0.1,
        Brightness = 0.1, Contrast = 0.1, Saturation = 0.1,
    };

    /// <summary>
    /// One optimizer step: forward, loss, backward, clipping, AdamW. Returns the batch's loss.
    /// </summary>
    /// <exception cref="VlsmException">The loss is not finite (the run stops; the last good checkpoint stays).</exception>
    public double TrainStep(Batch batch)
    {
        using var scope = NewDisposeScope();
        var (logits, target) = Forward(batch);
        var l = Loss.Compute(logits, target);
        double value = l.item<float>();
        if (!double.IsFinite(value))
            throw new VlsmException($"epoch {epoch + 1}, step {step + 1}: the loss is {value}; stopping. The last good checkpoint ({(state.EpochsCompleted > 0 ? Run.File(state.Checkpoint) : "none yet")}) is kept; try a lower --lr or check the data.");
        Optimizer.ZeroGrad();
        l.backward();
        nn.utils.clip_grad_norm_(Optimizer.Parameters, Plan.Optimization.GradClip);
        Optimizer.StepOnce();
        return value;
    }

    /// <summary>Logits for a batch and its masks at the logits' resolution.</summary>
    public (Tensor Logits, Tensor Target) Forward(Batch batch)
    {
        var pixels = tensor(batch.Images, new long[] { batch.Count, 3, batch.Height, batch.Width });
        var masks = tensor(batch.Masks, new long[] { batch.Count, batch.Height, batch.Width });
        var keys = batch.Records.Select(r => $"{r.Dataset}/{r.Split}/{r.Index}").ToList();
        var logits = Model.Forward(new ModelBatch(pixels, Model.Family.TakesText ? batch.Prompts : null, keys));
        return (logits, TargetFor(logits, masks));
    }

    /// <summary>
    /// The mask at the logits' size: itself, or resized (nearest) when the head outputs a coarser
    /// grid than the input (e.g. CLIPSeg with patch 8 and the complex head).
    /// </summary>
    public static Tensor TargetFor(Tensor logits, Tensor masks) =>
        logits.shape[^2] == masks.shape[^2] && logits.shape[^1] == masks.shape[^1]
            ? masks
            : nn.functional.interpolate(masks.unsqueeze(1), new[] { logits.shape[^2], logits.shape[^1] }, mode: InterpolationMode.Nearest).squeeze(1);

    /// <summary>Mean loss and mean per-image Dice and IoU over the validation split.</summary>
    public ValidationResult ValidateEpoch(CancellationToken cancellation = default) => Validate(ValidationLoader(), cancellation);

    private BatchLoader? trainLoader, valLoader;
    private IReadOnlyList<DatasetRecord>? trainRecords, valRecords;
    private IReadOnlyList<string>? datasetNames;
    private PooledDataset? pooled;

    private void OpenData()
    {
        if (trainRecords is not null) return;
        pooled = data ?? PooledDataset.Open(Plan.Data.Roots, Plan.Data.FollowSymlinks);
        datasetNames = pooled.Datasets.Select(d => d.Name).ToList();
        trainRecords = pooled.RequiredRecords(Plan.Data.TrainSplit);
        valRecords = pooled.RequiredRecords(Plan.Data.ValSplit);
        string roots = string.Join(", ", Plan.Data.Roots);
        if (trainRecords.Count == 0) throw new VlsmException($"split \"{Plan.Data.TrainSplit}\" has no records in {roots}.");
        if (valRecords.Count == 0)
            throw new VlsmException($"split \"{Plan.Data.ValSplit}\" has no records in {roots}; validation picks the best epoch and drives early stopping, so a run needs one.");
        var d = Plan.Data;
        var options = new SampleOptions
        {
            MaskMode = d.MaskMode,
            MaskThreshold = d.MaskThreshold,
            Augment = d.Augment ? DefaultAugmentation : AugmentOptions.None,
            OnError = d.OnError,
            Seed = Plan.Seed,
        };
        // A text-free family reads no prompt; the loader still needs a choice, and its text goes unused.
        var prompt = d.Prompt ?? PromptChoice.Literal("");
        var preprocessor = Model.Preprocessor;
        trainLoader = new BatchLoader(trainRecords, new SampleLoader(preprocessor, options, prompt),
            new BatchLoaderOptions { BatchSize = Plan.Optimization.BatchSize, Shuffle = true, Seed = Plan.Seed });
        valLoader = new BatchLoader(valRecords, new SampleLoader(preprocessor, options with { Augment = AugmentOptions.None }, prompt),
            new BatchLoaderOptions { BatchSize = Plan.Optimization.BatchSize, Shuffle = false, Seed = Plan.Seed });
    }

    private BatchLoader ValidationLoader()
    {
        OpenData();
        return valLoader!;
    }

    /// <summary>Trains until the schedule or early stopping ends the run; with <paramref name="resume"/>, after the run folder's last completed epoch.</summary>
    /// <param name="configYaml">The run's config.yaml, written when a new run starts.</param>
    public TrainResult RunEpochs(bool resume, string configYaml, CancellationToken cancellation = default)
    {
        OpenData();
        var schedule = Plan.Schedule;
        var plateau = new ReduceLrOnPlateau(schedule.PlateauFactor, schedule.PlateauPatience, schedule.PlateauThreshold);
        var early = new EarlyStopping(schedule.EarlyStoppingPatience, schedule.EarlyStoppingMinDelta);
        state = new TrainingState { Lr = Plan.Optimization.Lr };
        var rows = new List<EpochMetrics>();

        Directory.CreateDirectory(Run.Path);
        if (resume)
        {
            state = Run.ReadState();
            CheckBestWeights();
            if (!RunExtension.CanContinue(state, schedule))
            {
                string why = state.Finished ? $"already finished ({state.StopReason})" : $"already trained its {state.EpochsCompleted} epochs";
                string more = state.StopReason?.StartsWith("early stopping", StringComparison.Ordinal) == true ? "" : $"; --epochs N (more than {state.EpochsCompleted}) trains it on";
                Observer.Message($"{Run.Path} {why}; nothing to resume{more}.");
                return new TrainResult(state.EpochsCompleted, state.BestEpoch, state.EarlyStoppingBest ?? double.NaN, state.StartValDice, state.StopReason ?? "finished", Run.Path)
                {
                    TrainableParameters = Model.TrainableParameterCount,
                    TotalParameters = Model.TotalParameterCount,
                };
            }
            CheckDataIdentity();
            if (!File.Exists(Run.ConfigFile) || File.ReadAllText(Run.ConfigFile) != configYaml) AtomicFile.WriteAllText(Run.ConfigFile, configYaml);
            rows = Restore(plateau, early);
        }
        else
        {
            if (Run.HasState) throw new VlsmException($"{Run.Path} already holds a run; use --resume {Run.Path} to continue it, or another --out.");
            AtomicFile.WriteAllText(Run.ConfigFile, configYaml);
            DataIdentity.Of(pooled!, [Plan.Data.TrainSplit, Plan.Data.ValSplit]).Write(Run.File(DataIdentity.FileName));
        }

        Observer.RunStarted($"{Model.Description} on {string.Join(", ", datasetNames!)}: {trainRecords!.Count} train / {valRecords!.Count} val records, " +
            $"{Model.TrainableParameterCount:N0} trainable parameters ({100.0 * Model.TrainableParameterCount / Model.TotalParameterCount:0.00} %)");
        if (!resume)
        {
            // The untrained model's validation score: the baseline every epoch is compared with.
            var start = Validate(valLoader!, cancellation);
            state = state with { StartValDice = start.Dice };
            Observer.Message($"before training: val loss {start.Loss:0.0000}, val Dice {start.Dice:0.0000}");
        }

        var skipped = new LoadReport();
        string stopReason = $"reached max_epochs {schedule.MaxEpochs}";
        for (epoch = state.EpochsCompleted; epoch < schedule.MaxEpochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            double trainLoss = TrainEpoch(skipped, clock, cancellation);
            var validation = Validate(valLoader!, cancellation);
            double lrUsed = Optimizer.LearningRate;
            if (schedule.Plateau) Optimizer.LearningRate = plateau.Step(validation.Loss, Optimizer.LearningRate);
            bool best = early.Observe(validation.Dice);
            var metrics = new EpochMetrics(epoch, trainLoss, validation.Loss, validation.Dice, validation.IoU, lrUsed, clock.Elapsed.TotalSeconds);
            rows.Add(metrics);

            bool stop = epoch + 1 >= schedule.MinEpochs && early.ShouldStop;
            if (stop) stopReason = $"early stopping: validation Dice did not improve for {early.Wait} epochs";
            Commit(new EpochRecord(epoch, metrics, best, rows, Run.CheckpointDir(epoch + 1), this), plateau, early,
                finished: stop || epoch + 1 == schedule.MaxEpochs, stopReason);
            if (stop) break;
        }
        return new TrainResult(state.EpochsCompleted, state.BestEpoch, early.Best, state.StartValDice, state.StopReason ?? stopReason, Run.Path)
        {
            TrainableParameters = Model.TrainableParameterCount,
            TotalParameters = Model.TotalParameterCount,
        };
    }

    /// <summary>Refuses to resume on datasets that differ from those the run started with (unless <see cref="AllowDataChange"/>).</summary>
    private void CheckDataIdentity()
    {
        string file = Run.File(DataIdentity.FileName);
        var now = DataIdentity.Of(pooled!, [Plan.Data.TrainSplit, Plan.Data.ValSplit]);
        var recorded = DataIdentity.Read(file);
        if (recorded is null)
        {
            Observer.Message($"{Run.Path} has no {DataIdentity.FileName} (a run from an older vlsm): the data cannot be checked against what it trained on; recording it as it is now.");
            now.Write(file);
            return;
        }
        var differences = recorded.Differences(now);
        if (differences.Count == 0) return;
        string list = string.Join("; ", differences);
        if (!AllowDataChange)
            throw new VlsmException($"{Run.Path}: the data differs from what this run trained on ({list}). Resuming would continue on other data; restore the data, or give --allow-data-change to resume on it anyway.");
        Observer.Message($"warning: the data differs from what this run trained on ({list}); resuming on it (--allow-data-change).");
        now.Write(file);
    }

    /// <summary>
    /// Refuses to resume a run whose best.safetensors is missing or does not load into this model:
    /// a later epoch replaces the file only when it beats the best, so the run would end naming
    /// weights it does not have. Loading it here is overwritten by <see cref="Restore"/>.
    /// </summary>
    private void CheckBestWeights()
    {
        if (state.BestEpoch == 0) return; // no epoch has been best yet: there is no file to check
        string checkpointWeights = Path.Combine(Run.CheckpointOf(state), CheckpointRecorder.WeightsFile);
        string fix = (state.BestEpoch == state.EpochsCompleted ? $"copy {checkpointWeights} (epoch {state.BestEpoch}'s weights) to it" : "restore it from a copy")
            + ", or start a new run";
        if (!File.Exists(Run.BestFile))
            throw new VlsmException($"{Run.BestFile} is missing, but {Run.StateFile} records the best weights (epoch {state.BestEpoch}) there; nothing was trained. To resume, {fix}.");
        try
        {
            Model.LoadInto(Run.BestFile);
        }
        catch (VlsmException e)
        {
            throw new VlsmException($"{Run.BestFile}, the run's best weights (epoch {state.BestEpoch}), does not load: {e.Message.TrimEnd('.')}. Nothing was trained. To resume, {fix}.", e);
        }
    }

    /// <summary>Weights, optimizer, schedules and metrics rows as the run's last committed epoch left them.</summary>
    private List<EpochMetrics> Restore(ReduceLrOnPlateau plateau, EarlyStopping early)
    {
        string checkpoint = Run.CheckpointOf(state);
        Model.LoadInto(Path.Combine(checkpoint, CheckpointRecorder.WeightsFile));
        using (var opt = SafetensorsFile.Open(Path.Combine(checkpoint, CheckpointRecorder.OptimizerFile)))
            Optimizer.Restore(state.OptimizerStep, opt.LoadAll());
        Optimizer.LearningRate = state.Lr;
        plateau.Restore(state.PlateauBest ?? double.PositiveInfinity, state.PlateauBadEpochs);
        early.Restore(state.EarlyStoppingBest ?? double.NegativeInfinity, state.EarlyStoppingWait);
        Run.PruneCheckpoints(checkpoint);
        Observer.Message($"resuming {Run.Path} after epoch {state.EpochsCompleted}");
        var rows = Run.ReadMetrics().Take(state.EpochsCompleted).ToList();
        if (state.Metrics is { } kept && kept.Count == state.EpochsCompleted)
        {
            var fromState = kept.Select((line, i) => EpochMetrics.Parse(line, Run.StateFile, i + 1)).ToList();
            if (rows.Count < state.EpochsCompleted)
            {
                Observer.Message($"{Run.MetricsFile} {(File.Exists(Run.MetricsFile) ? $"holds {rows.Count} of {state.EpochsCompleted} completed epochs" : "is missing")}; rebuilt from state.json.");
                Run.WriteMetrics(fromState);
            }
            return fromState;
        }
        if (rows.Count < state.EpochsCompleted)
            throw new VlsmException($"{Run.MetricsFile} {(File.Exists(Run.MetricsFile) ? $"holds {rows.Count} rows" : "is missing")}, but the run completed {state.EpochsCompleted} epochs and its state.json (from an older vlsm) keeps no copy; restore metrics.csv, or start a new run.");
        return rows;
    }

    /// <summary>One pass over the training split; the mean loss per sample.</summary>
    private double TrainEpoch(LoadReport skipped, Stopwatch clock, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        Model.SetTraining(true);
        // Dropout (CRIS's decoder) draws from a generator seeded per epoch, so a resumed run draws what an uninterrupted one would.
        manual_seed(Plan.Seed + 1 + epoch);
        Observer.EpochStarted(epoch, Plan.Schedule.MaxEpochs, trainLoader!.BatchCount);
        double sum = 0;
        int count = 0;
        step = 0;
        foreach (var batch in trainLoader.Epoch(epoch, skipped, cancellation))
        {
            double value = TrainStep(batch);
            sum += value * batch.Count;
            count += batch.Count;
            step++;
            Observer.StepCompleted(epoch, step, trainLoader.BatchCount, value, Optimizer.LearningRate, count / clock.Elapsed.TotalSeconds);
        }
        Optimizer.ZeroGrad();
        if (epoch == state.EpochsCompleted && skipped.SkippedCount > 0)
            Observer.Message($"skipped {skipped.SkippedCount} unusable training record(s) (--on-error skip), e.g. {skipped.Skipped[0].Id.ImgName}: {skipped.Skipped[0].Reason}");
        return sum / Math.Max(count, 1);
    }

    /// <summary>
    /// Writes the epoch (recorders that resume depends on), then state.json, the commit point: a run
    /// killed before it resumes from the previous epoch. Then the logs and the observer.
    /// </summary>
    private void Commit(EpochRecord record, ReduceLrOnPlateau plateau, EarlyStopping early, bool finished, string stopReason)
    {
        foreach (var recorder in Recorders.Where(r => r.BeforeCommit)) recorder.EpochCompleted(record);
        state = new TrainingState
        {
            EpochsCompleted = record.Epoch + 1,
            Checkpoint = Path.GetRelativePath(Run.Path, record.CheckpointDir),
            Lr = Optimizer.LearningRate,
            PlateauBest = double.IsFinite(plateau.Best) ? plateau.Best : null,
            PlateauBadEpochs = plateau.BadEpochs,
            EarlyStoppingBest = double.IsFinite(early.Best) ? early.Best : null,
            EarlyStoppingWait = early.Wait,
            BestEpoch = record.Best ? record.Epoch + 1 : state.BestEpoch,
            OptimizerStep = Optimizer.Step,
            GlobalStep = state.GlobalStep + step,
            Finished = finished,
            StopReason = finished ? stopReason : null,
            StartValDice = state.StartValDice,
            Metrics = record.Rows.Select(r => r.ToCsv()).ToList(),
        };
        Run.WriteState(state);
        Run.PruneCheckpoints(record.CheckpointDir);
        foreach (var recorder in Recorders.Where(r => !r.BeforeCommit)) recorder.EpochCompleted(record);
        // Validation and checkpointing leave freed native blocks behind; hand them back so RSS stays flat across epochs.
        Vlsm.Tensors.NativeHeap.ReturnFreeMemory();
        Observer.EpochCompleted(record.Metrics, record.Best);
    }

    private ValidationResult Validate(BatchLoader loader, CancellationToken cancellation)
    {
        Model.SetTraining(false);
        double lossSum = 0, diceSum = 0, iouSum = 0;
        int n = 0;
        // Validation prompts come from epoch 0's draw every time so epochs are compared on the same task.
        foreach (var batch in loader.Epoch(0, cancellation: cancellation))
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            var (logits, target) = Forward(batch);
            lossSum += Loss.Compute(logits, target).item<float>() * batch.Count;
            var predicted = MaskRule.Foreground(logits, MaskRule.DefaultThreshold).contiguous().data<bool>().ToArray();
            var truth = KeptScalarsGreaterThanHalf(target).contiguous().data<bool>().ToArray();
            int plane = (int)(logits.shape[^2] * logits.shape[^1]);
            for (int i = 0; i < batch.Count; i++)
            {
                var p = predicted.AsSpan(i * plane, plane);
                var t = truth.AsSpan(i * plane, plane);
                diceSum += SegmentationMetrics.Dice(p, t);
                iouSum += SegmentationMetrics.IoU(p, t);
            }
            n += batch.Count;
        }
        return new ValidationResult(lossSum / n, diceSum / n, iouSum / n);
    }

    private static Tensor KeptScalarsGreaterThanHalf(Tensor target) => Tensors.KeptScalars.GreaterThan(target, 0.5);

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
    }
}

/// <summary>One completed epoch, as the recorders see it.</summary>
/// <param name="CheckpointDir">The folder this epoch's checkpoint goes to.</param>
public sealed record EpochRecord(int Epoch, EpochMetrics Metrics, bool Best, IReadOnlyList<EpochMetrics> Rows, string CheckpointDir, TrainingSession Session);

/// <summary>Writes something after each epoch: checkpoints, metrics, curves, TensorBoard events.</summary>
public interface ITrainingRecorder
{
    /// <summary>Whether what it writes must exist before state.json names the epoch (resume depends on it).</summary>
    bool BeforeCommit { get; }

    void EpochCompleted(EpochRecord record);
}

/// <summary>The epoch's weights and optimizer state (what resume reads), and best/last weights.</summary>
public sealed class CheckpointRecorder : ITrainingRecorder
{
    public const string WeightsFile = "weights.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";

    public bool BeforeCommit => true;

    public void EpochCompleted(EpochRecord record)
    {
        var session = record.Session;
        Directory.CreateDirectory(record.CheckpointDir);
        var metadata = new Dictionary<string, string> { ["epoch"] = (record.Epoch + 1).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        BaseWeights.Record(metadata, session.Plan.Model.Directory); // which base these weights were trained on (#20 item 3)
        session.Model.Save(Path.Combine(record.CheckpointDir, WeightsFile), metadata);
        SafetensorsWriter.Save(Path.Combine(record.CheckpointDir, OptimizerFile), session.Optimizer.StateTensors());
        if (record.Best) session.Model.Save(session.Run.BestFile, metadata);
        session.Model.Save(session.Run.LastFile, metadata);
    }
}

/// <summary>metrics.csv and curves.png, rewritten atomically after each epoch.</summary>
public sealed class MetricsRecorder : ITrainingRecorder
{
    public bool BeforeCommit => true;

    public void EpochCompleted(EpochRecord record)
    {
        record.Session.Run.WriteMetrics(record.Rows);
        record.Session.Run.WriteCurves(record.Rows);
    }
}

/// <summary>TensorBoard scalars (an append-only event log, written after the commit point).</summary>
public sealed class TensorBoardRecorder(RunFolder run) : ITrainingRecorder
{
    private readonly Lazy<TorchSharp.Modules.SummaryWriter> writer = new(() => torch.utils.tensorboard.SummaryWriter(run.TensorBoardDir));

    public bool BeforeCommit => false;

    public void EpochCompleted(EpochRecord record)
    {
        var w = writer.Value;
        var m = record.Metrics;
        int step = record.Epoch + 1; // epochs are numbered from 1 in every file
        w.add_scalar("loss/train", (float)m.TrainLoss, step);
        w.add_scalar("loss/val", (float)m.ValLoss, step);
        w.add_scalar("val/dice", (float)m.ValDice, step);
        w.add_scalar("val/iou", (float)m.ValIoU, step);
        w.add_scalar("lr", (float)m.Lr, step);
    }
}
