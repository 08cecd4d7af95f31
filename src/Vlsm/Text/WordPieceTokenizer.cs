using System.Globalization;
using System.Text;

namespace Vlsm.Text;

/// <summary>
/// BERT's uncased WordPiece tokenizer, as HF transformers' slow <c>BertTokenizer</c> (4.27) computes
/// it with <c>do_lower_case=True</c> (BiomedCLIP's PubMedBERT vocabulary):
/// <list type="number">
/// <item>special-token strings (<c>[CLS] [SEP] [PAD] [MASK] [UNK]</c>, case-sensitive) are split out and kept whole;</item>
/// <item>the rest is lower-cased one character at a time (CPython <c>str.lower()</c>, so İ becomes i + U+0307);</item>
/// <item>NUL, U+FFFD and every other character of category C* except tab, newline and CR are removed; tab, newline, CR and Zs become spaces;</item>
/// <item>CJK ideographs get spaces around them; the text is split on whitespace (CPython's <c>str.split()</c>);</item>
/// <item>each word is NFD-decomposed without its Mn marks, and split at punctuation (ASCII symbols and P*);</item>
/// <item>WordPiece: greedy longest match with <c>##</c> continuations; a word over 100 characters, or with a piece not in the vocabulary, is <c>[UNK]</c>.</item>
/// </list>
/// No NFC/NFKC normalisation happens (full-width letters stay full-width and become <c>[UNK]</c>).
/// Thread-safe. Microsoft.ML.Tokenizers' BertTokenizer (2.0.1) was run on the same 21,694 cases: 11 of the 40
/// tricky ones differ (ASCII symbols such as + = &lt; &gt; ` dropped, accents kept under invariant globalization),
/// so this one is vlsm's own.
/// </summary>
public sealed class WordPieceTokenizer
{
    public const string VocabFileName = "vocab.txt";
    public const int MaxInputCharsPerWord = 100;
    private const string Continuation = "##";

    private static readonly string[] SpecialTokens = ["[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"];

    private readonly Dictionary<string, int> vocab;
    private readonly string source;

    private WordPieceTokenizer(Dictionary<string, int> vocab, string source)
    {
        this.vocab = vocab;
        this.source = source;
        int Special(string token) => vocab.TryGetValue(token, out int id)
            ? id
            : throw new VlsmException($"{source}: the vocabulary has no \"{token}\" entry; a BERT WordPiece vocab.txt needs [PAD], [UNK], [CLS], [SEP] and [MASK].");
        PadId = Special("[PAD]");
        UnkId = Special("[UNK]");
        ClsId = Special("[CLS]");
        SepId = Special("[SEP]");
        MaskId = Special("[MASK]");
    }

    public int VocabSize => vocab.Count;

    /// <summary>This tokenizer, after checking that its ids (line numbers of vocab.txt) index one of the model's <paramref name="embeddingRows"/> token embeddings.</summary>
    /// <exception cref="VlsmException">vocab.txt has more lines than the embedding has rows.</exception>
    public WordPieceTokenizer Within(int embeddingRows, string configField)
    {
        int highest = vocab.Values.Max();
        if (highest >= embeddingRows)
            throw new VlsmException($"{source}: token {Vlsm.IO.Printable.Quote(vocab.First(kv => kv.Value == highest).Key)} has id {highest}, but the model has {embeddingRows} token embeddings "
                + $"({configField}); vocab.txt does not belong to this model.");
        return this;
    }
    public int PadId { get; }
    public int UnkId { get; }
    public int ClsId { get; }
    public int SepId { get; }
    public int MaskId { get; }

    /// <summary>
    /// Writes the PubMedBERT <c>vocab.txt</c> embedded in this library (BiomedCLIP's tokenizer) into
    /// <paramref name="dir"/>: BiomedCLIP's distributed files carry no vocabulary.
    /// </summary>
    public static void WriteBuiltInVocabulary(string dir)
    {
        var assembly = typeof(WordPieceTokenizer).Assembly;
        using var resource = assembly.GetManifestResourceStream("Vlsm.biomedclip.vocab.txt")
            ?? throw new InvalidOperationException($"embedded PubMedBERT vocab.txt is missing from {assembly.GetName().Name}");
        Vlsm.IO.AtomicFile.Write(Path.Combine(dir, VocabFileName), resource.CopyTo);
    }

