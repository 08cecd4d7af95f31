using Vlsm.Data;

namespace Vlsm.Tests;

public sealed class DataDatasetTests : IDisposable
{
    private readonly DataTestSet set = new("kvasir");

    public void Dispose() => set.Dispose();

    private static AnnotationRecord Rec(string img, string mask) => new(img, mask, DataTestSet.StandardPrompts(img));

    [Fact]
    public void OpensTheLayoutAndResolvesRecordPaths()
    {
        set.WriteSimpleSplit("train", 3);
        set.WriteSimpleSplit("val", 1);
        var ds = MedvlsmDataset.Open(set.Root);
        Assert.Equal("kvasir", ds.Name);
        Assert.Equal(["train", "val", "test"], ds.Splits);
        Assert.True(ds.HasFile("train"));
        Assert.False(ds.HasFile("test"));
        Assert.Empty(ds.Records("test")); // a missing split file is an empty split
        var train = ds.Records("train");
        Assert.Equal(3, train.Count);
        Assert.Equal(new RecordId("kvasir", "train", 2, "train2.png", "train2.png"), train[2].Id);
        Assert.Equal(set.ImagePath("train2.png"), train[2].ImagePath);
        Assert.Equal(set.MaskPath("train2.png"), train[2].MaskPath);
    }

    [Fact]
    public void ASplitAskedForWithoutAFileIsAClearError()
    {
        set.WriteSimpleSplit("train", 1);
        var ds = MedvlsmDataset.Open(set.Root);
        var e = Assert.Throws<VlsmException>(() => ds.RequiredRecords("val"));
        Assert.Contains(Path.Combine(set.Root, "anns", "val.json"), e.Message);
        Assert.Contains("train", e.Message); // says which splits do exist
        var unknown = Assert.Throws<VlsmException>(() => ds.Records("trian"));
        Assert.Contains("\"trian\"", unknown.Message);
    }

    [Fact]
    public void ExtraAnnotationFilesAreFurtherSplits()
    {
        set.WriteSimpleSplit("test", 2);
        set.WriteSimpleSplit("testB", 1);
        var ds = MedvlsmDataset.Open(set.Root);
        Assert.Equal(["train", "val", "test", "testB"], ds.Splits);
        Assert.Single(ds.Records("testB"));
    }

