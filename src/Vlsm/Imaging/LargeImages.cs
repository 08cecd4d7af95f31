namespace Vlsm.Imaging;

/// <summary>
/// What counts as a large image, and the collection that follows one. A 12000x12000 image leaves
/// about 2 GB of large-object garbage (decoded pixels, mask, upsampled prediction, metrics' arrays,
/// PNG encoding) that the runtime would otherwise let pile up, image after image, before it collects.
/// </summary>
public static class LargeImages
{
    /// <summary>Images above this many pixels (4 megapixels) are large: decoded, scored and written one at a time, then collected.</summary>
    public const long Pixels = 4L << 20;

    public static bool IsLarge(int width, int height) => (long)width * height > Pixels;

    /// <summary>Collects now, once a large image is no longer used (a local past its last use is not a root in optimised code).</summary>
    /// <remarks>
    /// Native memory the image freed goes back to the system too: the library keeps freed native memory for
    /// reuse (<see cref="Vlsm.Tensors.NativeHeap"/>), which suits training steps of one shape but would
    /// hold a 12000² image's buffers for the rest of an eval or predict run.
    /// </remarks>
    public static void Collect()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
        Vlsm.Tensors.NativeHeap.ReturnFreeMemory();
    }

    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <summary>
    /// Waits until no other thread works on a large image, then holds that turn until disposed; for
    /// an image that is not large, returns at once and holds nothing. Loader workers and eval's
    /// scoring take turns this way, so memory is bounded by one large image whatever the batch size
    /// and the number of workers.
    /// </summary>
    public static IDisposable? Turn(int width, int height)
    {
        if (!IsLarge(width, height)) return null;
        Gate.Wait();
        return new Release();
    }

    /// <summary><see cref="Turn(int, int)"/> for the image file at <paramref name="path"/>, sized from its header; nothing is held when the header cannot be read (decoding will say why).</summary>
    public static IDisposable? Turn(string path) =>
        ImageCodec.PeekSize(path) is var (width, height) ? Turn(width, height) : null;

    private sealed class Release : IDisposable
    {
        private int released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0) Gate.Release();
        }
    }
}
