namespace Vlsm.Training;

/// <summary>The libtorch thread count a training run may be given (<c>--threads</c>).</summary>
public static class TrainingThreads
{
    /// <summary>
    /// 4 per core, and never fewer than 64: enough to repeat a run made with a big machine's thread
    /// count (results depend on it), while thousands only oversubscribe the cores (1000 threads made a
    /// 2-second run take 25 s; 100000 never got past starting them).
    /// </summary>
    public static int Max => Math.Max(64, 4 * Environment.ProcessorCount);

    /// <summary>Returns <paramref name="threads"/> when it is within 1..<see cref="Max"/>.</summary>
    /// <param name="option">The option it came from, for the message.</param>
    /// <exception cref="VlsmException">Out of range; the message names the option, the value and the range.</exception>
    public static int Check(int threads, string option = "--threads")
    {
        if (threads < 1 || threads > Max)
            throw new VlsmException($"{option} {threads}: give at least 1 and at most {Max} (4 per core on this machine's {Environment.ProcessorCount}, and at least 64); the default is the cores.");
        return threads;
    }
}
