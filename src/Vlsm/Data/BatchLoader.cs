using System.Runtime.ExceptionServices;

namespace Vlsm.Data;

public sealed record BatchLoaderOptions
{
    public int BatchSize { get; init; } = 8;

    /// <summary>Shuffle the records each epoch (order from <see cref="Seed"/> and the epoch); otherwise file order.</summary>
    public bool Shuffle { get; init; } = true;

    public long Seed { get; init; }

    /// <summary>Threads decoding and resizing; training needs the other cores.</summary>
    public int Workers { get; init; } = DefaultWorkers;

    /// <summary>Batches prepared ahead of the one the consumer holds; bounds memory to (this + 1) batches.</summary>
    public int PrefetchBatches { get; init; } = 2;

    /// <summary>Leave out a last batch smaller than <see cref="BatchSize"/>.</summary>
    public bool DropLast { get; init; }

    public static int DefaultWorkers => Math.Clamp(Environment.ProcessorCount / 2, 1, 8);

    /// <exception cref="VlsmException">A value is out of range.</exception>
    public void Validate()
    {
        if (BatchSize < 1) throw new VlsmException($"The batch size must be at least 1, got {BatchSize}.");
        if (Workers < 1) throw new VlsmException($"The loader needs at least 1 worker, got {Workers}.");
        if (PrefetchBatches < 1) throw new VlsmException($"The loader must prefetch at least 1 batch, got {PrefetchBatches}.");
    }
}

/// <summary>
/// B samples stacked for the model: <see cref="Images"/> is B×3×H×W and <see cref="Masks"/> B×H×W,
/// row-major float32, ready to wrap as tensors.
/// </summary>
public sealed class Batch
{
    /// <summary>Position of this batch in its epoch (0, 1, …).</summary>
    public required int Index { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    public required float[] Images { get; init; }
    public required float[] Masks { get; init; }
    public required IReadOnlyList<string> Prompts { get; init; }
    public required IReadOnlyList<RecordId> Records { get; init; }

    /// <summary>Each mask's size as stored, for evaluating predictions at full resolution.</summary>
    public required IReadOnlyList<(int Width, int Height)> OriginalSizes { get; init; }

    /// <summary>Samples in the batch; fewer than the batch size for the last batch or when records were skipped.</summary>
    public int Count => Records.Count;
}

/// <summary>
/// Loads batches of samples with a few worker threads ahead of the consumer.
/// </summary>
/// <remarks>
/// The epoch's order is fixed first (a seeded shuffle); workers then take sample positions in
/// that order and write each sample into its slot of its batch, and batches are handed out in
/// order. Every sample depends only on its record, the seed and the epoch, so the batches are the
/// same whichever thread finishes first. Workers never run more than
/// <see cref="BatchLoaderOptions.PrefetchBatches"/> batches ahead. Disposing the enumeration
/// (leaving a <c>foreach</c>) or cancelling stops and joins the workers.
/// </remarks>
public sealed class BatchLoader
{
    public IReadOnlyList<DatasetRecord> Records { get; }
    public SampleLoader Samples { get; }
    public BatchLoaderOptions Options { get; }

    public BatchLoader(IReadOnlyList<DatasetRecord> records, SampleLoader samples, BatchLoaderOptions options)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Records = records;
        Samples = samples;
        Options = options;
    }

    private int _runningWorkers;

    /// <summary>Worker threads alive now, over all enumerations (0 once every enumeration has ended or been disposed).</summary>
    internal int RunningWorkers => Volatile.Read(ref _runningWorkers);

    /// <summary>Batches per epoch (before any records are skipped).</summary>
    /// <remarks>Counted without adding the batch size to the record count, which overflows for a batch size near <see cref="int.MaxValue"/> (a batch larger than the split is the whole split).</remarks>
    public int BatchCount => Records.Count / Options.BatchSize + (Options.DropLast || Records.Count % Options.BatchSize == 0 ? 0 : 1);

