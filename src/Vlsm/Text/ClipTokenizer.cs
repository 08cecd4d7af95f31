using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Vlsm.Text;

/// <summary>Token ids of a batch, row-major <c>[BatchSize, Length]</c>, padded with the tokenizer's pad id (CLIP: <see cref="ClipTokenizer.EndId"/>; BERT: [PAD]).</summary>
public sealed record TokenBatch(int BatchSize, int Length, long[] InputIds, long[] AttentionMask)
{
    /// <summary>Encoded rows padded with <paramref name="padId"/> to <paramref name="length"/>; the mask is 1 on each row's own ids.</summary>
    public static TokenBatch Padded(int[][] rows, int length, long padId)
    {
        var inputIds = new long[rows.Length * length];
        var mask = new long[rows.Length * length];
        for (int i = 0; i < rows.Length; i++)
        {
            int offset = i * length;
            for (int j = 0; j < length; j++)
            {
                bool real = j < rows[i].Length;
                inputIds[offset + j] = real ? rows[i][j] : padId;
                mask[offset + j] = real ? 1 : 0;
            }
        }
        return new TokenBatch(rows.Length, length, inputIds, mask);
    }
}

/// <summary>
/// CLIP's byte-level BPE tokenizer, matching CLIP's reference tokenizer without ftfy (and so
/// HF's CLIP tokenizer): NFC, whitespace runs collapsed to one space and trimmed, CPython
/// <c>str.lower()</c>, CLIP's pre-tokenizer pattern, GPT-2 byte-to-unicode symbols, BPE with
/// <c>&lt;/w&gt;</c> marking the end of each word. Thread-safe.
/// </summary>
public sealed class ClipTokenizer
{
    public const int StartId = 49406, EndId = 49407, DefaultMaxLength = 77;

    private const string StartToken = "<|startoftext|>", EndToken = "<|endoftext|>";
    private const string EndOfWord = "</w>";
    // Past this many distinct words the cache stops growing (arbitrary text must not leak memory).
    private const int CacheCapacity = 100_000;

    private readonly int[] _byteIds;         // byte -> id of its symbol
    private readonly int[] _byteEndIds;      // byte -> id of its symbol + "</w>"
    private readonly Dictionary<long, (int Rank, int Merged)> _merges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    private ClipTokenizer(int vocabSize, int[] byteIds, int[] byteEndIds, Dictionary<long, (int, int)> merges, string vocabPath, KeyValuePair<string, int> highest)
    {
        VocabSize = vocabSize;
        _vocabPath = vocabPath;
        _highest = highest;
        _byteIds = byteIds;
        _byteEndIds = byteEndIds;
        _merges = merges;
    }

    public int VocabSize { get; }

    private readonly string _vocabPath;
    private readonly KeyValuePair<string, int> _highest; // the token with the largest id

    /// <summary>
    /// This tokenizer, after checking that every id it can produce indexes one of the model's
    /// <paramref name="embeddingRows"/> token embeddings (<paramref name="configField"/> names where the
    /// model's count comes from), so a vocab.json of another model is refused before any text is encoded.
    /// </summary>
    /// <exception cref="VlsmException">An id of vocab.json is past the embedding.</exception>
    public ClipTokenizer Within(int embeddingRows, string configField)
    {
        if (_highest.Value >= embeddingRows)
            throw new VlsmException($"{_vocabPath}: token {Vlsm.IO.Printable.Quote(_highest.Key)} has id {_highest.Value}, but the model has {embeddingRows} token embeddings "
                + $"({configField}); vocab.json does not belong to this model.");
        return this;
    }

    /// <summary>
    /// Writes CLIP's own <c>vocab.json</c> and <c>merges.txt</c>, embedded in this library, into
    /// <paramref name="dir"/>, so models built here (the demo's) are complete HF folders.
    /// </summary>
    public static void WriteBuiltInVocabulary(string dir)
    {
        var assembly = typeof(ClipTokenizer).Assembly;
        foreach (var name in new[] { "vocab.json", "merges.txt" })
        {
            using var resource = assembly.GetManifestResourceStream("Vlsm.clip." + name)
                ?? throw new InvalidOperationException($"embedded CLIP {name} is missing from {assembly.GetName().Name}");
            Vlsm.IO.AtomicFile.Write(Path.Combine(dir, name), resource.CopyTo);
        }
    }

    /// <summary>Loads <c>vocab.json</c> and <c>merges.txt</c> from a model folder.</summary>
    public static ClipTokenizer FromFolder(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        return FromFiles(Path.Combine(modelDir, "vocab.json"), Path.Combine(modelDir, "merges.txt"));
    }