    [Theory]
    [InlineData("../secret.png", "img", "contains '..'")]
    [InlineData("sub/../../secret.png", "img", "contains '..'")]
    [InlineData("/etc/passwd", "img", "absolute path")]
    [InlineData("..\\secret.png", "mask", "contains '..'")]
    [InlineData("C:/secret.png", "mask", "absolute path")]
    public void RecordPathsThatEscapeTheDatasetAreRejectedNamingTheRecord(string badName, string which, string reason)
    {
        set.WriteImage("ok.png", 4, 4);
        set.WriteMask("ok.png", 4, 4);
        var bad = which == "img" ? Rec(badName, "ok.png") : Rec("ok.png", badName);
        set.WriteSplit("train", Rec("ok.png", "ok.png"), bad);
        var ds = MedvlsmDataset.Open(set.Root);
        var e = Assert.Throws<VlsmException>(() => ds.Records("train"));
        Assert.Contains(Path.Combine(set.Root, "anns", "train.json"), e.Message);
        Assert.Contains("record 1", e.Message);
        Assert.Contains($"img_name \"{bad.ImgName}\"", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void MaskNamesMayUseSubfolders()
    {
        Directory.CreateDirectory(set.MaskPath("mask_1"));
        set.WriteSplit("test", Rec("a.png", "mask_1/a_gt.png"), Rec("b.png", "./mask_2/b.png"));
        var records = MedvlsmDataset.Open(set.Root).Records("test");
        Assert.Equal(set.MaskPath("mask_1/a_gt.png"), records[0].MaskPath);
        Assert.Equal(set.MaskPath("mask_2/b.png"), records[1].MaskPath);
    }

    [Fact]
    public void DatasetYamlRenamesFoldersAndFiles()
    {
        Directory.CreateDirectory(Path.Combine(set.Root, "imgs"));
        Directory.CreateDirectory(Path.Combine(set.Root, "gt"));
        Directory.CreateDirectory(Path.Combine(set.Root, "splits"));
        AnnotationFile.Write(Path.Combine(set.Root, "splits", "tr.json"), [Rec("a.png", "a_mask.png")]);
        AnnotationFile.Write(Path.Combine(set.Root, "splits", "holdout.json"), [Rec("b.png", "b.png"), Rec("c.png", "c.png")]);
        set.WriteSimpleSplit("val", 1); // anns/val.json: ignored, the yaml lists the splits
        File.WriteAllText(Path.Combine(set.Root, "dataset.yaml"), """
            # renamed layout
            images: imgs
            masks: gt
            class: polyp
            annotations:
              train: splits/tr.json
              test: splits/holdout.json
            """);
        var ds = MedvlsmDataset.Open(set.Root);
        Assert.Equal("polyp", ds.ClassName);
        Assert.Equal(Path.Combine(set.Root, "imgs"), ds.ImagesDir);
        Assert.Equal(["train", "val", "test"], ds.Splits);
        var train = ds.Records("train");
        Assert.Equal(Path.Combine(set.Root, "imgs", "a.png"), train[0].ImagePath);
        Assert.Equal(Path.Combine(set.Root, "gt", "a_mask.png"), train[0].MaskPath);
        Assert.Equal(2, ds.RequiredRecords("test").Count);
        Assert.Empty(ds.Records("val"));
        Assert.Throws<VlsmException>(() => ds.RequiredRecords("val"));
    }

    [Theory]
    [InlineData("images: imgs\nmask: gt\n", "unknown key \"mask\"")]
    [InlineData("images: [a, b]\n", "key \"images\"")]
    [InlineData("annotations: anns/train.json\n", "key \"annotations\"")]
    [InlineData("annotations:\n  train: [x]\n", "annotations.train")]
    [InlineData("images: ../elsewhere\n", "'..'")]
    [InlineData("masks: /abs/masks\n", "absolute path")]
    [InlineData("class:\n", "key \"class\"")]
    [InlineData("images: a\nimages: b\n", "")]
    [InlineData("images: [unclosed\n", "not valid YAML")]
    [InlineData("- a\n- b\n", "must be a mapping")]
    public void BadDatasetYamlNamesTheFileAndKey(string yaml, string expected)
    {
        string path = Path.Combine(set.Root, "dataset.yaml");
        File.WriteAllText(path, yaml);
        var e = Assert.Throws<VlsmException>(() => MedvlsmDataset.Open(set.Root));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AnnotationFileNamedByYamlMustExist()
    {
        File.WriteAllText(Path.Combine(set.Root, "dataset.yaml"), "annotations:\n  train: anns/nope.json\n");
        var ds = MedvlsmDataset.Open(set.Root);
        var e = Assert.Throws<VlsmException>(() => ds.Records("train"));
        Assert.Contains(Path.Combine(set.Root, "anns", "nope.json"), e.Message);
        Assert.Contains("dataset.yaml", e.Message);
    }

    [Fact]
    public void MissingFolderIsAClearError()
    {
        var e = Assert.Throws<VlsmException>(() => MedvlsmDataset.Open(Path.Combine(set.Root, "nope")));
        Assert.Contains("nope", e.Message);
    }

    [Fact]
    public void PooledDatasetsKeepEachRecordsDatasetName()
    {
        set.WriteSimpleSplit("train", 2);
        using var other = new DataTestSet("isic");
        other.WriteSimpleSplit("train", 3);
        other.WriteSimpleSplit("val", 1);
        var pool = PooledDataset.Open([set.Root, other.Root]);
        var train = pool.Records("train");
        Assert.Equal(["kvasir", "kvasir", "isic", "isic", "isic"], train.Select(r => r.Id.Dataset));
        Assert.Single(pool.Records("val"));
        var e = Assert.Throws<VlsmException>(() => pool.RequiredRecords("val"));
        Assert.Contains("kvasir", e.Message);

        var clash = Assert.Throws<VlsmException>(() => PooledDataset.Open([set.Root, set.Root]));
        Assert.Contains("kvasir", clash.Message);
    }
}