    /// <summary>Positions in <see cref="Records"/> in the order <paramref name="epoch"/> visits them.</summary>
    public int[] Order(int epoch)
    {
        var order = Enumerable.Range(0, Records.Count).ToArray();
        if (!Options.Shuffle) return order;
        var rng = StableRng.For(Options.Seed, epoch, RngPurpose.Shuffle);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>
    /// The batches of one epoch. Workers start when enumeration starts. Skipped records
    /// (<see cref="OnError.Skip"/>) are counted in <paramref name="report"/> and leave their batch
    /// smaller; a batch whose records were all skipped is not yielded.
    /// </summary>
    /// <exception cref="VlsmException">A record cannot be loaded (the first in epoch order within the failing batch).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was cancelled.</exception>
    public IEnumerable<Batch> Epoch(int epoch, LoadReport? report = null, CancellationToken cancellation = default)
    {
        using var run = new EpochRun(this, epoch, report, cancellation);
        run.Start();
        for (int b = 0; b < run.BatchCount; b++)
        {
            var batch = run.Take(b);
            if (batch is not null) yield return batch;
        }
    }

    /// <summary>The state of one epoch's enumeration: the order, the batches being filled, and the workers.</summary>
    private sealed class EpochRun : IDisposable
    {
        private readonly BatchLoader _owner;
        private readonly int _epoch;
        private readonly LoadReport? _report;
        private readonly CancellationToken _cancellation;
        private readonly int[] _order;
        private readonly int _batchSize;
        private readonly int _sampleCount;
        private readonly Pending?[] _pending;
        private readonly object _gate = new();
        private readonly List<Thread> _threads = [];
        private CancellationTokenRegistration _registration;
        private int _nextSample;
        private int _handedOut;
        private bool _stopping;

        public int BatchCount { get; }

        public EpochRun(BatchLoader owner, int epoch, LoadReport? report, CancellationToken cancellation)
        {
            _owner = owner;
            _epoch = epoch;
            _report = report;
            _cancellation = cancellation;
            _order = owner.Order(epoch);
            _batchSize = owner.Options.BatchSize;
            BatchCount = owner.BatchCount;
            _sampleCount = (int)Math.Min(_order.Length, (long)BatchCount * _batchSize);
            _pending = new Pending?[BatchCount];
        }

        public void Start()
        {
            _registration = _cancellation.Register(Stop);
            int workers = Math.Min(_owner.Options.Workers, Math.Max(_sampleCount, 1));
            for (int i = 0; i < workers; i++)
            {
                var thread = new Thread(Work) { IsBackground = true, Name = $"vlsm-loader-{i}" };
                _threads.Add(thread);
                thread.Start();
            }
        }

        /// <summary>Waits for batch <paramref name="b"/>, lets the workers move one batch further, and returns it (null if every record in it was skipped).</summary>
        public Batch? Take(int b)
        {
            Pending batch;
            lock (_gate)
            {
                _cancellation.ThrowIfCancellationRequested();
                while (_pending[b] is not { Remaining: 0 })
                {
                    _cancellation.ThrowIfCancellationRequested();
                    Monitor.Wait(_gate);
                }
                batch = _pending[b]!;
                _pending[b] = null;
                _handedOut = b + 1;
                Monitor.PulseAll(_gate);
            }
            return batch.Finish(b, _owner.Samples);
        }

        private void Work()
        {
            Interlocked.Increment(ref _owner._runningWorkers);
            try
            {
                WorkLoop();
            }
            finally
            {
                Interlocked.Decrement(ref _owner._runningWorkers);
            }
        }

        private void WorkLoop()
        {
            while (true)
            {
                int s;
                Pending batch;
                lock (_gate)
                {
                    while (!_stopping && _nextSample < _sampleCount && _nextSample / _batchSize >= _handedOut + _owner.Options.PrefetchBatches)
                        Monitor.Wait(_gate);
                    if (_stopping || _nextSample >= _sampleCount) return;
                    s = _nextSample++;
                    int b = s / _batchSize;
                    batch = _pending[b] ??= new Pending(Math.Min(_batchSize, _sampleCount - b * _batchSize), _owner.Samples);
                }

                int slot = s % _batchSize;
                var record = _owner.Records[_order[s]];
                try
                {
                    var info = _owner.Samples.LoadInto(record, _epoch, batch.ImageSlot(slot), batch.MaskSlot(slot), _report);
                    batch.Results[slot] = info is { } i ? SlotResult.Loaded(record.Id, i) : SlotResult.Skipped(record.Id);
                }
                catch (Exception e)
                {
                    // Kept for the consumer, which throws it when it reaches this batch: the error
                    // a run reports does not depend on which worker hit it first.
                    batch.Results[slot] = SlotResult.Failed(record.Id, ExceptionDispatchInfo.Capture(e));
                }

                lock (_gate)
                {
                    if (--batch.Remaining == 0) Monitor.PulseAll(_gate);
                }
            }
        }

        private void Stop()
        {
            lock (_gate)
            {
                _stopping = true;
                Monitor.PulseAll(_gate);
            }
        }

        public void Dispose()
        {
            Stop();
            _registration.Dispose();
            foreach (var thread in _threads) thread.Join();
        }
    }

    private readonly record struct SlotResult(RecordId Id, SampleLoader.LoadedInfo? Info, ExceptionDispatchInfo? Error)
    {
        public static SlotResult Loaded(RecordId id, SampleLoader.LoadedInfo info) => new(id, info, null);
        public static SlotResult Skipped(RecordId id) => new(id, null, null);
        public static SlotResult Failed(RecordId id, ExceptionDispatchInfo error) => new(id, null, error);
    }

    /// <summary>A batch being filled: one slot per sample, written by whichever worker loads it.</summary>
    private sealed class Pending
    {
        private readonly int _imagePlane;
        private readonly int _maskPlane;

        public float[] Images { get; }
        public float[] Masks { get; }
        public SlotResult[] Results { get; }
        public int Remaining { get; set; }

        public Pending(int size, SampleLoader samples)
        {
            _maskPlane = samples.Width * samples.Height;
            _imagePlane = 3 * _maskPlane;
            Images = new float[(long)size * _imagePlane];
            Masks = new float[(long)size * _maskPlane];
            Results = new SlotResult[size];
            Remaining = size;
        }

        public Span<float> ImageSlot(int slot) => Images.AsSpan(slot * _imagePlane, _imagePlane);

        public Span<float> MaskSlot(int slot) => Masks.AsSpan(slot * _maskPlane, _maskPlane);

        public Batch? Finish(int index, SampleLoader samples)
        {
            foreach (var result in Results) result.Error?.Throw();
            var kept = Enumerable.Range(0, Results.Length).Where(i => Results[i].Info is not null).ToArray();
            if (kept.Length == 0) return null;
            float[] images = Images, masks = Masks;
            if (kept.Length < Results.Length)
            {
                // Records were skipped: close the gaps so the arrays stay B×3×H×W and B×H×W.
                images = new float[(long)kept.Length * _imagePlane];
                masks = new float[(long)kept.Length * _maskPlane];
                for (int k = 0; k < kept.Length; k++)
                {
                    ImageSlot(kept[k]).CopyTo(images.AsSpan(k * _imagePlane, _imagePlane));
                    MaskSlot(kept[k]).CopyTo(masks.AsSpan(k * _maskPlane, _maskPlane));
                }
            }
            return new Batch
            {
                Index = index,
                Width = samples.Width,
                Height = samples.Height,
                Images = images,
                Masks = masks,
                Prompts = kept.Select(i => Results[i].Info!.Value.Prompt).ToArray(),
                Records = kept.Select(i => Results[i].Id).ToArray(),
                OriginalSizes = kept.Select(i => (Results[i].Info!.Value.OriginalWidth, Results[i].Info!.Value.OriginalHeight)).ToArray(),
            };
        }
    }
}
