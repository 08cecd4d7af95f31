using System.Threading.Channels;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.Models;

namespace Vlsm.Server;

/// <summary>One request's work: an image and its prompts (one null prompt for a text-free model).</summary>
internal sealed class SegmentJob(RgbImage image, IReadOnlyList<string?> prompts)
{
    public RgbImage Image { get; } = image;
    public IReadOnlyList<string?> Prompts { get; } = prompts;
    public TaskCompletionSource<IReadOnlyList<Prediction>> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>How many requests a model queue holds and how large a batch it forms.</summary>
public sealed record QueueSettings(int Capacity = 64, int MaxBatch = 8, int BatchWindowMilliseconds = 4)
{
    /// <exception cref="VlsmException">A value below 1 (or a negative window).</exception>
    public void Validate()
    {
        if (Capacity < 1) throw new VlsmException($"--queue must be at least 1, got {Capacity}.");
        if (MaxBatch < 1) throw new VlsmException($"--max-batch must be at least 1, got {MaxBatch}.");
        if (BatchWindowMilliseconds < 0) throw new VlsmException($"the batch window must be at least 0 ms, got {BatchWindowMilliseconds}.");
    }
}

/// <summary>
/// A model loaded once and kept in memory, with a bounded queue in front of it. One worker thread
/// takes a request, waits a few milliseconds for others to arrive, and runs up to
/// <see cref="QueueSettings.MaxBatch"/> (image, prompt) pairs in one forward pass (each image
/// encoded once); a full queue turns requests away (HTTP 429) rather than letting memory grow.
/// </summary>
public sealed class ModelHost : IDisposable
{
    private readonly Channel<SegmentJob> queue;
    private readonly Thread worker;
    private readonly QueueSettings settings;
    private long batches, pairs;

    public ModelHost(string name, ISegmenter segmenter, ModelSummary summary, QueueSettings settings, string? weights = null)
    {
        Name = name;
        Weights = weights;
        Segmenter = segmenter;
        Summary = summary;
        this.settings = settings;
        queue = Channel.CreateBounded<SegmentJob>(new BoundedChannelOptions(settings.Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        worker = new Thread(Work) { IsBackground = true, Name = $"vlsm-serve-{name}" };
        worker.Start();
    }

    public string Name { get; }
    public ISegmenter Segmenter { get; }
    public ModelSummary Summary { get; }

    /// <summary>Parameters fine-tuning trains in each mode the family has (default adapter settings).</summary>
    public IReadOnlyDictionary<string, long?> TrainableByMode { get; init; } = new Dictionary<string, long?>();

    /// <summary>The trained weights loaded on top of the model folder, if any.</summary>
    public string? Weights { get; }

    /// <summary>Batches run and pairs computed so far (the batching gain is pairs / batches).</summary>
    public (long Batches, long Pairs) Counts => (Interlocked.Read(ref batches), Interlocked.Read(ref pairs));

    /// <summary>Requests waiting in the queue (not the batch being run).</summary>
    public int Queued => queue.Reader.Count;

    /// <summary>Queues a request; false when the queue is full.</summary>
    internal bool TryEnqueue(SegmentJob job) => queue.Writer.TryWrite(job);

    private void Work()
    {
        var reader = queue.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            var jobs = new List<SegmentJob>();
            int count = 0;
            var until = DateTime.UtcNow.AddMilliseconds(settings.BatchWindowMilliseconds);
            while (count < settings.MaxBatch)
            {
                if (reader.TryRead(out var job))
                {
                    jobs.Add(job);
                    count += job.Prompts.Count;
                    continue;
                }
                if (jobs.Count == 0 || DateTime.UtcNow >= until) break;
                Thread.Sleep(1);
            }
            if (jobs.Count > 0) Run(jobs);
        }
    }

    private void Run(List<SegmentJob> jobs)
    {
        try
        {
            var images = jobs.Select(j => j.Image).ToList();
            var work = jobs.SelectMany((j, i) => j.Prompts.Select(p => (i, p))).ToList();
            var predictions = Segmenter.PredictPairs(images, work);
            Interlocked.Increment(ref batches);
            Interlocked.Add(ref pairs, work.Count);
            int at = 0;
            foreach (var job in jobs)
            {
                job.Done.SetResult(predictions.Skip(at).Take(job.Prompts.Count).ToList());
                at += job.Prompts.Count;
            }
        }
        catch (Exception e)
        {
            foreach (var job in jobs) job.Done.TrySetException(e);
        }
    }

    public void Dispose()
    {
        queue.Writer.TryComplete();
        worker.Join(TimeSpan.FromSeconds(10));
        Segmenter.Dispose();
    }
}