    public static ClipTokenizer FromFiles(string vocabPath, string mergesPath)
    {
        ArgumentNullException.ThrowIfNull(vocabPath);
        ArgumentNullException.ThrowIfNull(mergesPath);
        Dictionary<string, int> vocab = ReadVocab(vocabPath);
        string vocabName = Path.GetFileName(vocabPath);

        CheckSpecial(vocab, vocabName, StartToken, StartId);
        CheckSpecial(vocab, vocabName, EndToken, EndId);

        char[] byteChars = ByteToUnicode();
        var byteIds = new int[256];
        var byteEndIds = new int[256];
        for (int b = 0; b < 256; b++)
        {
            string symbol = byteChars[b].ToString();
            byteIds[b] = Lookup(vocab, vocabName, symbol);
            byteEndIds[b] = Lookup(vocab, vocabName, symbol + EndOfWord);
        }

        var merges = ReadMerges(mergesPath, vocab, vocabName);
        return new ClipTokenizer(vocab.Count, byteIds, byteEndIds, merges, vocabPath, vocab.MaxBy(kv => kv.Value));
    }

    /// <summary>Start id, the BPE ids of <paramref name="text"/>, end id; no truncation.</summary>
    public IReadOnlyList<int> EncodeUntruncated(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int> { StartId };
        string clean = Lower(CollapseWhitespace(UnicodeTables.NormalizeNfc(text)));
        foreach (var (start, length) in PreTokenize(clean))
        {
            string piece = clean.Substring(start, length);
            if (piece == StartToken) ids.Add(StartId);
            else if (piece == EndToken) ids.Add(EndId);
            else ids.AddRange(Bpe(piece));
        }
        ids.Add(EndId);
        return ids;
    }

    /// <summary>
    /// Like <see cref="EncodeUntruncated"/>, cut to <paramref name="maxLength"/> ids when longer:
    /// the first <c>maxLength - 1</c> ids, then the end id.
    /// </summary>
    public int[] Encode(string text, int maxLength = DefaultMaxLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        IReadOnlyList<int> all = EncodeUntruncated(text);
        if (all.Count <= maxLength)
            return [.. all];
        var ids = new int[maxLength];
        for (int i = 0; i < maxLength - 1; i++)
            ids[i] = all[i];
        ids[maxLength - 1] = EndId;
        return ids;
    }

