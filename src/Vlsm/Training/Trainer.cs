using Vlsm.Data;
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

    /// <param name="data">Datasets already open (a sweep trains several models on them); else opened from the config.</param>
    public Trainer(TrainConfig config, RunFolder run, ITrainingObserver observer, PooledDataset? data = null)
    {
        this.config = config;
        this.run = run;
        this.observer = observer;
        this.data = data;
    }

    /// <summary>Standard augmentation when <c>augment: true</c> (the reference trains without).</summary>
    public static AugmentOptions DefaultAugmentation => TrainingSession.DefaultAugmentation;

    public TrainResult Run(bool resume, CancellationToken cancellation = default)
    {
        var plan = TrainingPlan.Resolve(config);
        ITrainableModel model = TrainingSession.Open(plan, run);
        TrainingSession session;
        try
        {
            session = new TrainingSession(plan, model, run, observer, data);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        using (session) return session.RunEpochs(resume, config.ToYaml(), cancellation);
    }
}
