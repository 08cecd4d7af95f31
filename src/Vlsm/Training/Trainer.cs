using Vlsm.Data;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Training;

/// <summary>
/// A training run from its config, as <c>vlsm train</c> runs it: resolve the plan, open the model
/// through its family and the datasets, and run a <see cref="TrainingSession"/> to the end.
/// </summary>
public sealed class Trainer
{
    private readonly TrainConfig config;
    private readonly RunFolder run;
    private readonly ITrainingObserver observer;
    private readonly PooledDataset? data;
    private readonly FolderLock? heldLock;

    /// <param name="data">Datasets already open (a sweep trains several models on them); else opened from the config, with its <c>follow_symlinks</c>.</param>
    /// <param name="runLock">The run folder's lock, when the caller took it already (<c>vlsm train</c> takes it before checking the folder); else <see cref="Run"/> takes it.</param>
    public Trainer(TrainConfig config, RunFolder run, ITrainingObserver observer, PooledDataset? data = null, FolderLock? runLock = null)
    {
        if (runLock is not null && runLock.Folder != run.Path)
            throw new ArgumentException($"the lock is on {runLock.Folder}, not on the run folder {run.Path}", nameof(runLock));
        this.config = config;
        this.run = run;
        this.observer = observer;
        this.data = data;
        heldLock = runLock;
    }

    /// <summary>Resume although the datasets differ from what the run recorded when it started (<c>--allow-data-change</c>).</summary>
    public bool AllowDataChange { get; init; }

    /// <summary>Standard augmentation when <c>augment: true</c> (the reference trains without).</summary>
    public static AugmentOptions DefaultAugmentation => TrainingSession.DefaultAugmentation;

    /// <summary>
    /// Trains (or resumes) the run, holding its folder's lock (<see cref="FolderLock"/>) throughout: a
    /// second process on the same folder is refused, naming this one's PID.
    /// </summary>
    public TrainResult Run(bool resume, CancellationToken cancellation = default)
    {
        // The plan is checked first: refused settings must leave no run folder behind (taking the lock creates it).
        var plan = TrainingPlan.Resolve(config);
        using var folderLock = heldLock is null ? FolderLock.Acquire(run.Path, "train") : null;
        ITrainableModel model = TrainingSession.Open(plan, run);
        TrainingSession session;
        try
        {
            // The run's follow_symlinks, not the process default: a resumed run reads its datasets as it started.
            var datasets = data ?? PooledDataset.Open(plan.Data.Roots, plan.Data.FollowSymlinks);
            session = new TrainingSession(plan, model, run, observer, datasets) { AllowDataChange = AllowDataChange };
        }
        catch
        {
            model.Dispose();
            throw;
        }
        using (session) return session.RunEpochs(resume, config.ToYaml(), cancellation);
    }
}
