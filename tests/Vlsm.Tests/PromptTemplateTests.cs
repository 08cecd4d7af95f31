using System.Text.Json;
using Vlsm.Data;
using Vlsm.Data.Prompts;

namespace Vlsm.Tests;

/// <summary>Templates p0–p9, class descriptions, and the seeded split.</summary>
public sealed class PromptTemplateTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-prompt-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Anns => Path.Combine(Fixtures.Shared, "medvlsm-anns");

    [Fact]
    public void TemplatesGiveExactStrings()
    {
        var prompts = PromptTemplates.Build("polyp",
            new PromptAttributes("two", "tiny, small", "pink", "round", "top left, center"),
            ["polyp which is a projecting growth of tissue", "polyp which is a small lump in the lining of colon"]);
        Assert.Equal(["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"], prompts.Keys.OrderBy(AnnotationRecord.PromptKeyOrder));
        Assert.Equal([""], prompts["p0"]);
        Assert.Equal(["polyp"], prompts["p1"]);
        Assert.Equal(["round polyp"], prompts["p2"]);
        Assert.Equal(["pink round polyp"], prompts["p3"]);
        Assert.Equal(["tiny, small pink round polyp"], prompts["p4"]);
        Assert.Equal(["two tiny, small pink round polyp"], prompts["p5"]);
        Assert.Equal(["two tiny, small pink round polyp, located in top left, center of the image"], prompts["p6"]);
        Assert.Equal(["polyp which is a projecting growth of tissue", "polyp which is a small lump in the lining of colon"], prompts["p7"]);
        Assert.Equal(
            ["two tiny, small pink round polyp which is a projecting growth of tissue",
             "two tiny, small pink round polyp which is a small lump in the lining of colon"], prompts["p8"]);
        Assert.Equal(
            ["two tiny, small pink round polyp which is a projecting growth of tissue located in top left, center of the image",
             "two tiny, small pink round polyp which is a small lump in the lining of colon located in top left, center of the image"], prompts["p9"]);
    }

    [Fact]
    public void ConstructedImageAndMaskGiveTheExpectedPrompts()
    {
        // 100x100 white image; a 20x20 pink square at the top left (400 px = 0.04: small) and a
        // 1x3 pink bar at the bottom right (3 px: tiny). Shape from the square (largest): round.
        var image = PromptRuleTests.Uniform(100, 100, 255, 255, 255);
        var mask = PromptRuleTests.Rects(100, 100, (5, 5, 24, 24), (90, 90, 92, 90));
        for (int i = 0; i < mask.Pixels.Length; i++)
        {
            if (!mask.Pixels[i]) continue;
            image.Pixels[3 * i] = 235;
            image.Pixels[3 * i + 1] = 150;
            image.Pixels[3 * i + 2] = 170;
        }
        var attributes = PromptGenerator.Describe(image, mask);
        Assert.Equal(new PromptAttributes("two", "tiny, small", "pink", "round", "top left, bottom right"), attributes);
        var prompts = PromptGenerator.Prompts(image, mask, "polyp", ClassDescriptions.Polyp);
        Assert.Equal("two tiny, small pink round polyp, located in top left, bottom right of the image", prompts["p6"].Single());
        Assert.Equal(5, prompts["p9"].Count);
    }

    [Fact]
    public void EmptyMaskGetsNoClassPrompts()
    {
        var withDescriptions = PromptTemplates.Build("polyp", null, ClassDescriptions.Polyp);
        Assert.Equal([""], withDescriptions["p0"]);
        for (int i = 1; i <= 9; i++) Assert.Equal(["no polyp"], withDescriptions["p" + i]);
        var without = PromptTemplates.Build("tumor", null, []);
        Assert.Equal(7, without.Count);
        for (int i = 1; i <= 6; i++) Assert.Equal(["no tumor"], without["p" + i]);
    }

    [Fact]
    public void ClassWithoutDescriptionsHasNoP7ToP9()
    {
        var prompts = PromptTemplates.Build("tumor", new PromptAttributes("one", "small", "white", "oval", "center"), ClassDescriptions.BuiltIn("tumor"));
        Assert.Equal(7, prompts.Count);
        Assert.DoesNotContain("p7", prompts.Keys);
        Assert.All(prompts.Values, v => Assert.NotEmpty(v));
    }

    [Fact]
    public void MissingSizeLeavesNoDoubleSpace()
    {
        var prompts = PromptTemplates.Build("polyp", new PromptAttributes("one", "", "red", "round", "top"), []);
        Assert.Equal("one red round polyp, located in top of the image", prompts["p6"].Single());
        Assert.Equal("red round polyp", prompts["p4"].Single());
    }

    [Theory]
    [InlineData("polyp", "endoscopy.json")]
    [InlineData("skin melanoma", "isic.json")]
    [InlineData("foot ulcer", "dfu.json")]
    [InlineData(" Polyp ", "endoscopy.json")]
    public void BuiltInDescriptionsEqualTheSharedFiles(string className, string file)
    {
        var expected = JsonSerializer.Deserialize<string[]>(File.ReadAllText(Path.Combine(Anns, "general_descriptions", file)))!;
        Assert.Equal(expected, ClassDescriptions.BuiltIn(className));
    }

    /// <summary>
    /// Every non-empty record of the medvlsm datasets whose prompts follow p0–p9 is reproduced
    /// from its own words: p5's words before the class as the attribute text, p6's location, p7
    /// as the phrases. Empty masks (BKAI) match the "no {class}" form. And p7 is the built-in list.
    /// </summary>
    [Theory]
    [InlineData("kvasir_polyp")]
    [InlineData("clinicdb_polyp")]
    [InlineData("bkai_polyp")]
    [InlineData("colondb_polyp")]
    [InlineData("etis_polyp")]
    [InlineData("isic")]
    [InlineData("dfu")]
    public void TemplatesReproduceMedvlsmRecords(string dataset)
    {
        int checkedRecords = 0;
        foreach (var file in Directory.GetFiles(Path.Combine(Anns, dataset), "*.json"))
        {
            foreach (var record in AnnotationFile.Read(file))
            {
                var p = record.Prompts;
                string p1 = p["p1"].Single();
                IReadOnlyDictionary<string, IReadOnlyList<string>> rebuilt;
                if (p1.StartsWith("no ", StringComparison.Ordinal))
                {
                    rebuilt = PromptTemplates.Build(p1[3..], null, p["p7"]);
                }
                else
                {
                    Assert.Equal(ClassDescriptions.BuiltIn(p1), p["p7"]);
                    string p5 = p["p5"].Single();
                    string words = p5[..^p1.Length].TrimEnd();
                    string location = p["p6"].Single()[(p5.Length + ", located in ".Length)..^" of the image".Length];
                    // All words before the class go in one slot; the template joins them the same way.
                    rebuilt = PromptTemplates.Build(p1, new PromptAttributes("", "", "", words, location), p["p7"]);
                }
                foreach (var key in new[] { "p0", "p1", "p5", "p6", "p7", "p8", "p9" })
                    Assert.Equal(p[key], rebuilt[key]);
                checkedRecords++;
            }
        }
        Assert.True(checkedRecords > 0);
    }

    [Fact]
    public void MedvlsmLocationAndSizeWordsAreOurVocabulary()
    {
        var cells = LocationGrid.CellNames.ToHashSet();
        var sizes = MedvlsmRules.SizeOrder.ToHashSet();
        foreach (var dataset in new[] { "kvasir_polyp", "isic", "dfu" })
        {
            foreach (var record in AnnotationFile.Read(Path.Combine(Anns, dataset, "train.json")))
            {
                string p5 = record.Prompts["p5"].Single(), p6 = record.Prompts["p6"].Single();
                string location = p6[(p5.Length + ", located in ".Length)..^" of the image".Length];
                Assert.All(location.Split(", "), word => Assert.Contains(word, cells));
                // p4 starts with the size words ("tiny, small pink …"): every comma-separated size is ours.
                string p4 = record.Prompts["p4"].Single();
                var leading = p4.Split(", ").SkipLast(1).Append(p4.Split(", ")[^1].Split(' ')[0]);
                Assert.All(leading, word => Assert.Contains(word, sizes));
            }
        }
    }

    // ------------------------------------------------------------------ descriptions files

    [Fact]
    public void DescriptionsFileOnePerLine()
    {
        string file = Path.Combine(tmp, "d.txt");
        File.WriteAllText(file, "a growth of tissue\n\n  polyp which is a lump  \r\na bump\n");
        Assert.Equal(["polyp which is a growth of tissue", "polyp which is a lump", "polyp which is a bump"], ClassDescriptions.Load(file, "polyp"));
    }

    [Fact]
    public void DescriptionsFileAsJsonListAcceptsMedvlsmFiles()
    {
        string file = Path.Combine(Anns, "general_descriptions", "isic.json");
        Assert.Equal(ClassDescriptions.SkinMelanoma, ClassDescriptions.Load(file, "skin melanoma"));
    }

    [Theory]
    [InlineData("", "holds no descriptions")]
    [InlineData("[\"a\", 3]", "not a JSON list of strings")]
    [InlineData("[]", "holds no descriptions")]
    public void BadDescriptionsFilesNameTheFile(string content, string message)
    {
        string file = Path.Combine(tmp, "bad.json");
        File.WriteAllText(file, content);
        var e = Assert.Throws<VlsmException>(() => ClassDescriptions.Load(file, "polyp"));
        Assert.Contains(file, e.Message);
        Assert.Contains(message, e.Message);
    }

    // ------------------------------------------------------------------ split

    [Theory]
    [InlineData("0.8,0.1,0.1", 0.8, 0.1, 0.1)]
    [InlineData(" 1, 0 ,0", 1, 0, 0)]
    [InlineData("0.7,0.15,0.15", 0.7, 0.15, 0.15)]
    public void SplitRatiosParse(string text, double train, double val, double test) =>
        Assert.Equal(new SplitRatios(train, val, test), SplitRatios.Parse(text));

    [Theory]
    [InlineData("0.8,0.2", "has 2 value(s)")]
    [InlineData("0.8,0.1,x", "'x' is not a non-negative number")]
    [InlineData("0.9,0.2,-0.1", "'-0.1' is not a non-negative number")]
    [InlineData("0.5,0.1,0.1", "sums to 0.7")]
    [InlineData("NaN,0,1", "'NaN' is not")]
    public void BadSplitRatiosNameTheValue(string text, string message)
    {
        var e = Assert.Throws<VlsmException>(() => SplitRatios.Parse(text));
        Assert.Contains(text, e.Message);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData(10, 0.8, 0.1, 0.1, 8, 1, 1)]
    [InlineData(7, 0.7, 0.15, 0.15, 5, 1, 1)]   // 4.9, 1.05, 1.05 → 4,1,1 + 1 to train (largest remainder)
    [InlineData(3, 0.7, 0.15, 0.15, 2, 1, 0)]   // 2.1, 0.45, 0.45 → 2,0,0 + 1 to val (tie with test: val first)
    [InlineData(0, 0.8, 0.1, 0.1, 0, 0, 0)]
    [InlineData(5, 0, 0, 1, 0, 0, 5)]
    public void SplitSizesUseLargestRemainder(int count, double a, double b, double c, int train, int val, int test) =>
        Assert.Equal((train, val, test), DatasetSplit.Sizes(count, new SplitRatios(a, b, c)));

    [Fact]
    public void SplitIsReproducibleFromTheSeed()
    {
        var ratios = new SplitRatios(0.6, 0.2, 0.2);
        var first = DatasetSplit.Assign(50, ratios, 7);
        Assert.Equal(first, DatasetSplit.Assign(50, ratios, 7));
        Assert.NotEqual(first, DatasetSplit.Assign(50, ratios, 8));
        Assert.Equal(30, first.Count(s => s == "train"));
        Assert.Equal(10, first.Count(s => s == "val"));
        Assert.Equal(10, first.Count(s => s == "test"));
    }
}
