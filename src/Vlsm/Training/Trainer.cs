using System.Diagnostics;
using TorchSharp;
using Vlsm.Adapters;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.IO;
using Vlsm.Text;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

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

public sealed record TrainResult(int EpochsCompleted, int BestEpoch, double BestValDice, double? StartValDice, string StopReason, string RunDir);

/// <summary>
/// The VLSM-Adapter training recipe: AdamW, ReduceLROnPlateau on validation loss, early
/// stopping on validation Dice, gradient clipping, best-validation-Dice weights as the result.
/// Every completed epoch is checkpointed, so <c>--resume</c> continues exactly where a run stopped.
/// </summary>
public sealed class Trainer
{
    private readonly TrainConfig config;
    private readonly RunFolder run;
    private readonly ITrainingObserver observer;

    public Trainer(TrainConfig config, RunFolder run, ITrainingObserver observer)
    {
        this.config = config;
        this.run = run;
        this.observer = observer;
    }

    /// <summary>Standard augmentation when <c>augment: true</c> (the reference trains without).</summary>
    public static AugmentOptions DefaultAugmentation { get; } = new()
    {
        HorizontalFlipProbability = 0.5, VerticalFlipProbability = 0.5, MaxRotationDegrees = 15, MaxScaleChange = 0.1,
        Brightness = 0.1, Contrast = 0.1, Saturation = 0.1,
    };

