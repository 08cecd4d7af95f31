using System.Runtime.CompilerServices;

namespace Vlsm.Data;

/// <summary>What a <see cref="StableRng"/> draw is for, so prompt choice, augmentation and shuffling never share a stream.</summary>
public enum RngPurpose
{
    Shuffle = 1,
    Prompt = 2,
    Augment = 3,
}

/// <summary>
/// A small SplitMix64 generator seeded by hashing (seed, epoch, purpose, record identity).
/// Every record gets its own stream, so a draw depends only on what it is for and never on which
/// thread ran first or how many draws other records made (unlike a shared <see cref="Random"/>).
/// The hash is fixed here (not <see cref="string.GetHashCode()"/>, which is randomised per process),
/// so the same inputs give the same draws in every run and on every machine.
/// </summary>
public struct StableRng
{
    private ulong _state;

    public StableRng(ulong state) => _state = state;

    /// <summary>The stream for one record in one epoch: pooled datasets keep their draws when other datasets join the pool.</summary>
    public static StableRng For(long seed, int epoch, RngPurpose purpose, RecordId record) =>
        new(Combine(Combine(Combine(Combine(Combine(Mix((ulong)seed), (ulong)epoch), (ulong)purpose),
            Hash(record.Dataset)), Hash(record.Split)), (ulong)record.Index));

    /// <summary>A stream for a whole epoch (the shuffle order).</summary>
    public static StableRng For(long seed, int epoch, RngPurpose purpose) =>
        new(Combine(Combine(Mix((ulong)seed), (ulong)epoch), (ulong)purpose));

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, <paramref name="bound"/>), without modulo bias (Lemire's multiply-and-reject).</summary>
    public int NextInt(int bound)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bound);
        ulong n = (ulong)bound;
        ulong threshold = (0UL - n) % n;
        while (true)
        {
            ulong hi = Math.BigMul(NextUInt64(), n, out ulong lo);
            if (lo >= threshold) return (int)hi;
        }
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [<paramref name="min"/>, <paramref name="max"/>).</summary>
    public double NextDouble(double min, double max) => min + (max - min) * NextDouble();

    /// <summary>True with probability <paramref name="p"/>; draws even when p is 0 or 1 so later draws do not shift when p changes.</summary>
    public bool Chance(double p) => NextDouble() < p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Combine(ulong h, ulong v) => Mix(h ^ Mix(v + 0x9E3779B97F4A7C15UL));

    /// <summary>FNV-1a over the UTF-16 code units: fixed across processes, unlike string.GetHashCode.</summary>
    private static ulong Hash(string s)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in s)
        {
            h = (h ^ (byte)c) * 0x100000001B3UL;
            h = (h ^ (byte)(c >> 8)) * 0x100000001B3UL;
        }
        return h;
    }
}
