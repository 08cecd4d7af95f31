namespace Vlsm.Training;

/// <summary>
/// PyTorch's ReduceLROnPlateau in "min" mode with a relative threshold: after more than
/// <see cref="Patience"/> epochs without the metric dropping below best·(1 − threshold), the
/// learning rate is multiplied by <see cref="Factor"/>.
/// </summary>
public sealed class ReduceLrOnPlateau
{
    public ReduceLrOnPlateau(double factor = 0.3, int patience = 5, double threshold = 1e-4, double minLr = 0)
    {
        Factor = factor;
        Patience = patience;
        Threshold = threshold;
        MinLr = minLr;
    }

    public double Factor { get; }
    public int Patience { get; }
    public double Threshold { get; }
    public double MinLr { get; }
    public double Best { get; private set; } = double.PositiveInfinity;
    public int BadEpochs { get; private set; }

    /// <summary>Returns the learning rate to use next.</summary>
    public double Step(double metric, double lr)
    {
        if (metric < Best * (1 - Threshold))
        {
            Best = metric;
            BadEpochs = 0;
        }
        else
        {
            BadEpochs++;
        }
        if (BadEpochs > Patience)
        {
            BadEpochs = 0;
            return Math.Max(lr * Factor, MinLr);
        }
        return lr;
    }

    public void Restore(double best, int badEpochs)
    {
        Best = best;
        BadEpochs = badEpochs;
    }
}

/// <summary>
/// Early stopping on a metric to maximise (validation Dice), as Lightning's EarlyStopping:
/// an epoch improves when metric − minDelta &gt; best; stop after <see cref="Patience"/> epochs without.
/// </summary>
public sealed class EarlyStopping
{
    public EarlyStopping(int patience = 20, double minDelta = 1e-4)
    {
        Patience = patience;
        MinDelta = minDelta;
    }

    public int Patience { get; }
    public double MinDelta { get; }
    public double Best { get; private set; } = double.NegativeInfinity;
    public int Wait { get; private set; }

    /// <summary>Records an epoch's metric; returns true when it is a new best.</summary>
    public bool Observe(double metric)
    {
        if (metric - MinDelta > Best)
        {
            Best = metric;
            Wait = 0;
            return true;
        }
        Wait++;
        return false;
    }

    public bool ShouldStop => Wait >= Patience;

    public void Restore(double best, int wait)
    {
        Best = best;
        Wait = wait;
    }
}