    public TrainResult Run(bool resume, CancellationToken cancellation = default)
    {
        config.Validate();
        manual_seed(config.Seed);

        using var model = TrainableSegmenters.Open(config, run);
        var preprocessor = model.Preprocessor;

        var data = PooledDataset.Open(config.Data);
        var trainRecords = data.RequiredRecords(config.TrainSplit);
        var valRecords = data.RequiredRecords(config.ValSplit);
        if (trainRecords.Count == 0) throw new VlsmException($"split \"{config.TrainSplit}\" has no records in {string.Join(", ", config.Data)}.");
        if (valRecords.Count == 0)
            throw new VlsmException($"split \"{config.ValSplit}\" has no records in {string.Join(", ", config.Data)}; validation picks the best epoch and drives early stopping, so a run needs one.");

        var sampleOptions = new SampleOptions
        {
            MaskMode = config.MaskThreshold == "soft" ? MaskMode.Soft : MaskMode.Binary,
            MaskThreshold = config.MaskThreshold == "soft" ? 127 : int.Parse(config.MaskThreshold),
            Augment = config.Augment ? DefaultAugmentation : AugmentOptions.None,
            OnError = config.OnError == "skip" ? OnError.Skip : OnError.Fail,
            Seed = config.Seed,
        };
        var prompt = PromptChoice.Parse(config.Prompt);
        var trainLoader = new BatchLoader(trainRecords, new SampleLoader(preprocessor, sampleOptions, prompt),
            new BatchLoaderOptions { BatchSize = config.BatchSize, Shuffle = true, Seed = config.Seed });
        var valLoader = new BatchLoader(valRecords, new SampleLoader(preprocessor, sampleOptions with { Augment = AugmentOptions.None }, prompt),
            new BatchLoaderOptions { BatchSize = config.BatchSize, Shuffle = false, Seed = config.Seed });

        using var optimizer = new AdamW(model.TrainableNamed(), config.Lr, config.Beta1, config.Beta2, config.Eps, config.WeightDecay);
        var plateau = new ReduceLrOnPlateau(config.PlateauFactor, config.PlateauPatience, config.PlateauThreshold);
        var early = new EarlyStopping(config.EarlyStoppingPatience, config.EarlyStoppingMinDelta);
        var loss = new DiceBceLoss(config.BceInput);
        var rows = new List<EpochMetrics>();
        var state = new TrainingState { Lr = config.Lr };

        Directory.CreateDirectory(run.Path);
        if (resume)
        {
            state = run.ReadState();
            if (state.Finished)
            {
                observer.Message($"{run.Path} already finished ({state.StopReason}); nothing to resume.");
                return new TrainResult(state.EpochsCompleted, state.BestEpoch, state.EarlyStoppingBest ?? double.NaN, state.StartValDice, state.StopReason ?? "finished", run.Path);
            }
            string checkpoint = run.File(state.Checkpoint);
            model.LoadInto(Path.Combine(checkpoint, "weights.safetensors"));
            using (var opt = SafetensorsFile.Open(Path.Combine(checkpoint, "optimizer.safetensors")))
                optimizer.Restore(state.OptimizerStep, opt.LoadAll());
            optimizer.LearningRate = state.Lr;
            plateau.Restore(state.PlateauBest ?? double.PositiveInfinity, state.PlateauBadEpochs);
            early.Restore(state.EarlyStoppingBest ?? double.NegativeInfinity, state.EarlyStoppingWait);
            rows = run.ReadMetrics().Take(state.EpochsCompleted).ToList();
            run.PruneCheckpoints(checkpoint);
            observer.Message($"resuming {run.Path} after epoch {state.EpochsCompleted}");
        }
        else
        {
            AtomicFile.WriteAllText(run.ConfigFile, config.ToYaml());
        }

        observer.RunStarted($"{model.Description} on {string.Join(", ", data.Datasets.Select(d => d.Name))}: {trainRecords.Count} train / {valRecords.Count} val records, " +
            $"{model.TrainableParameterCount:N0} trainable parameters ({100.0 * model.TrainableParameterCount / model.TotalParameterCount:0.00} %)");
        var tensorboard = torch.utils.tensorboard.SummaryWriter(run.TensorBoardDir);
        if (!resume)
        {
            // The untrained model's validation score: the baseline every epoch is compared with.
            var (startLoss, startDice, _) = Validate(model, valLoader, loss, cancellation);
            state = state with { StartValDice = startDice };
            observer.Message($"before training: val loss {startLoss:0.0000}, val Dice {startDice:0.0000}");
        }
        var skipped = new LoadReport();

        string stopReason = $"reached max_epochs {config.MaxEpochs}";
        for (int epoch = state.EpochsCompleted; epoch < config.MaxEpochs; epoch++)
        {
            cancellation.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            model.SetTraining(true);
            // Dropout (CRIS's decoder) draws from a generator seeded per epoch, so a resumed run draws what an uninterrupted one would.
            manual_seed(config.Seed + 1 + epoch);
            observer.EpochStarted(epoch, config.MaxEpochs, trainLoader.BatchCount);
            double trainSum = 0;
            int trainCount = 0, step = 0;
            long globalStep = state.GlobalStep;
            foreach (var batch in trainLoader.Epoch(epoch, skipped, cancellation))
            {
                double value;
                using (var scope = NewDisposeScope())
                {
                    var logits = model.Forward(batch, out var target);
                    var l = loss.Compute(logits, target);
                    value = l.item<float>();
                    if (!double.IsFinite(value))
                        throw new VlsmException($"epoch {epoch + 1}, step {step + 1}: the loss is {value}; stopping. The last good checkpoint ({(state.EpochsCompleted > 0 ? run.File(state.Checkpoint) : "none yet")}) is kept; try a lower --lr or check the data.");
                    optimizer.ZeroGrad();
                    l.backward();
                    nn.utils.clip_grad_norm_(optimizer.Parameters, config.GradClip);
                    optimizer.StepOnce();
                }
                trainSum += value * batch.Count;
                trainCount += batch.Count;
                step++;
                globalStep++;
                observer.StepCompleted(epoch, step, trainLoader.BatchCount, value, optimizer.LearningRate, trainCount / clock.Elapsed.TotalSeconds);
            }
            optimizer.ZeroGrad();
            if (epoch == state.EpochsCompleted && skipped.SkippedCount > 0)
                observer.Message($"skipped {skipped.SkippedCount} unusable training record(s) (--on-error skip), e.g. {skipped.Skipped[0].Id.ImgName}: {skipped.Skipped[0].Reason}");

            var (valLoss, valDice, valIoU) = Validate(model, valLoader, loss, cancellation);
            double lrUsed = optimizer.LearningRate;
            optimizer.LearningRate = plateau.Step(valLoss, optimizer.LearningRate);
            bool best = early.Observe(valDice);
            var metrics = new EpochMetrics(epoch, trainSum / Math.Max(trainCount, 1), valLoss, valDice, valIoU, lrUsed, clock.Elapsed.TotalSeconds);
            rows.Add(metrics);

            string checkpointDir = run.CheckpointDir(epoch + 1);
            Directory.CreateDirectory(checkpointDir);
            var epochMeta = new Dictionary<string, string> { ["epoch"] = epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            model.Save(Path.Combine(checkpointDir, "weights.safetensors"), epochMeta);
            SafetensorsWriter.Save(Path.Combine(checkpointDir, "optimizer.safetensors"), optimizer.StateTensors());
            if (best) model.Save(run.BestFile, epochMeta);
            model.Save(run.LastFile, epochMeta);
            run.WriteMetrics(rows);
            run.WriteCurves(rows);

            bool stop = epoch + 1 >= config.MinEpochs && early.ShouldStop;
            if (stop) stopReason = $"early stopping: validation Dice did not improve for {early.Wait} epochs";
            bool finished = stop || epoch + 1 == config.MaxEpochs;
            state = new TrainingState
            {
                EpochsCompleted = epoch + 1,
                Checkpoint = Path.GetRelativePath(run.Path, checkpointDir),
                Lr = optimizer.LearningRate,
                PlateauBest = double.IsFinite(plateau.Best) ? plateau.Best : null,
                PlateauBadEpochs = plateau.BadEpochs,
                EarlyStoppingBest = double.IsFinite(early.Best) ? early.Best : null,
                EarlyStoppingWait = early.Wait,
                BestEpoch = best ? epoch : state.BestEpoch,
                OptimizerStep = optimizer.Step,
                GlobalStep = globalStep,
                Finished = finished,
                StopReason = finished ? stopReason : null,
                StartValDice = state.StartValDice,
            };
            run.WriteState(state);
            run.PruneCheckpoints(checkpointDir);

            tensorboard.add_scalar("loss/train", (float)metrics.TrainLoss, epoch);
            tensorboard.add_scalar("loss/val", (float)valLoss, epoch);
            tensorboard.add_scalar("val/dice", (float)valDice, epoch);
            tensorboard.add_scalar("val/iou", (float)valIoU, epoch);
            tensorboard.add_scalar("lr", (float)lrUsed, epoch);
            observer.EpochCompleted(metrics, best);
            if (stop) break;
        }
        return new TrainResult(state.EpochsCompleted, state.BestEpoch, early.Best, state.StartValDice, state.StopReason ?? stopReason, run.Path);
    }

    /// <summary>Logits for a batch and the target at the logits' resolution.</summary>
    internal static Tensor Forward(AdaptedClipSeg model, CachedTowers towers, ClipTokenizer tokenizer, Batch batch, out Tensor target)
    {
        var (pixels, masks) = TrainableSegmenters.Tensors(batch);
        var tokens = tokenizer.EncodeBatch(batch.Prompts);
        var ids = tensor(tokens.InputIds, new long[] { tokens.BatchSize, tokens.Length });
        var attention = tensor(tokens.AttentionMask, new long[] { tokens.BatchSize, tokens.Length });
        using var vision = towers.Vision(pixels, TrainableSegmenters.RecordKeys(batch));
        using var text = towers.Text(ids, attention, batch.Prompts, p =>
        {
            var one = tokenizer.EncodeBatch(new[] { p });
            return (tensor(one.InputIds, new long[] { 1, one.Length }), tensor(one.AttentionMask, new long[] { 1, one.Length }));
        });
        var logits = model.Head(vision, text);
        // Models whose head outputs a coarser grid than the input (e.g. patch 8 with the complex
        // head) are trained against the mask resized (nearest) to the logits.
        target = TrainableSegmenters.TargetFor(logits, masks);
        return logits;
    }

    /// <summary>Mean loss, mean per-image Dice and IoU (threshold 0.5, network resolution) over the validation split.</summary>
    private static (double Loss, double Dice, double IoU) Validate(ITrainableSegmenter model, BatchLoader loader, DiceBceLoss loss, CancellationToken cancellation)
    {
        model.SetTraining(false);
        double lossSum = 0, diceSum = 0, iouSum = 0;
        int n = 0;
        // Validation prompts come from epoch 0's draw every time so epochs are compared on the same task.
        foreach (var batch in loader.Epoch(0, cancellation: cancellation))
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            var logits = model.Forward(batch, out var target);
            lossSum += loss.Compute(logits, target).item<float>() * batch.Count;
            var predicted = GreaterThan(logits, 0).contiguous().data<bool>().ToArray();
            var truth = GreaterThan(target, 0.5).contiguous().data<bool>().ToArray();
            int plane = (int)(logits.shape[1] * logits.shape[2]);
            for (int i = 0; i < batch.Count; i++)
            {
                var p = predicted.AsSpan(i * plane, plane);
                var t = truth.AsSpan(i * plane, plane);
                diceSum += SegmentationMetrics.Dice(p, t);
                iouSum += SegmentationMetrics.IoU(p, t);
            }
            n += batch.Count;
        }
        return (lossSum / n, diceSum / n, iouSum / n);
    }
}