    /// <summary>Reads a <c>vocab.txt</c>: one token per line, the line number (from 0) is its id.</summary>
    /// <exception cref="VlsmException">The file is missing, unreadable, not UTF-8, empty, or lacks a special token.</exception>
    public static WordPieceTokenizer FromVocabFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path, new UTF8Encoding(false, throwOnInvalidBytes: true));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new VlsmException($"{path} not found: a BERT WordPiece tokenizer needs its vocab.txt.", e);
        }
        catch (DecoderFallbackException e)
        {
            throw new VlsmException($"{path} is not valid UTF-8.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VlsmException($"{path} could not be read: {e.Message}", e);
        }
        return FromVocabText(text, path);
    }

    /// <summary>A tokenizer over the text of a <c>vocab.txt</c>; <paramref name="source"/> names it in errors.</summary>
    public static WordPieceTokenizer FromVocabText(string text, string source)
    {
        var lines = text.Split('\n');
        int count = lines.Length > 0 && lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        if (count == 0) throw new VlsmException($"{source} holds no tokens.");
        var vocab = new Dictionary<string, int>(count, StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            // HF's load_vocab strips the newline only; a repeated token keeps its last index.
            vocab[lines[i]] = i;
        }
        return new WordPieceTokenizer(vocab, source);
    }

    /// <summary>[CLS], the WordPiece ids of <paramref name="text"/>, [SEP]; no truncation.</summary>
    public List<int> EncodeUntruncated(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int> { ClsId };
        foreach (var token in Tokenize(text)) ids.Add(token.Id);
        ids.Add(SepId);
        return ids;
    }

    /// <summary>As <see cref="EncodeUntruncated"/>, cut to <paramref name="maxLength"/>: [CLS], the first maxLength − 2 pieces, [SEP].</summary>
    public int[] Encode(string text, int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var all = EncodeUntruncated(text);
        if (all.Count <= maxLength) return [.. all];
        var ids = new int[maxLength];
        all.CopyTo(0, ids, 0, maxLength - 1);
        ids[^1] = SepId;
        return ids;
    }

    /// <summary>
    /// Encodes every text (truncated to <paramref name="maxLength"/>) and pads with [PAD] to the
    /// longest row, or to <paramref name="padTo"/> (medvlsm pads to the context length, 256). The
    /// attention mask is 1 for [CLS] … [SEP] and 0 for the padding, as the tokenizer returns it.
    /// </summary>
    public TokenBatch EncodeBatch(IReadOnlyList<string> texts, int maxLength, int? padTo = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var rows = new int[texts.Count][];
        int longest = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = Encode(texts[i] ?? throw new ArgumentException($"texts[{i}] is null.", nameof(texts)), maxLength);
            longest = Math.Max(longest, rows[i].Length);
        }
        int length = padTo ?? longest;
        if (length < longest)
            throw new ArgumentOutOfRangeException(nameof(padTo), padTo, $"padTo ({padTo}) is shorter than the longest encoded text ({longest} ids).");
        return TokenBatch.Padded(rows, length, PadId);
    }

    /// <summary>The pieces of <paramref name="text"/> (without [CLS] and [SEP]), with their ids.</summary>
    public IEnumerable<(string Piece, int Id)> Tokenize(string text)
    {
        foreach (var (segment, special) in SplitSpecial(text))
        {
            if (special)
            {
                yield return (segment, vocab[segment]);
                continue;
            }
            foreach (var word in BasicTokens(LowerEachCharacter(segment)))
                foreach (var piece in WordPieces(word))
                    yield return piece;
        }
    }

    // ---- Special tokens ----

    /// <summary>The text cut at every special-token string (case-sensitive, leftmost first), each part flagged.</summary>
    internal static IEnumerable<(string Text, bool Special)> SplitSpecial(string text)
    {
        int start = 0;
        for (int i = 0; i < text.Length;)
        {
            string? found = text[i] == '[' ? SpecialTokens.FirstOrDefault(t => string.CompareOrdinal(text, i, t, 0, t.Length) == 0) : null;
            if (found is null)
            {
                i++;
                continue;
            }
            if (i > start) yield return (text[start..i], false);
            yield return (found, true);
            i += found.Length;
            start = i;
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    // ---- BasicTokenizer ----

    /// <summary>
    /// CPython <c>str.lower()</c> of each character alone, as the slow tokenizer lower-cases the text
    /// between special tokens (one regex match per character): İ becomes "i̇", and Σ is always σ.
    /// </summary>
    internal static string LowerEachCharacter(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out Rune r, out int used);
            if (r.Value == 0x130) sb.Append("i\u0307");
            else sb.Append(Rune.ToLowerInvariant(r).ToString());
            i += used;
        }
        return sb.ToString();
    }

    /// <summary>BasicTokenizer: clean, space out CJK, split on whitespace, strip accents, split at punctuation.</summary>
    internal static IEnumerable<string> BasicTokens(string text)
    {
        var words = new List<string>();
        var current = new StringBuilder();
        void EndWord()
        {
            if (current.Length == 0) return;
            words.Add(current.ToString());
            current.Clear();
        }
        for (int i = 0; i < text.Length;)
        {
            Rune.DecodeFromUtf16(text.AsSpan(i), out Rune r, out int used);
            i += used;
            int cp = r.Value;
            if (cp == 0 || cp == 0xFFFD || IsControl(r)) continue;
            if (IsBertWhitespace(r) || ClipTokenizer.IsWhiteSpace(cp))
            {
                EndWord();
                continue;
            }
            if (IsCjk(cp))
            {
                EndWord();
                current.Append(r.ToString());
                EndWord();
                continue;
            }
            current.Append(r.ToString());
        }
        EndWord();

        foreach (var word in words)
        {
            var piece = new StringBuilder();
            foreach (int cp in UnicodeTables.DecomposeNfd(word))
            {
                var r = new Rune(cp);
                if (Rune.GetUnicodeCategory(r) == UnicodeCategory.NonSpacingMark) continue;
                if (IsPunctuation(r))
                {
                    if (piece.Length > 0) yield return piece.ToString();
                    piece.Clear();
                    yield return r.ToString();
                    continue;
                }
                piece.Append(r.ToString());
            }
            if (piece.Length > 0) yield return piece.ToString();
        }
    }

    private static bool IsBertWhitespace(Rune r) =>
        r.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    private static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.OtherNotAssigned
            or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate;
    }

    private static bool IsPunctuation(Rune r)
    {
        int cp = r.Value;
        if (cp is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126) return true;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>The CJK Unified Ideographs blocks BERT spaces out (not Hiragana, Katakana or Hangul).</summary>
    private static bool IsCjk(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    // ---- WordPiece ----

    private IEnumerable<(string Piece, int Id)> WordPieces(string word)
    {
        var runes = word.EnumerateRunes().Select(r => r.ToString()).ToArray();
        if (runes.Length > MaxInputCharsPerWord) return [("[UNK]", UnkId)];
        var pieces = new List<(string, int)>();
        int start = 0;
        while (start < runes.Length)
        {
            int end = runes.Length;
            (string, int)? found = null;
            while (start < end)
            {
                string candidate = (start > 0 ? Continuation : "") + string.Concat(runes[start..end]);
                if (vocab.TryGetValue(candidate, out int id))
                {
                    found = (candidate, id);
                    break;
                }
                end--;
            }
            if (found is null) return [("[UNK]", UnkId)];
            pieces.Add(found.Value);
            start = end;
        }
        return pieces;
    }
}
