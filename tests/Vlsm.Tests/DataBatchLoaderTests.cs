using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Tests;

public sealed class DataBatchLoaderTests : IDisposable
{
    private readonly DataTestSet set = new();

    public void Dispose() => set.Dispose();

    private BatchLoader Loader(int count, int batchSize, int workers, long seed = 1, bool shuffle = true, OnError onError = OnError.Fail,
        string prompt = "random", int prefetch = 2)
    {
        if (!File.Exists(Path.Combine(set.Root, "anns", "train.json"))) set.WriteSimpleSplit("train", count, 12, 10);
        var records = MedvlsmDataset.Open(set.Root).Records("train");
        var samples = new SampleLoader(DataSampleLoaderTests.Half(8), new SampleOptions { Seed = seed, OnError = onError }, PromptChoice.Parse(prompt));
        return new BatchLoader(records, samples,
            new BatchLoaderOptions { BatchSize = batchSize, Workers = workers, Seed = seed, Shuffle = shuffle, PrefetchBatches = prefetch });
    }

    private static string Fingerprint(IEnumerable<Batch> batches) => string.Join("\n", batches.Select(b =>
        $"{b.Index}: {string.Join(",", b.Records.Select(r => r.Index))} | {string.Join(",", b.Prompts)} | "
        + $"{BitConverter.ToString(System.Security.Cryptography.SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.Images.AsSpan())))} "
        + $"{BitConverter.ToString(System.Security.Cryptography.SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.Masks.AsSpan())))}"));

    [Fact]
    public void SameSeedAndEpochGiveIdenticalBatchesWhateverTheWorkerCount()
    {
        string one = Fingerprint(Loader(23, 4, workers: 1).Epoch(3));
        string four = Fingerprint(Loader(23, 4, workers: 4, prefetch: 1).Epoch(3));
        string again = Fingerprint(Loader(23, 4, workers: 3, prefetch: 5).Epoch(3));
        Assert.Equal(one, four);
        Assert.Equal(one, again);
    }

    [Fact]
    public void DifferentEpochsShuffleDifferentlyAndEveryRecordAppearsOnce()
    {
        var loader = Loader(23, 4, workers: 2);
        var e0 = loader.Epoch(0).SelectMany(b => b.Records.Select(r => r.Index)).ToArray();
        var e1 = loader.Epoch(1).SelectMany(b => b.Records.Select(r => r.Index)).ToArray();
        Assert.NotEqual(e0, e1);
        Assert.Equal(Enumerable.Range(0, 23), e0.Order());
        Assert.Equal(Enumerable.Range(0, 23), e1.Order());
        Assert.Equal(e0, loader.Order(0));
        Assert.Equal(6, loader.BatchCount);
        Assert.Equal([4, 4, 4, 4, 4, 3], loader.Epoch(0).Select(b => b.Count));
    }

    [Fact]
    public void ABatchSizeNearIntMaxIsOneBatchOfTheWholeSplit()
    {
        var loader = Loader(5, int.MaxValue, workers: 2);
        Assert.Equal(1, loader.BatchCount);
        Assert.Equal([5], loader.Epoch(0).Select(b => b.Count));
    }

    [Fact]
    public void BatchesHoldTheNormalisedPixelsMasksAndIdentities()
    {
        // Hand-made: two 8x8 images; mean = std = 0.5, so byte v becomes (v/255 - 0.5) / 0.5.
        var a = set.WriteImage("a.png", 8, 8, seed: 10);
        var b = set.WriteImage("b.png", 8, 8, seed: 99);
        var maskA = new byte[64];
        maskA[0] = 255;
        maskA[63] = 200;
        set.WriteMask("a.png", 8, 8, maskA);
        set.WriteMask("b_m.png", 8, 8, new byte[64]);
        set.WriteSplit("train",
            new AnnotationRecord("a.png", "a.png", DataTestSet.Prompts(("p0", [""]), ("p1", ["first"]))),
            new AnnotationRecord("b.png", "b_m.png", DataTestSet.Prompts(("p0", [""]), ("p1", ["second"]))));
        var batch = Assert.Single(Loader(2, 8, workers: 2, shuffle: false, prompt: "p1").Epoch(0));

        Assert.Equal((2, 8, 8), (batch.Count, batch.Width, batch.Height));
        Assert.Equal(2 * 3 * 64, batch.Images.Length);
        Assert.Equal(2 * 64, batch.Masks.Length);
        Assert.Equal(["first", "second"], batch.Prompts);
        Assert.Equal(new RecordId("ds", "train", 1, "b.png", "b_m.png"), batch.Records[1]);
        Assert.Equal([(8, 8), (8, 8)], batch.OriginalSizes);
        foreach (var (image, n) in new[] { (a, 0), (b, 1) })
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 64; p++)
                    Assert.Equal(DataSampleLoaderTests.Expected(image.Pixels[3 * p + c]), batch.Images[n * 192 + c * 64 + p]);
        var expectedMask = new float[128];
        expectedMask[0] = 1;
        expectedMask[63] = 1;
        Assert.Equal(expectedMask, batch.Masks);
    }

    [Fact]
    public void SkippedRecordsShrinkTheirBatchAndAreReported()
    {
        set.WriteSimpleSplit("train", 6, 12, 10);
        set.WriteMask("train2.png", 5, 5); // now a size mismatch
        var report = new LoadReport();
        var batches = Loader(6, 4, workers: 2, shuffle: false, onError: OnError.Skip).Epoch(0, report).ToList();
        Assert.Equal([3, 2], batches.Select(b => b.Count));
        Assert.Equal(3 * 3 * 64, batches[0].Images.Length);
        Assert.Equal([0, 1, 3], batches[0].Records.Select(r => r.Index));
        Assert.Equal(5, report.Loaded);
        Assert.Equal(2, Assert.Single(report.Skipped).Id.Index);

        var strict = Loader(6, 4, workers: 2, shuffle: false);
        var e = Assert.Throws<VlsmException>(() => strict.Epoch(0).ToList());
        Assert.Contains(set.MaskPath("train2.png"), e.Message);
    }

    [Fact]
    public void StoppingEarlyOrCancellingStopsTheWorkers()
    {
        var loader = Loader(40, 2, workers: 3, prefetch: 1);
        Assert.Single(loader.Epoch(0).Take(1));
        Assert.Equal(0, loader.RunningWorkers);

        using var cts = new CancellationTokenSource();
        int seen = 0;
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var _ in loader.Epoch(0, cancellation: cts.Token))
            {
                Assert.True(loader.RunningWorkers > 0);
                if (++seen == 2) cts.Cancel();
            }
        });
        Assert.Equal(2, seen);
        Assert.Equal(0, loader.RunningWorkers);
    }

    [Fact]
    public void WorkersStayWithinThePrefetchWindow()
    {
        // With prefetch 1, after taking batch 0 and waiting, at most batches 1 is loaded: 2 batches' records.
        var report = new LoadReport();
        var loader = Loader(40, 2, workers: 3, prefetch: 1);
        using var e = loader.Epoch(0, report).GetEnumerator();
        Assert.True(e.MoveNext());
        Thread.Sleep(300);
        Assert.InRange(report.Loaded, 2, 4);
    }
}
