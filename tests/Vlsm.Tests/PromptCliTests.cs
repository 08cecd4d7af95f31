using Vlsm.Data;
using Vlsm.Data.Prompts;
using Vlsm.Data.Synthetic;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary><c>vlsm prompts</c>, run as a user runs it.</summary>
public sealed class PromptCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-prompts-cli-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static readonly string[] P0ToP9 = Enumerable.Range(0, 10).Select(i => "p" + i).ToArray();

    /// <summary>A plain images/masks folder (one object per scene, masks named like images), without anns/.</summary>
    private string Folder(string name, int scenes)
    {
        string dir = Path.Combine(tmp, name);
        SyntheticDataset.Generate(dir, new SynthOptions(scenes, 2, Size: 48, Style: SynthStyle.Medical, MaxObjects: 1));
        Directory.Delete(Path.Combine(dir, "anns"), recursive: true);
        return dir;
    }

    [Fact]
    public void PromptsOnASynthFolderWritesReadableAnns()
    {
        string dir = Path.Combine(tmp, "gen");
        var made = CliRunner.Run("synth", "--out", dir, "--n", "12", "--seed", "4", "--max-objects", "1", "--size", "64");
        Assert.True(made.ExitCode == 0, made.Stderr);
        Directory.Delete(Path.Combine(dir, "anns"), recursive: true);

        var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // Without --split: 0.7/0.15/0.15 by largest remainder (8.4, 1.8, 1.8 → 8, 2, 2), said on stdout; progress on stderr only.
        Assert.Contains("split 12 images into train,val,test 0.7,0.15,0.15 with seed 1", r.Stdout);
        Assert.Contains("wrote 12 records (train 8, val 2, test 2)", r.Stdout);
        Assert.DoesNotContain("prompts: ", r.Stdout);
        Assert.Contains("prompts: 12/12", r.Stderr);
        Assert.Equal(["test.json", "train.json", "val.json"], Directory.GetFiles(Path.Combine(dir, "anns")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var records = new[] { "train", "val", "test" }.SelectMany(n => AnnotationFile.Read(Path.Combine(dir, "anns", n + ".json"))).ToList();
        Assert.Equal(12, records.Count);
        Assert.Equal(12, records.Select(x => x.ImgName).Distinct().Count());
        foreach (var record in records)
        {
            Assert.Equal(P0ToP9, record.PromptKeys);
            Assert.Equal(record.ImgName, record.MaskName);
            Assert.Equal(ClassDescriptions.Polyp, record.Prompts["p7"]);
            Assert.StartsWith("one ", record.Prompts["p5"].Single());
            Assert.EndsWith(" polyp", record.Prompts["p5"].Single());
            // The prompts are the library's for the same files.
            var image = ImageCodec.DecodeRgb(Path.Combine(dir, "images", record.ImgName));
            var mask = BinaryMask.FromGray(ImageCodec.DecodeGray(Path.Combine(dir, "masks", record.MaskName)));
            var expected = PromptGenerator.Prompts(image, mask, "polyp", ClassDescriptions.Polyp);
            Assert.All(P0ToP9, k => Assert.Equal(expected[k], record.Prompts[k]));
        }
    }

    [Fact]
    public void SplitWritesThreeDisjointFilesReproducibly()
    {
        string dir = Folder("split", 20);
        var first = CliRunner.Run("prompts", "--data", dir, "--class", "lesion", "--split", "0.6,0.2,0.2", "--seed", "3");
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Contains("train 12, val 4, test 4", first.Stdout);
        Assert.Contains("no descriptions for \"lesion\"", first.Stdout);
        var files = new[] { "train", "val", "test" }.Select(n => Path.Combine(dir, "anns", n + ".json")).ToArray();
        var sets = files.Select(f => AnnotationFile.Read(f).Select(r => r.ImgName).ToHashSet()).ToArray();
        Assert.Equal(20, sets.Sum(s => s.Count));
        Assert.Equal(20, sets.SelectMany(s => s).Distinct().Count());
        Assert.All(files.SelectMany(AnnotationFile.Read), r => Assert.Equal(7, r.Prompts.Count)); // no p7–p9 without descriptions
        var bytes = files.Select(File.ReadAllBytes).ToArray();

        // An existing anns/ is refused, naming its files, and left as it was...
        var refused = CliRunner.Run("prompts", "--data", dir, "--class", "lesion", "--split", "0.5,0.25,0.25", "--seed", "4");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains($"{Path.Combine(dir, "anns")} already holds annotation files (test.json, train.json, val.json); give --force", refused.Stderr);
        Assert.Equal(bytes, files.Select(File.ReadAllBytes).ToArray());

        // ...and replaced with --force; another file there (e.g. the demo's swap.json) is kept. The same seed gives the same bytes.
        File.WriteAllText(Path.Combine(dir, "anns", "swap.json"), "[]");
        var again = CliRunner.Run("prompts", "--data", dir, "--class", "lesion", "--split", "0.6,0.2,0.2", "--seed", "3", "--force");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Equal(bytes, files.Select(File.ReadAllBytes).ToArray());
        Assert.Equal("[]", File.ReadAllText(Path.Combine(dir, "anns", "swap.json")));
        Assert.Contains("swap.json is from an earlier run and was left as it was", again.Stdout);
        // No staging folder is left beside anns/.
        Assert.Equal(["anns", "images", "masks"], Directory.GetDirectories(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void AFolderWhereASplitFileGoesLeavesEveryOldSplitFileAsItWas()
    {
        string dir = Folder("blocked", 10);
        var first = CliRunner.Run("prompts", "--data", dir, "--class", "polyp", "--split", "0.6,0.2,0.2", "--seed", "3");
        Assert.True(first.ExitCode == 0, first.Stderr);
        string test = Path.Combine(dir, "anns", "test.json");
        File.Delete(test);
        Directory.CreateDirectory(test);
        var files = new[] { "train", "val" }.Select(n => Path.Combine(dir, "anns", n + ".json")).ToArray();
        var bytes = files.Select(File.ReadAllBytes).ToArray();

        var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp", "--split", "0.4,0.3,0.3", "--seed", "4", "--force");

        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"error: {test} is a folder, so test.json cannot be written there and nothing was written; remove that folder", r.Stderr);
        Assert.Equal(bytes, files.Select(File.ReadAllBytes).ToArray());
        Assert.True(Directory.Exists(test));
        Assert.Equal(["anns", "images", "masks"], Directory.GetDirectories(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void AllToTestWithASplitOfZeroZeroOne()
    {
        string dir = Folder("alltest", 5);
        var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp", "--split", "0,0,1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("wrote 5 records (train 0, val 0, test 5)", r.Stdout);
        Assert.Equal(5, AnnotationFile.Read(Path.Combine(dir, "anns", "test.json")).Count);
    }

    [Fact]
    public void DescriptionsFileAndEmptyMasks()
    {
        string dir = Folder("desc", 3);
        // Blank out one mask: it gets "no lesion" prompts.
        string blank = Directory.GetFiles(Path.Combine(dir, "masks")).Order(StringComparer.Ordinal).First();
        ImageCodec.SavePng(blank, new GrayImage(48, 48));
        string descriptions = Path.Combine(tmp, "lesion.txt");
        File.WriteAllText(descriptions, "a patch of abnormal tissue\nlesion which is a spot\n");

        var r = CliRunner.Run("prompts", "--data", dir, "--class", "lesion", "--descriptions", descriptions, "--split", "0,0,1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("1 empty mask(s) got \"no lesion\" prompts", r.Stdout);
        var records = AnnotationFile.Read(Path.Combine(dir, "anns", "test.json"));
        var empty = records.Single(x => x.MaskName == Path.GetFileName(blank));
        Assert.All(P0ToP9.Skip(1), k => Assert.Equal(["no lesion"], empty.Prompts[k]));
        var full = records.First(x => x != empty);
        Assert.Equal(["lesion which is a patch of abnormal tissue", "lesion which is a spot"], full.Prompts["p7"]);
        // A one-element list stays a list in the file.
        Assert.Contains("\"p7\": [", File.ReadAllText(Path.Combine(dir, "anns", "test.json")));
    }

    [Fact]
    public void ADescriptionsFileInAnotherFormatIsRefused()
    {
        string dir = Folder("otherdesc", 4);
        string config = Path.Combine(Fixtures.Parity, "clipseg-tiny", "config.json");
        string binary = Path.Combine(tmp, "descriptions.bin");
        File.WriteAllBytes(binary, [0x89, (byte)'P', (byte)'N', (byte)'G', 0, 0, 0, 13, (byte)'\n']);
        foreach (var (file, says) in new[] { (config, "a JSON object, not descriptions"), (binary, "not a text file") })
        {
            var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp", "--descriptions", file);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains($"error: {file}: {says}. Give ", r.Stderr);
            Assert.False(Directory.Exists(Path.Combine(dir, "anns")));
        }
    }

    [Fact]
    public void MissingFolderNamesIt()
    {
        string missing = Path.Combine(tmp, "nowhere");
        var r = CliRunner.Run("prompts", "--data", missing, "--class", "polyp");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{missing}: dataset folder not found", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void MissingMasksFolderNamesIt()
    {
        string dir = Path.Combine(tmp, "nomasks");
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(Path.Combine(dir, "masks"), r.Stderr);
    }

    [Fact]
    public void UnpairedFilesAreListed()
    {
        string dir = Folder("unpaired", 3);
        ImageCodec.SavePng(Path.Combine(dir, "masks", "orphan_mask.png"), new GrayImage(48, 48));
        File.Delete(Directory.GetFiles(Path.Combine(dir, "masks")).Order(StringComparer.Ordinal).First(f => !f.EndsWith("orphan_mask.png")));
        var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("1 mask(s) without an image", r.Stderr);
        Assert.Contains("orphan_mask.png", r.Stderr);
        Assert.Contains("1 image(s) without a mask", r.Stderr);
        Assert.Contains("synth_00000.png", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(dir, "anns")));
    }

    [Theory]
    [InlineData("0.8,0.1", "--split '0.8,0.1' has 2 value(s)")]
    [InlineData("0.8,0.1,0.3", "--split '0.8,0.1,0.3' sums to 1.2")]
    [InlineData("a,b,c", "'a' is not a non-negative number")]
    public void BadSplitNamesTheValue(string split, string expected)
    {
        string dir = Folder("badsplit", 2);
        var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp", "--split", split);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(dir, "anns")));
    }

    [Fact]
    public void MaskOfTheWrongSizeNamesBothFiles()
    {
        string dir = Folder("size", 2);
        string mask = Directory.GetFiles(Path.Combine(dir, "masks")).Order(StringComparer.Ordinal).First();
        ImageCodec.SavePng(mask, new GrayImage(20, 48));
        var r = CliRunner.Run("prompts", "--data", dir, "--class", "polyp");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{mask} is 20x48 but its image", r.Stderr);
    }

    [Fact]
    public void HelpSaysTheDefaultSplitAndForce()
    {
        var r = CliRunner.Run("prompts", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("default 0.7,0.15,0.15", r.Stdout);
        Assert.Contains("--force", r.Stdout);
    }
}
