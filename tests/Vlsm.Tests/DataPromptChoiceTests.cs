using Vlsm.Data;

namespace Vlsm.Tests;

public sealed class DataPromptChoiceTests
{
    private static DatasetRecord Record(int index, Dictionary<string, IReadOnlyList<string>> prompts, string dataset = "ds", string split = "train") =>
        new(new RecordId(dataset, split, index, $"{index}.png", $"{index}.png"),
            new AnnotationRecord($"{index}.png", $"{index}.png", prompts), "/d/anns/train.json", $"/d/images/{index}.png", $"/d/masks/{index}.png");

    private static readonly Dictionary<string, IReadOnlyList<string>> Prompts = DataTestSet.Prompts(
        ("p0", ["zero"]), ("p1", ["one"]), ("p2", ["two a", "two b"]), ("p3", ["three"]), ("p4", ["four a", "four b", "four c"]));

    [Fact]
    public void ParseRecognisesKeysRandomAndLiteralText()
    {
        Assert.Equal(PromptChoice.Mode.Key, PromptChoice.Parse("p3").Kind);
        Assert.Equal(PromptChoice.Mode.Key, PromptChoice.Parse("p12").Kind);
        Assert.Equal(PromptChoice.Mode.Random, PromptChoice.Parse("random").Kind);
        Assert.Equal(PromptChoice.Mode.Literal, PromptChoice.Parse("a polyp").Kind);
        Assert.Equal(PromptChoice.Mode.Literal, PromptChoice.Parse("P3").Kind);
        Assert.Equal(PromptChoice.Mode.Literal, PromptChoice.Parse("p3 polyp").Kind);
    }

    [Fact]
    public void FixedKeyGivesThatPromptAndDrawsWithinAList()
    {
        var r = Record(0, Prompts);
        Assert.Equal("three", PromptChoice.Parse("p3").Choose(r, seed: 1, epoch: 0));
        var seen = Enumerable.Range(0, 60).Select(e => PromptChoice.Parse("p4").Choose(r, 1, e)).ToHashSet();
        Assert.Equal(["four a", "four b", "four c"], seen.Order());
    }

    [Fact]
    public void LiteralTextIsUsedForEveryRecord()
    {
        var choice = PromptChoice.Parse("a small pink polyp");
        Assert.All(Enumerable.Range(0, 5), i => Assert.Equal("a small pink polyp", choice.Choose(Record(i, Prompts), 0, i)));
        Assert.Equal("anything", PromptChoice.Literal("anything").Choose(Record(0, DataTestSet.Prompts()), 0, 0)); // no keys needed
    }

    [Fact]
    public void RandomCoversP1ToPnButNeverP0()
    {
        var counts = new Dictionary<string, int>();
        for (int epoch = 0; epoch < 40; epoch++)
        {
            for (int i = 0; i < 50; i++)
            {
                string text = PromptChoice.Random.Choose(Record(i, Prompts), seed: 5, epoch);
                counts[text] = counts.GetValueOrDefault(text) + 1;
            }
        }
        Assert.DoesNotContain("zero", counts.Keys);
        Assert.Equal(["four a", "four b", "four c", "one", "three", "two a", "two b"], counts.Keys.Order());
        // Uniform over the four keys: 2000 draws, 500 per key expected.
        Assert.InRange(counts["one"], 400, 600);
        Assert.InRange(counts["three"], 400, 600);
        Assert.InRange(counts["two a"] + counts["two b"], 400, 600);
        Assert.InRange(counts["four a"] + counts["four b"] + counts["four c"], 400, 600);
    }

    [Fact]
    public void RandomIsReproducibleFromSeedEpochAndRecord()
    {
        string[] Draw(long seed, int epoch) => Enumerable.Range(0, 40).Select(i => PromptChoice.Random.Choose(Record(i, Prompts), seed, epoch)).ToArray();
        Assert.Equal(Draw(3, 1), Draw(3, 1));
        Assert.NotEqual(Draw(3, 1), Draw(3, 2));
        Assert.NotEqual(Draw(3, 1), Draw(4, 1));
        // The same from many threads at once: no shared state.
        var parallel = new string[40];
        Parallel.For(0, 40, i => parallel[i] = PromptChoice.Random.Choose(Record(i, Prompts), 3, 1));
        Assert.Equal(Draw(3, 1), parallel);
        // Key order in the file does not matter.
        var reversed = Prompts.Reverse().ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(Draw(3, 1), Enumerable.Range(0, 40).Select(i => PromptChoice.Random.Choose(Record(i, reversed), 3, 1)));
    }

    [Fact]
    public void MissingKeyNamesTheRecordAndKey()
    {
        var r = Record(7, DataTestSet.Prompts(("p0", [""]), ("p1", ["x"])));
        var e = Assert.Throws<VlsmException>(() => PromptChoice.Parse("p5").Choose(r, 0, 0));
        Assert.Contains("\"p5\"", e.Message);
        Assert.Contains("/d/anns/train.json: record 7 (img_name \"7.png\")", e.Message);
        Assert.Contains("p0, p1", e.Message);

        var onlyP0 = Record(2, DataTestSet.Prompts(("p0", [""])));
        var random = Assert.Throws<VlsmException>(() => PromptChoice.Random.Choose(onlyP0, 0, 0));
        Assert.Contains("record 2", random.Message);
        Assert.NotNull(PromptChoice.Random.Problem(onlyP0.Annotation));
        Assert.Null(PromptChoice.Random.Problem(r.Annotation));
    }
}
