using System.Text;

namespace Vlsm.Text;

// NFC and the Final_Sigma context, implemented over the generated tables in
// UnicodeTables.g.cs. Both exist because the solution runs with InvariantGlobalization,
// where string.Normalize leaves non-ASCII text unchanged, and because CLIP's reference
// tokenizer lower-cases with CPython's str.lower(), whose Final_Sigma rule needs the
// Cased/Case_Ignorable properties that .NET does not expose.
internal static partial class UnicodeTables
{
    // Hangul syllable arithmetic (Unicode chapter 3.12).
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static class Maps
    {
        public static readonly Dictionary<int, (int First, int Second)> Decompose = BuildDecompose();
        public static readonly Dictionary<long, int> Compose = BuildCompose();

        private static Dictionary<int, (int, int)> BuildDecompose()
        {
            ReadOnlySpan<int> t = CanonicalDecompositions;
            var map = new Dictionary<int, (int, int)>(t.Length / 4);
            for (int i = 0; i < t.Length; i += 4)
                map.Add(t[i], (t[i + 1], t[i + 2]));
            return map;
        }

        private static Dictionary<long, int> BuildCompose()
        {
            ReadOnlySpan<int> t = CanonicalDecompositions;
            var map = new Dictionary<long, int>();
            for (int i = 0; i < t.Length; i += 4)
                if (t[i + 3] == 1)
                    map.Add(PairKey(t[i + 1], t[i + 2]), t[i]);
            return map;
        }
    }

    private static long PairKey(int first, int second) => ((long)first << 21) | (uint)second;

    internal static int CombiningClass(int cp)
    {
        if (cp < 0x300)
            return 0;
        ReadOnlySpan<int> t = CombiningClassRanges;
        int lo = 0, hi = t.Length / 3 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (cp < t[mid * 3]) hi = mid - 1;
            else if (cp > t[mid * 3 + 1]) lo = mid + 1;
            else return t[mid * 3 + 2];
        }
        return 0;
    }

    internal static bool IsCaseIgnorable(int cp) => InRanges(CaseIgnorableRanges, cp);

    /// <summary>Cased and not Case_Ignorable (the only way CPython's sigma rule asks about Cased).</summary>
    internal static bool IsCased(int cp) => InRanges(CasedRanges, cp);

    private static bool InRanges(ReadOnlySpan<int> t, int cp)
    {
        int lo = 0, hi = t.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (cp < t[mid * 2]) hi = mid - 1;
            else if (cp > t[mid * 2 + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }

    /// <summary>Unicode Normalization Form C. Ill-formed UTF-16 becomes U+FFFD.</summary>
    internal static string NormalizeNfc(string s)
    {
        // Nothing below U+0300 decomposes or is excluded from composition, and nothing
        // composes without a combining character or conjoining jamo (all at U+0300 or above).
        bool simple = true;
        foreach (char ch in s)
        {
            if (ch >= 0x300) { simple = false; break; }
        }
        if (simple)
            return s;

        var cps = DecomposeNfd(s);

        // Canonical composition.
        var output = new List<int>(cps.Count);
        int starter = -1, lastClass = 0;
        foreach (int cp in cps)
        {
            int cc = CombiningClass(cp);
            if (starter >= 0)
            {
                bool adjacent = output.Count - 1 == starter;
                bool blocked = !adjacent && (lastClass == 0 || lastClass >= cc);
                if (!blocked && TryCompose(output[starter], cp, out int composite))
                {
                    output[starter] = composite;
                    continue;
                }
            }
            if (cc == 0)
                starter = output.Count;
            lastClass = cc;
            output.Add(cp);
        }

        var sb = new StringBuilder(s.Length);
        foreach (int cp in output)
            sb.Append(new Rune(cp).ToString());
        return sb.ToString();
    }

    /// <summary>
    /// Unicode Normalization Form D as code points: full canonical decomposition, then canonical
    /// ordering of every run of non-starters (BERT's accent stripping needs it; see NormalizeNfc for why).
    /// </summary>
    internal static List<int> DecomposeNfd(string s)
    {
        var cps = new List<int>(s.Length + 8);
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out Rune r, out int used);
            DecomposeInto(r.Value, cps);
            i += used;
        }
        for (int i = 1; i < cps.Count; i++)
        {
            int c = CombiningClass(cps[i]);
            if (c == 0)
                continue;
            for (int j = i; j > 0 && CombiningClass(cps[j - 1]) > c; j--)
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
        }
        return cps;
    }

    private static void DecomposeInto(int cp, List<int> into)
    {
        int sIndex = cp - SBase;
        if ((uint)sIndex < SCount)
        {
            into.Add(LBase + sIndex / NCount);
            into.Add(VBase + sIndex % NCount / TCount);
            int t = sIndex % TCount;
            if (t != 0)
                into.Add(TBase + t);
            return;
        }
        if (cp >= 0xC0 && Maps.Decompose.TryGetValue(cp, out var d))
        {
            DecomposeInto(d.First, into);
            if (d.Second >= 0)
                DecomposeInto(d.Second, into);
            return;
        }
        into.Add(cp);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int lIndex = first - LBase, vIndex = second - VBase;
        if ((uint)lIndex < LCount && (uint)vIndex < VCount)
        {
            composite = SBase + (lIndex * VCount + vIndex) * TCount;
            return true;
        }
        int sIndex = first - SBase, tIndex = second - TBase;
        if ((uint)sIndex < SCount && sIndex % TCount == 0 && tIndex > 0 && tIndex < TCount)
        {
            composite = first + tIndex;
            return true;
        }
        return Maps.Compose.TryGetValue(PairKey(first, second), out composite);
    }
}
