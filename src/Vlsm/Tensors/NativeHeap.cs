using System.Runtime.InteropServices;

namespace Vlsm.Tensors;

/// <summary>
/// Hands memory freed by libtorch back to the operating system. glibc keeps freed blocks in its
/// arenas, so after a one-off pass with other shapes (an epoch's validation, a checkpoint) the
/// resident size stays at that pass's high-water mark although nothing is in use: a training run's
/// RSS then climbs epoch by epoch for a while before it levels off. <c>malloc_trim</c> releases
/// the free pages of every arena; it takes about a millisecond, so it is called once per epoch.
/// </summary>
public static partial class NativeHeap
{
    private static bool unavailable;

    /// <summary>Returns free native heap pages to the OS (glibc on Linux; a no-op elsewhere).</summary>
    public static void ReturnFreeMemory()
    {
        if (unavailable || !OperatingSystem.IsLinux()) return;
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            unavailable = true; // a C library without malloc_trim (musl): nothing to release this way
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
