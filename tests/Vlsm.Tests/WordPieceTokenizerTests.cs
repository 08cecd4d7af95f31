using System.Text.Json;
using Vlsm.Text;
using Xunit.Abstractions;

namespace Vlsm.Tests;

/// <summary>
/// BiomedCLIP's WordPiece tokenizer against every case of the fixture (HF's slow BertTokenizer with
/// the PubMedBERT vocab.txt, called as medvlsm's dataset calls it): ids, untruncated lengths, pieces,
/// and the padded 256-long input_ids and attention_mask.
/// </summary>
public class WordPieceTokenizerTests(ITestOutputHelper output)
{
    public static string Folder => Path.Combine(Fixtures.Parity, "biomedclipseg-tiny");

    private static readonly Lazy<WordPieceTokenizer> Shared = new(() => WordPieceTokenizer.FromVocabFile(Path.Combine(Folder, "vocab.txt")));

    private static WordPieceTokenizer Tokenizer => Shared.Value;

    private static readonly Lazy<JsonDocument> Cases = new(() => JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "biomedclip-tokenizer-cases.json"))));

    private static int[] Ints(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetInt32())];

    [Fact]
    public void EveryTrickyCaseMatchesIdsPiecesLengthsAndThePaddedInput()
    {
        var root = Cases.Value.RootElement;
        int context = root.GetProperty("context_length").GetInt32();
        var failures = new List<string>();
        int n = 0;
        foreach (var c in root.GetProperty("tricky_cases").EnumerateArray())
        {
            n++;
            string text = c.GetProperty("text").GetString()!;
            int[] ids = Tokenizer.Encode(text, context);
            var pieces = Tokenizer.Tokenize(text).Select(p => p.Piece).ToList();
            var expectedPieces = c.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
            int untruncated = Tokenizer.EncodeUntruncated(text).Count;
            var batch = Tokenizer.EncodeBatch([text], context, padTo: context);
            bool ok = ids.SequenceEqual(Ints(c.GetProperty("ids")))
                && ids.Length == c.GetProperty("length").GetInt32()
                && untruncated == c.GetProperty("untruncated_length").GetInt32()
                && batch.InputIds.Select(v => (int)v).SequenceEqual(Ints(c.GetProperty("input_ids")))
                && batch.AttentionMask.Select(v => (int)v).SequenceEqual(Ints(c.GetProperty("attention_mask")));
            // The stored tokens are the truncated list ([CLS] … [SEP]); ours are untruncated pieces.
            var ours = new[] { "[CLS]" }.Concat(pieces.Take(ids.Length - 2)).Append("[SEP]").ToList();
            ok &= ours.SequenceEqual(expectedPieces);
            if (!ok)
                failures.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(" ", expectedPieces)}], got [{string.Join(" ", ours)}] ({untruncated})");
        }
        output.WriteLine($"{n} tricky cases, {failures.Count} failed");
        Assert.Equal(40, n);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void EveryMedvlsmPromptMatches()
    {
        var root = Cases.Value.RootElement;
        int context = root.GetProperty("context_length").GetInt32();
        var failures = new List<string>();
        int n = 0;
        foreach (var c in root.GetProperty("medvlsm_prompt_cases").EnumerateArray())
        {
            n++;
            string text = c[0].GetString()!;
            var expected = Ints(c[1]);
            int[] ids = Tokenizer.Encode(text, context);
            if (!ids.SequenceEqual(expected))
                failures.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(",", expected)}], got [{string.Join(",", ids)}]");
        }
        output.WriteLine($"{n} prompts, {failures.Count} failed");
        Assert.Equal(21654, n);
        Assert.True(failures.Count == 0, $"{failures.Count} differ:\n" + string.Join("\n", failures.Take(20)));
    }

    [Fact]
    public void SpecialIdsAndTruncationFollowTheVocabulary()
    {
        var t = Tokenizer;
        Assert.Equal(30522, t.VocabSize);
        Assert.Equal((0, 1, 2, 3, 4), (t.PadId, t.UnkId, t.ClsId, t.SepId, t.MaskId));
        Assert.Equal([2, 3], t.Encode("", 256));
        var longText = string.Join(" ", Enumerable.Repeat("polyp", 300));
        var ids = t.Encode(longText, 256);
        Assert.Equal(256, ids.Length);
        Assert.Equal(3, ids[^1]);
        Assert.Equal(302, t.EncodeUntruncated(longText).Count);
        var batch = t.EncodeBatch(["polyp", "a round polyp"], 256);
        Assert.Equal(5, batch.Length);
        Assert.Equal(new long[] { 2, t.Encode("polyp", 256)[1], 3, 0, 0 }, batch.InputIds[..5]);
        Assert.Equal(new long[] { 1, 1, 1, 0, 0 }, batch.AttentionMask[..5]);
    }

    [Fact]
    public void AVocabularyWithoutSpecialTokensIsRefusedByName()
    {
        var e = Assert.Throws<VlsmException>(() => WordPieceTokenizer.FromVocabText("[PAD]\n[UNK]\n[CLS]\nhello\n", "my-vocab.txt"));
        Assert.Contains("my-vocab.txt", e.Message);
        Assert.Contains("[SEP]", e.Message);
        var missing = Assert.Throws<VlsmException>(() => WordPieceTokenizer.FromVocabFile("/nonexistent/vocab.txt"));
        Assert.Contains("/nonexistent/vocab.txt", missing.Message);
    }
}