    /// <summary>
    /// Encodes every text (truncated to <paramref name="maxLength"/>) and pads with the end id to
    /// the longest row, or to <paramref name="padTo"/> when given. The attention mask is 1 for
    /// real tokens (start and end included) and 0 for padding.
    /// </summary>
    public TokenBatch EncodeBatch(IReadOnlyList<string> texts, int? padTo = null, int maxLength = DefaultMaxLength)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var rows = new int[texts.Count][];
        int longest = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = Encode(texts[i] ?? throw new ArgumentException($"texts[{i}] is null.", nameof(texts)), maxLength);
            longest = Math.Max(longest, rows[i].Length);
        }
        int length = padTo ?? longest;
        if (padTo is int p && p < longest)
            throw new ArgumentOutOfRangeException(nameof(padTo), p,
                $"padTo ({p}) is shorter than the longest encoded text ({longest} ids); raise padTo or lower maxLength.");

        return TokenBatch.Padded(rows, length, EndId);
    }

    // ---- Normalization ----

    // CPython's str.isspace(), which both `re`'s \s (whitespace_clean) and str.strip() use.
    internal static bool IsWhiteSpace(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D or >= 0x1C and <= 0x20 or 0x85 or 0xA0 or 0x1680 => true,
        >= 0x2000 and <= 0x200A or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    /// <summary>Every run of whitespace becomes one space; leading and trailing whitespace goes.</summary>
    internal static string CollapseWhitespace(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool pendingSpace = false;
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out Rune r, out int used);
            i += used;
            if (IsWhiteSpace(r.Value))
            {
                pendingSpace = sb.Length > 0;
                continue;
            }
            if (pendingSpace)
            {
                sb.Append(' ');
                pendingSpace = false;
            }
            sb.Append(r.ToString());
        }
        return sb.ToString();
    }

    /// <summary>
    /// CPython's <c>str.lower()</c>: simple lower-case mappings (as <see cref="Rune.ToLowerInvariant"/>),
    /// plus its full mapping U+0130 → "i̇" and the Final_Sigma rule for U+03A3.
    /// </summary>
    internal static string Lower(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out Rune r, out int used);
            switch (r.Value)
            {
                case 0x130:
                    sb.Append("i\u0307");
                    break;
                case 0x3A3:
                    sb.Append(IsFinalSigma(s, i, used) ? '\u03C2' : '\u03C3');
                    break;
                default:
                    sb.Append(Rune.ToLowerInvariant(r).ToString());
                    break;
            }
            i += used;
        }
        return sb.ToString();
    }

    // \p{Cased} \p{Case_Ignorable}* Σ !( \p{Case_Ignorable}* \p{Cased} ), as CPython checks it.
    private static bool IsFinalSigma(string s, int index, int length)
    {
        int j = index;
        bool casedBefore = false;
        while (j > 0)
        {
            Rune.DecodeLastFromUtf16(s.AsSpan(0, j), out Rune r, out int used);
            j -= used;
            if (UnicodeTables.IsCaseIgnorable(r.Value))
                continue;
            casedBefore = UnicodeTables.IsCased(r.Value);
            break;
        }
        if (!casedBefore)
            return false;
        for (j = index + length; j < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(j), out Rune r, out int used);
            j += used;
            if (UnicodeTables.IsCaseIgnorable(r.Value))
                continue;
            return !UnicodeTables.IsCased(r.Value);
        }
        return true;
    }

    // ---- Pre-tokenization ----

    private enum CharClass { Letter, Number, Space, Other }

    private static CharClass Classify(Rune r)
    {
        // U+0345 (a combining mark) case-folds to a letter, ι. Under the reference pattern's
        // IGNORECASE the `regex` module then matches it neither as \p{L} nor as
        // [^\s\p{L}\p{N}], so it separates pieces and is dropped, like whitespace.
        if (r.Value == 0x345 || IsWhiteSpace(r.Value))
            return CharClass.Space;
        return Rune.GetUnicodeCategory(r) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharClass.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
                or UnicodeCategory.OtherNumber => CharClass.Number,
            _ => CharClass.Other,
        };
    }

    // Case-insensitive comparison of the pattern's literals. The text is already lower-case;
    // the one lower-case letter whose case folding equals one of theirs is ſ (U+017F) ~ s.
    private static bool LiteralEquals(char textChar, char patternChar) =>
        textChar == patternChar || (patternChar == 's' && textChar == '\u017F');

    private static int MatchLiteral(string s, int at, string literal)
    {
        if (s.Length - at < literal.Length)
            return 0;
        for (int k = 0; k < literal.Length; k++)
            if (!LiteralEquals(s[at + k], literal[k]))
                return 0;
        return literal.Length;
    }

    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>
    /// A scanner equivalent to findall of CLIP's pattern (case-insensitive)
    /// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>,
    /// over code points rather than UTF-16 units. Yields (start, length) in UTF-16 units.
    /// </summary>
    internal static IEnumerable<(int Start, int Length)> PreTokenize(string s)
    {
        int i = 0;
        while (i < s.Length)
        {
            int n = MatchLiteral(s, i, StartToken);
            if (n == 0) n = MatchLiteral(s, i, EndToken);
            if (n == 0 && s[i] == '\'')
            {
                foreach (string c in Contractions)
                    if ((n = MatchLiteral(s, i, c)) > 0)
                        break;
            }
            if (n > 0)
            {
                yield return (i, n);
                i += n;
                continue;
            }

            Rune.DecodeFromUtf16(s.AsSpan(i), out Rune first, out int used);
            CharClass cls = Classify(first);
            if (cls == CharClass.Space)
            {
                i += used;
                continue;
            }
            int end = i + used;
            if (cls != CharClass.Number)
            {
                while (end < s.Length)
                {
                    Rune.DecodeFromUtf16(s.AsSpan(end), out Rune next, out int nextUsed);
                    if (Classify(next) != cls)
                        break;
                    end += nextUsed;
                }
            }
            yield return (i, end - i);
            i = end;
        }
    }

    // ---- BPE ----

    private int[] Bpe(string piece)
    {
        if (_cache.TryGetValue(piece, out int[]? cached))
            return cached;

        byte[] bytes = Encoding.UTF8.GetBytes(piece);
        var word = new List<int>(bytes.Length);
        for (int k = 0; k < bytes.Length; k++)
            word.Add(k == bytes.Length - 1 ? _byteEndIds[bytes[k]] : _byteIds[bytes[k]]);

        while (word.Count > 1)
        {
            // The adjacent pair with the lowest merge rank...
            int bestRank = int.MaxValue;
            long bestKey = 0;
            int bestMerged = 0;
            for (int k = 0; k + 1 < word.Count; k++)
            {
                long key = PairKey(word[k], word[k + 1]);
                if (_merges.TryGetValue(key, out var m) && m.Rank < bestRank)
                    (bestRank, bestKey, bestMerged) = (m.Rank, key, m.Merged);
            }
            if (bestRank == int.MaxValue)
                break;

            // ...merged at every occurrence, left to right, without overlaps.
            var merged = new List<int>(word.Count);
            for (int k = 0; k < word.Count; k++)
            {
                if (k + 1 < word.Count && PairKey(word[k], word[k + 1]) == bestKey)
                {
                    merged.Add(bestMerged);
                    k++;
                }
                else
                {
                    merged.Add(word[k]);
                }
            }
            word = merged;
        }

        int[] ids = [.. word];
        if (_cache.Count < CacheCapacity)
            _cache.TryAdd(piece, ids);
        return ids;
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    // ---- Loading ----

    /// <summary>GPT-2's reversible map from bytes to printable characters.</summary>
    internal static char[] ByteToUnicode()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    private static Dictionary<string, int> ReadVocab(string path)
    {
        string name = Path.GetFileName(path);
        string json = ReadText(path, name);
        Dictionary<string, int>? vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(json);
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{name} ({path}) is not a JSON object mapping tokens to ids: {e.Message}", e);
        }
        if (vocab is null || vocab.Count == 0)
            throw new VlsmException($"{name} ({path}) holds no tokens.");
        foreach (var (token, id) in vocab)
            if (id < 0) throw new VlsmException($"{name} ({path}): token {Vlsm.IO.Printable.Quote(token)} has the negative id {id}; token ids index the embedding from 0.");
        return vocab;
    }

    private static Dictionary<long, (int, int)> ReadMerges(string path, Dictionary<string, int> vocab, string vocabName)
    {
        string name = Path.GetFileName(path);
        string text = ReadText(path, name);
        string[] lines = text.Split('\n');
        var merges = new Dictionary<long, (int, int)>(lines.Length);
        int rank = 0;
        for (int index = 0; index < lines.Length; index++)
        {
            string line = lines[index].TrimEnd('\r');
            int lineNo = index + 1;
            if (index == 0 && line.StartsWith("#version", StringComparison.Ordinal))
                continue;
            if (line.Length == 0)
                continue;
            string[] parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new VlsmException($"{name} line {lineNo}: expected two symbols separated by one space, got \"{line}\" ({path}).");
            int left = MergeSymbol(vocab, parts[0], name, lineNo, vocabName, path);
            int right = MergeSymbol(vocab, parts[1], name, lineNo, vocabName, path);
            int result = MergeSymbol(vocab, parts[0] + parts[1], name, lineNo, vocabName, path);
            // As in CLIP's reference (a dict built from the list), a repeated pair keeps its last rank.
            merges[PairKey(left, right)] = (rank++, result);
        }
        if (merges.Count == 0)
            throw new VlsmException($"{name} ({path}) holds no merges.");
        return merges;
    }

    private static int MergeSymbol(Dictionary<string, int> vocab, string symbol, string name, int lineNo, string vocabName, string path) =>
        vocab.TryGetValue(symbol, out int id)
            ? id
            : throw new VlsmException($"{name} line {lineNo}: symbol \"{symbol}\" is not in {vocabName} ({path}).");

    private static string ReadText(string path, string name)
    {
        try
        {
            return File.ReadAllText(path, new UTF8Encoding(false, throwOnInvalidBytes: true));
        }
        catch (FileNotFoundException e)
        {
            throw new VlsmException($"{name} not found: {path}", e);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new VlsmException($"{name} not found: {path}", e);
        }
        catch (DecoderFallbackException e)
        {
            throw new VlsmException($"{name} ({path}) is not valid UTF-8.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VlsmException($"{name} could not be read ({path}): {e.Message}", e);
        }
    }

    private static void CheckSpecial(Dictionary<string, int> vocab, string vocabName, string token, int expected)
    {
        if (!vocab.TryGetValue(token, out int id))
            throw new VlsmException($"{vocabName} has no \"{token}\" entry.");
        if (id != expected)
            throw new VlsmException($"{vocabName}: \"{token}\" has id {id}, expected {expected} (CLIP's vocabulary).");
    }

    private static int Lookup(Dictionary<string, int> vocab, string vocabName, string symbol) =>
        vocab.TryGetValue(symbol, out int id)
            ? id
            : throw new VlsmException($"{vocabName} lacks the byte-level symbol \"{symbol}\".");
}
