namespace Vlsm.Data;

/// <summary>
/// xoshiro256** seeded through SplitMix64. Our own generator rather than <see cref="Random"/>,
/// whose seeded sequence .NET does not promise to keep across versions: synthetic datasets and
/// splits must come out byte-identical from the same seed. Only integer arithmetic and exact
/// IEEE operations are used, so results do not depend on the platform's math library.
/// </summary>
public sealed class SeededRandom
{
    private ulong s0, s1, s2, s3;

    public SeededRandom(ulong seed)
    {
        ulong x = seed;
        s0 = SplitMix(ref x);
        s1 = SplitMix(ref x);
        s2 = SplitMix(ref x);
        s3 = SplitMix(ref x);
    }

    /// <summary>An independent stream for item <paramref name="index"/> of a seeded run, so item k does not depend on how many came before.</summary>
    public static SeededRandom ForItem(ulong seed, ulong index)
    {
        ulong x = seed ^ 0x5851F42D4C957F2DUL;
        ulong a = SplitMix(ref x);
        x = a ^ (index * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E019UL);
        return new SeededRandom(SplitMix(ref x));
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = ulong.RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [min, max).</summary>
    public double NextDouble(double min, double max) => min + (max - min) * NextDouble();

    /// <summary>Uniform integer in [0, maxExclusive), unbiased (Lemire's multiply-and-reject).</summary>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);
        ulong range = (ulong)maxExclusive;
        while (true)
        {
            ulong high = Math.BigMul(NextUInt64(), range, out ulong low);
            if (low >= (0UL - range) % range) return (int)high;
        }
    }

    /// <summary>Uniform integer in [min, maxExclusive).</summary>
    public int NextInt(int min, int maxExclusive) => min + NextInt(maxExclusive - min);

    public bool NextBool(double probability) => NextDouble() < probability;

    /// <summary>
    /// Approximately standard normal: a scaled sum of four uniforms (Irwin–Hall), bounded at
    /// about ±3.46. The uniforms are the four 16-bit quarters of one draw — plenty of resolution
    /// for pixel noise, a quarter of the cost. No transcendental functions, whose last bits vary
    /// between math libraries.
    /// </summary>
    public double NextGaussian()
    {
        ulong bits = NextUInt64();
        // Each quarter is uniform on 0…65535: mean 32767.5, variance (65536² − 1) / 12.
        long sum = (long)(bits & 0xFFFF) + (long)((bits >> 16) & 0xFFFF) + (long)((bits >> 32) & 0xFFFF) + (long)(bits >> 48);
        const double Mean = 4 * 32767.5;
        const double InverseStd = 1 / 37837.22723720648; // 1 / sqrt(4 * (65536² − 1) / 12)
        return (sum - Mean) * InverseStd;
    }

    /// <summary>A uniformly random unit vector (cos θ, sin θ), drawn by rejection from the unit disc so no trigonometry is needed.</summary>
    public (double Cos, double Sin) NextDirection()
    {
        while (true)
        {
            double x = NextDouble(-1, 1), y = NextDouble(-1, 1);
            double r2 = x * x + y * y;
            if (r2 > 1e-6 && r2 <= 1)
            {
                double r = Math.Sqrt(r2);
                return (x / r, y / r);
            }
        }
    }

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public void Shuffle<T>(IList<T> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    public T Pick<T>(IReadOnlyList<T> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        return items[NextInt(items.Count)];
    }
}
