namespace Vlsm.Apps.Demo;

/// <summary>One stage of a demo run as planned before it starts.</summary>
/// <param name="Title">What the observer's <see cref="IDemoObserver.Stage"/> will be told.</param>
/// <param name="EstimatedSeconds">Its expected wall time on the machine the README was measured on (a relative weight: the ETA rescales it by the speed measured so far).</param>
/// <param name="Training">Whether the stage runs the trainer (then it reports epochs and steps).</param>
public sealed record DemoStagePlan(string Title, double EstimatedSeconds, bool Training);

/// <summary>
/// Estimates of the time left in the current stage and in the whole demo. Each stage has an
/// expected duration (<see cref="DemoStagePlan.EstimatedSeconds"/>); the work done is the sum of the
/// finished stages' estimates plus the current stage's estimate times its completed fraction, and
/// the time left is the estimated work left times the measured seconds per estimated second, so a
/// machine twice as slow as the reference gets twice the reference's remaining time. The clock is
/// given, so the arithmetic can be checked without waiting.
/// </summary>
public sealed class DemoEta
{
    /// <summary>Reference seconds that weigh the initial guess (speed factor 1) against the measured speed.</summary>
    private const double PriorSeconds = 10;

    private readonly IReadOnlyList<DemoStagePlan> stages;
    private readonly Func<TimeSpan> clock;
    private readonly TimeSpan start;
    private TimeSpan stageStart;
    private double fraction;
    private (TimeSpan Time, double Fraction)? firstProgress;

    public DemoEta(IReadOnlyList<DemoStagePlan> stages, Func<TimeSpan> clock)
    {
        ArgumentNullException.ThrowIfNull(stages);
        ArgumentNullException.ThrowIfNull(clock);
        this.stages = stages;
        this.clock = clock;
        start = stageStart = clock();
        Index = -1;
    }

    /// <summary>Index of the current stage in the plan; -1 before the first.</summary>
    public int Index { get; private set; }

    public int Count => stages.Count;

    public DemoStagePlan? Current => Index >= 0 && Index < stages.Count ? stages[Index] : null;

    public TimeSpan Elapsed => clock() - start;

    /// <summary>The next stage starts (stages are announced in the plan's order).</summary>
    public void NextStage()
    {
        Index++;
        fraction = 0;
        firstProgress = null;
        stageStart = clock();
    }

    /// <summary>The completed fraction (0 to 1) of the current stage.</summary>
    public void Progress(double completed)
    {
        fraction = Math.Clamp(completed, 0, 1);
        firstProgress ??= (clock(), fraction);
    }

    private double EstimateOf(int i) => i >= 0 && i < stages.Count ? Math.Max(stages[i].EstimatedSeconds, 0) : 0;

    /// <summary>Reference seconds of work finished, the current stage's completed fraction included.</summary>
    private double Done()
    {
        double done = 0;
        for (int i = 0; i < Math.Min(Index, stages.Count); i++) done += EstimateOf(i);
        return done + EstimateOf(Index) * fraction;
    }

    /// <summary>Measured seconds per reference second, pulled towards 1 while little work is done.</summary>
    public double SpeedFactor => (Elapsed.TotalSeconds + PriorSeconds) / (Done() + PriorSeconds);

    /// <summary>Time left in the whole demo.</summary>
    public TimeSpan Remaining()
    {
        double total = 0;
        for (int i = 0; i < stages.Count; i++) total += EstimateOf(i);
        return TimeSpan.FromSeconds(Math.Max(total - Done(), 0) * SpeedFactor);
    }

    /// <summary>
    /// Time left in the current stage: from its own pace since its first progress report (so the
    /// set-up before the first step does not count as slowness) once it has advanced since, else its
    /// estimate times the speed factor, less the time spent in it.
    /// </summary>
    public TimeSpan StageRemaining()
    {
        var now = clock();
        if (fraction >= 1) return TimeSpan.Zero;
        if (firstProgress is { } first && fraction > first.Fraction)
            return TimeSpan.FromSeconds((now - first.Time).TotalSeconds / (fraction - first.Fraction) * (1 - fraction));
        return TimeSpan.FromSeconds(Math.Max(EstimateOf(Index) * SpeedFactor - (now - stageStart).TotalSeconds, 0));
    }

    /// <summary>"1:05:09", "4:58", "0:07": hours only when needed.</summary>
    public static string Format(TimeSpan t)
    {
        long s = (long)Math.Round(Math.Max(t.TotalSeconds, 0));
        return s >= 3600 ? $"{s / 3600}:{s / 60 % 60:00}:{s % 60:00}" : $"{s / 60}:{s % 60:00}";
    }
}
