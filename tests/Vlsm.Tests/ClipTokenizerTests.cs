using System.Text.Json;
using Vlsm.Text;
using Xunit.Abstractions;

namespace Vlsm.Tests;

public class ClipTokenizerTests(ITestOutputHelper output)
{
    private static readonly Lazy<ClipTokenizer> Shared =
        new(() => ClipTokenizer.FromFolder(Path.Combine(Fixtures.Parity, "clipseg-tiny")));

    private static ClipTokenizer Tokenizer => Shared.Value;

    private sealed record Case(string Text, int[] Ids, int UntruncatedLength);

    private static List<Case> LoadCases(string fileName)
    {
        string path = Path.Combine(Fixtures.Parity, "tokenizer", fileName);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var cases = new List<Case>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases.Add(new Case(
                c.GetProperty("text").GetString()!,
                [.. c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32())],
                c.GetProperty("untruncated_length").GetInt32()));
        }
        return cases;
    }

    [Fact]
    public void ClipTokenizer_MatchesEveryFixtureCaseExactly()
    {
        string[] files = ["clip-tokenizer-cases.json", "medvlsm-prompts-cases.json"];
        int expectedTotal = 0, checkedTotal = 0;
        var failures = new List<string>();
        foreach (string file in files)
        {
            List<Case> cases = LoadCases(file);
            expectedTotal += cases.Count;
            int checkedHere = 0;
            foreach (Case c in cases)
            {
                int[] ids = Tokenizer.Encode(c.Text);
                int untruncated = Tokenizer.EncodeUntruncated(c.Text).Count;
                checkedHere++;
                if (!ids.SequenceEqual(c.Ids) || untruncated != c.UntruncatedLength)
                {
                    failures.Add($"{file}: {JsonSerializer.Serialize(c.Text)} expected [{string.Join(",", c.Ids)}] " +
                                 $"({c.UntruncatedLength}), got [{string.Join(",", ids)}] ({untruncated})");
                }
            }
            output.WriteLine($"{file}: {checkedHere} cases checked");
            Assert.Equal(cases.Count, checkedHere);
            checkedTotal += checkedHere;
        }
        output.WriteLine($"total: {checkedTotal} cases checked, {failures.Count} failed");
        Assert.True(failures.Count == 0, $"{failures.Count} of {checkedTotal} cases differ:\n" + string.Join("\n", failures.Take(20)));
        Assert.Equal(expectedTotal, checkedTotal);
        Assert.True(checkedTotal > 20000, $"only {checkedTotal} cases checked");
    }

    [Fact]
    public void ClipTokenizer_IsThreadSafe()
    {
        // A fresh tokenizer so the BPE cache is filled concurrently.
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(Fixtures.Parity, "clipseg-tiny"));
        List<Case> cases = LoadCases("medvlsm-prompts-cases.json");
        var results = new int[cases.Count][];
        Parallel.For(0, cases.Count, i => results[i] = tokenizer.Encode(cases[i].Text));
        for (int i = 0; i < cases.Count; i++)
            Assert.Equal(cases[i].Ids, results[i]);
    }

    [Fact]
    public void ClipTokenizer_VocabularyAndSpecialIds()
    {
        Assert.Equal(49408, Tokenizer.VocabSize);
        Assert.Equal([ClipTokenizer.StartId, ClipTokenizer.EndId], Tokenizer.EncodeUntruncated(""));
        Assert.Equal([ClipTokenizer.StartId, ClipTokenizer.EndId], Tokenizer.Encode(" \t\n "));
    }

    // Expected ids from CLIP's reference BPE (Python, `regex` module, str.lower()) without ftfy.
    [Theory]
    [InlineData("cafe\u0301", new[] { 15304 })]                                   // NFC composes e + U+0301
    [InlineData("ΟΔΟΣ ΣΑΣ", new[] { 138, 123, 138, 112, 138, 123, 139, 480, 139, 225, 138, 109, 139, 480 })] // final sigma
    [InlineData("ὈΔΥΣΣΕΎΣ", new[] { 157, 121, 222, 138, 112, 139, 227, 139, 225, 139, 225, 138, 113, 139, 235, 139, 480 })]
    [InlineData("İstanbul", new[] { 328, 16384, 11231 })]                          // İ lower-cases to i + U+0307
    [InlineData("it'ſ", new[] { 585, 6, 129, 379 })]                               // 's matches 'ſ case-insensitively
    [InlineData("x\u0345y", new[] { 343, 344 })]                                   // U+0345 is dropped
    [InlineData("a\U0001F600\U0001F9EC b", new[] { 320, 12832, 8792, 361, 321 })]  // astral symbols form one piece
    [InlineData("a\u001Cb", new[] { 320, 321 })]                                   // Python's \s includes U+001C..U+001F
    [InlineData("a\u00A0\u2003b", new[] { 320, 321 })]
    [InlineData("<|ſtartoftext|>", new[] { 27, 91, 129, 123, 2002, 6659, 18169, 91, 285 })]
    [InlineData("a.<|endoftext|>", new[] { 320, 13, 27, 347, 40786, 4160, 91, 285 })] // special only at a piece start
    [InlineData("text with <|endoftext|> inside", new[] { 4160, 593, ClipTokenizer.EndId, 2912 })]
    [InlineData("\u1100\u1161\u11A8", new[] { 21122, 479 })]                       // conjoining jamo compose to 각
    [InlineData("e\u0323\u0302", new[] { 157, 119, 485 })]                         // reordered, then composed to ệ
    [InlineData("\U0001D400\U0001D7CE", new[] { 15889, 478, 6874, 253, 492 })]     // astral letter, astral digit
    [InlineData("ǅ", new[] { 131, 484 })]
    [InlineData("A\u030A\u0301", new[] { 131, 375 })]
    public void ClipTokenizer_MatchesReferenceOnUnicodeEdgeCases(string text, int[] bpeIds)
    {
        int[] expected = [ClipTokenizer.StartId, .. bpeIds, ClipTokenizer.EndId];
        Assert.Equal(expected, Tokenizer.EncodeUntruncated(text));
    }

    [Fact]
    public void ClipTokenizer_TruncatesKeepingTheEndId()
    {
        string text = string.Join(" ", Enumerable.Repeat("polyp", 50)); // 2 ids per word
        IReadOnlyList<int> all = Tokenizer.EncodeUntruncated(text);
        Assert.Equal(102, all.Count);

        int[] ids = Tokenizer.Encode(text);
        Assert.Equal(ClipTokenizer.DefaultMaxLength, ids.Length);
        Assert.Equal(all.Take(76), ids.Take(76));
        Assert.Equal(ClipTokenizer.EndId, ids[^1]);

        Assert.Equal([ClipTokenizer.StartId, ClipTokenizer.EndId], Tokenizer.Encode(text, maxLength: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Encode(text, maxLength: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.EncodeBatch([text], maxLength: 0));
    }

    [Fact]
    public void ClipTokenizer_BatchPadsWithEndIdAndMasksPadding()
    {
        const long S = ClipTokenizer.StartId, E = ClipTokenizer.EndId;
        TokenBatch batch = Tokenizer.EncodeBatch(["a polyp", "polyp", ""]);
        Assert.Equal(3, batch.BatchSize);
        Assert.Equal(5, batch.Length);
        Assert.Equal([S, 320, 6833, 335, E, S, 6833, 335, E, E, S, E, E, E, E], batch.InputIds);
        Assert.Equal([1L, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0], batch.AttentionMask);

        TokenBatch padded = Tokenizer.EncodeBatch(["polyp"], padTo: 77);
        Assert.Equal(1, padded.BatchSize);
        Assert.Equal(77, padded.Length);
        Assert.Equal(77, padded.InputIds.Length);
        Assert.Equal([S, 6833, 335, E], padded.InputIds.Take(4));
        Assert.All(padded.InputIds.Skip(4), id => Assert.Equal(E, id));
        Assert.Equal(4, padded.AttentionMask.Sum());
        Assert.All(padded.AttentionMask.Skip(4), m => Assert.Equal(0L, m));

        string longText = string.Join(" ", Enumerable.Repeat("lesion", 100));
        TokenBatch truncated = Tokenizer.EncodeBatch([longText, "polyp"], maxLength: 10);
        Assert.Equal(10, truncated.Length);
        Assert.Equal(E, truncated.InputIds[9]);
        Assert.Equal(10, truncated.AttentionMask.Take(10).Sum());

        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.EncodeBatch(["a polyp"], padTo: 3));

        TokenBatch empty = Tokenizer.EncodeBatch([]);
        Assert.Equal(0, empty.BatchSize);
        Assert.Empty(empty.InputIds);
    }

    [Fact]
    public void ClipTokenizer_MissingFilesAreNamed()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<VlsmException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("vocab.json", e.Message);
        Assert.Contains("not found", e.Message);

        File.Copy(Path.Combine(Fixtures.Parity, "clipseg-tiny", "vocab.json"), Path.Combine(dir.Path, "vocab.json"));
        e = Assert.Throws<VlsmException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("merges.txt", e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void ClipTokenizer_MalformedMergesNameFileAndLine()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Fixtures.Parity, "clipseg-tiny", "vocab.json"), Path.Combine(dir.Path, "vocab.json"));
        string merges = Path.Combine(dir.Path, "merges.txt");

        File.WriteAllText(merges, "#version: 0.2\ni n\nt h e\n");
        var e = Assert.Throws<VlsmException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("merges.txt line 3", e.Message);
        Assert.Contains("two symbols", e.Message);

        File.WriteAllText(merges, "#version: 0.2\ni n\nzq\u00e9 x\n");
        e = Assert.Throws<VlsmException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("merges.txt line 3", e.Message);
        Assert.Contains("not in vocab.json", e.Message);

        File.WriteAllText(merges, "#version: 0.2\n");
        e = Assert.Throws<VlsmException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("merges.txt", e.Message);
    }

    [Fact]
    public void ClipTokenizer_MalformedVocabIsNamed()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Fixtures.Parity, "clipseg-tiny", "merges.txt"), Path.Combine(dir.Path, "merges.txt"));
        string vocab = Path.Combine(dir.Path, "vocab.json");

        File.WriteAllText(vocab, "{\"a\": 1,");
        var e = Assert.Throws<VlsmException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("vocab.json", e.Message);

        File.WriteAllText(vocab, "{\"a\": 1}");
        e = Assert.Throws<VlsmException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("vocab.json", e.Message);
        Assert.Contains("<|startoftext|>", e.Message);
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("vlsm-tok-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}

public sealed class BuiltInVocabularyTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vlsm-vocab-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void BuiltInVocabularyIsClipsAndTokenizesLikeTheFixtures()
    {
        Vlsm.Text.ClipTokenizer.WriteBuiltInVocabulary(dir);
        var fixture = Path.Combine(Fixtures.Parity, "clipseg-tiny");
        Assert.Equal(File.ReadAllBytes(Path.Combine(fixture, "vocab.json")), File.ReadAllBytes(Path.Combine(dir, "vocab.json")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(fixture, "merges.txt")), File.ReadAllBytes(Path.Combine(dir, "merges.txt")));
        var tokenizer = Vlsm.Text.ClipTokenizer.FromFolder(dir);
        Assert.Equal(49408, tokenizer.VocabSize);
        Assert.Equal(Vlsm.Text.ClipTokenizer.FromFolder(fixture).Encode("one small pink round polyp, located in center of the image"),
            tokenizer.Encode("one small pink round polyp, located in center of the image"));
    }
}
