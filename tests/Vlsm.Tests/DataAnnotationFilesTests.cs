using Vlsm.Data;

namespace Vlsm.Tests;

/// <summary>
/// Every real medvlsm annotation file in ../shared/medvlsm-anns reads, with the record counts and
/// prompt keys computed independently (a python3 json one-off over the same files).
/// </summary>
public sealed class DataAnnotationFilesTests
{
    private static string Anns => Path.Combine(Fixtures.Shared, "medvlsm-anns");

    /// <summary>(dataset, split, records, prompt keys, prompt texts (a string counts 1, a list its length), lists of 2+ texts, mask names with a subfolder).</summary>
    public static readonly (string Dataset, string Split, int Records, string Keys, int Texts, int MultiTextLists, int SubfolderMasks)[] Expected =
    [
        ("bkai_polyp", "test", 100, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 2164, 291, 0),
        ("bkai_polyp", "train", 800, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 17576, 2394, 0),
        ("bkai_polyp", "val", 100, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 2188, 297, 0),
        ("busi", "test", 78, "p0,p1,p2,p3,p4,p5,p6", 871, 325, 0),
        ("busi", "train", 624, "p0,p1,p2,p3,p4,p5,p6", 6953, 2585, 0),
        ("busi", "val", 78, "p0,p1,p2,p3,p4,p5,p6", 871, 325, 0),
        ("camus", "test", 600, "p0,p1,p2,p3,p4,p5,p6,p7", 9000, 4200, 600),
        ("camus", "val", 600, "p0,p1,p2,p3,p4,p5,p6,p7", 9000, 4200, 600),
        ("chexlocalize", "test", 452, "p0,p1,p2,p3,p4,p5,p6", 3164, 0, 0),
        ("chexlocalize", "train", 1279, "p0,p1,p2,p3,p4,p5,p6", 8953, 0, 0),
        ("chexlocalize", "val", 446, "p0,p1,p2,p3,p4,p5,p6", 3122, 0, 0),
        ("clinicdb_polyp", "test", 61, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 1342, 183, 0),
        ("clinicdb_polyp", "train", 490, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 10780, 1470, 0),
        ("clinicdb_polyp", "val", 61, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 1342, 183, 0),
        ("colondb_polyp", "test", 360, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 7920, 1080, 0),
        ("colondb_polyp", "train", 20, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 440, 60, 0),
        ("colondb_polyp", "val", 0, "", 0, 0, 0),
        ("dfu", "test", 200, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 4400, 600, 0),
        ("dfu", "train", 1600, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 35200, 4800, 0),
        ("dfu", "val", 200, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 4400, 600, 0),
        ("etis_polyp", "test", 176, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 3872, 528, 0),
        ("etis_polyp", "testB", 176, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 3872, 528, 0),
        ("etis_polyp", "train", 20, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 440, 60, 0),
        ("etis_polyp", "val", 0, "", 0, 0, 0),
        ("isic", "test", 379, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 8338, 1137, 0),
        ("isic", "train", 810, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 17820, 2430, 0),
        ("isic", "val", 90, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 1980, 270, 0),
        ("kvasir_polyp", "test", 100, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 2200, 300, 0),
        ("kvasir_polyp", "testB", 100, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 2200, 300, 0),
        ("kvasir_polyp", "train", 800, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 17600, 2400, 0),
        ("kvasir_polyp", "val", 100, "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9", 2200, 300, 0),
    ];

    public static TheoryData<string, string> Files()
    {
        var data = new TheoryData<string, string>();
        foreach (var e in Expected) data.Add(e.Dataset, e.Split);
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void FileReadsWithItsRecordCountAndPromptKeys(string dataset, string split)
    {
        var expected = Expected.Single(e => e.Dataset == dataset && e.Split == split);
        var records = AnnotationFile.Read(Path.Combine(Anns, dataset, split + ".json"));

        Assert.Equal(expected.Records, records.Count);
        string[] keys = expected.Keys.Length == 0 ? [] : expected.Keys.Split(',');
        // Every record has the same keys, all of them.
        Assert.All(records, r => Assert.Equal(keys, r.PromptKeys.ToArray()));
        Assert.Equal(expected.Texts, records.Sum(r => r.Prompts.Values.Sum(v => v.Count)));
        Assert.Equal(expected.MultiTextLists, records.Sum(r => r.Prompts.Values.Count(v => v.Count > 1)));
        Assert.Equal(expected.SubfolderMasks, records.Count(r => r.MaskName.Contains('/')));
        Assert.All(records, r => Assert.True(r.ImgName.Length > 0 && r.MaskName.Length > 0));
    }

    [Fact]
    public void AllThirtyOneFilesAndTenThousandNineHundredRecords()
    {
        var files = Directory.GetDirectories(Anns)
            .Where(d => Path.GetFileName(d) != "general_descriptions")
            .SelectMany(d => Directory.GetFiles(d, "*.json"))
            .Select(f => (Path.GetFileName(Path.GetDirectoryName(f))!, Path.GetFileNameWithoutExtension(f)))
            .Order().ToArray();
        Assert.Equal(31, files.Length);
        Assert.Equal(Expected.Select(e => (e.Dataset, e.Split)).Order().ToArray(), files);

        int total = files.Sum(f => AnnotationFile.Read(Path.Combine(Anns, f.Item1, f.Item2 + ".json")).Count);
        Assert.Equal(10_900, total);
        Assert.Equal(10_900, Expected.Sum(e => e.Records));
    }

    [Fact]
    public void CamusMasksKeepTheirSubfolderAndListPromptsKeepEveryText()
    {
        var camus = AnnotationFile.Read(Path.Combine(Anns, "camus", "test.json"));
        Assert.Equal("mask_1/patient0001_2CH_ED_gt.png", camus[0].MaskName);
        Assert.Equal(
            ["Left ventricular cavity of the heart.", "Left ventricular cavity in the cardiac ultrasound."],
            camus[0].Prompts["p1"]);
        Assert.Equal([""], camus[0].Prompts["p0"]);
    }

    /// <summary>Each dataset opens through MedvlsmDataset (its anns/ is the shared folder, linked in).</summary>
    [Fact]
    public void EveryDatasetOpensWithItsSplits()
    {
        string parent = Directory.CreateTempSubdirectory("vlsm-anns-").FullName;
        try
        {
            foreach (var group in Expected.GroupBy(e => e.Dataset))
            {
                string root = Path.Combine(parent, group.Key);
                Directory.CreateDirectory(root);
                Directory.CreateSymbolicLink(Path.Combine(root, "anns"), Path.Combine(Anns, group.Key));
                var dataset = MedvlsmDataset.Open(root);
                Assert.Equal(group.Key, dataset.Name);
                var extra = group.Select(e => e.Split).Except(MedvlsmDataset.StandardSplits).Order(StringComparer.Ordinal);
                Assert.Equal(MedvlsmDataset.StandardSplits.Concat(extra), dataset.Splits);
                foreach (var e in group)
                {
                    var records = dataset.RequiredRecords(e.Split);
                    Assert.Equal(e.Records, records.Count);
                    Assert.All(records, r => Assert.StartsWith(dataset.MasksDir + Path.DirectorySeparatorChar, r.MaskPath));
                }
            }
            // CAMUS has no train file: empty when listed, an error when asked for.
            var camus = MedvlsmDataset.Open(Path.Combine(parent, "camus"));
            Assert.Empty(camus.Records("train"));
            var error = Assert.Throws<VlsmException>(() => camus.RequiredRecords("train"));
            Assert.Contains("train", error.Message);
            Assert.Contains("camus", error.Message);
            Assert.Equal(Path.Combine(parent, "camus", "masks", "mask_1", "patient0001_2CH_ED_gt.png"), camus.Records("test")[0].MaskPath);
        }
        finally
        {
            Directory.Delete(parent, recursive: true);
        }
    }
}
