using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Tests;

public sealed class DataSampleLoaderTests : IDisposable
{
    private readonly DataTestSet set = new();

    public void Dispose() => set.Dispose();

    /// <summary>A preprocessor at <paramref name="size"/>² with mean = std = 0.5, so byte v normalises to (v/255 - 0.5)/0.5.</summary>
    internal static ImagePreprocessor Half(int size) => ImagePreprocessor.Parse(
        $$"""{"size": {"height": {{size}}, "width": {{size}}}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}""", "test");

    internal static float Expected(byte v) => ((float)(v * (1.0 / 255.0)) - 0.5f) / 0.5f;

    private DatasetRecord Single(string split = "train") => MedvlsmDataset.Open(set.Root).Records(split)[0];

    private static AnnotationRecord Rec(string img, string mask) => new(img, mask, DataTestSet.StandardPrompts(img));

    [Fact]
    public void ImageIsNormalisedChannelFirstAndMaskBinarised()
    {
        var image = set.WriteImage("a.png", 4, 4, seed: 3);
        set.WriteMask("a.png", 4, 4);
        set.WriteSplit("train", Rec("a.png", "a.png"));
        var loader = new SampleLoader(Half(4), new SampleOptions(), PromptChoice.Parse("p1"));

        var sample = loader.Load(Single(), epoch: 0)!;

        Assert.Equal((4, 4, 4, 4), (sample.Width, sample.Height, sample.OriginalWidth, sample.OriginalHeight));
        Assert.Equal("polyp", sample.Prompt);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 16; p++)
                Assert.Equal(Expected(image.Pixels[3 * p + c]), sample.Image[c * 16 + p]);
        // Left half white.
        Assert.Equal(new float[] { 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0 }, sample.Mask);
    }

    [Fact]
    public void ResizesImageLikeThePreprocessorAndMaskWithNearest()
    {
        set.WriteImage("a.png", 40, 30, seed: 1);
        var values = new byte[40 * 30];
        for (int i = 0; i < values.Length; i++) values[i] = (byte)(i % 7 == 0 ? 255 : 0);
        var mask = set.WriteMask("a.png", 40, 30, values);
        set.WriteSplit("train", Rec("a.png", "a.png"));
        var pre = ImagePreprocessor.Parse("""{"size": {"height": 16, "width": 16}}""", "test");
        var loader = new SampleLoader(pre, new SampleOptions(), PromptChoice.Parse("p1"));

        var sample = loader.Load(Single(), 0)!;

        Assert.Equal((40, 30), (sample.OriginalWidth, sample.OriginalHeight));
        Assert.Equal(pre.ToChw(ImageCodec.DecodeRgb(set.ImagePath("a.png"))), sample.Image);
        var nearest = Resize.ResizeNearest(mask, 16, 16).Pixels.Select(v => v > 127 ? 1f : 0f);
        Assert.Equal(nearest, sample.Mask);
    }

    [Fact]
    public void MasksAreBinarisedAboveTheThresholdOrKeptSoft()
    {
        byte[] values = [0, 100, 127, 128, 200, 255, 1, 254, 0];
        set.WriteImage("a.png", 3, 3);
        set.WriteMask("a.png", 3, 3, values);
        set.WriteSplit("train", Rec("a.png", "a.png"));
        SampleLoader Loader(SampleOptions o) => new(Half(3), o, PromptChoice.Parse("p1"));

        Assert.Equal(values.Select(v => v > 127 ? 1f : 0f), Loader(new SampleOptions()).Load(Single(), 0)!.Mask);
        Assert.Equal(values.Select(v => v > 99 ? 1f : 0f), Loader(new SampleOptions { MaskThreshold = 99 }).Load(Single(), 0)!.Mask);
        Assert.Equal(values.Select(v => v / 255f), Loader(new SampleOptions { MaskMode = MaskMode.Soft }).Load(Single(), 0)!.Mask);
        Assert.Throws<VlsmException>(() => Loader(new SampleOptions { MaskThreshold = 255 }));
    }

    [Fact]
    public void JpegMaskEdgesBecomeZeroOrOne()
    {
        var values = new byte[32 * 32];
        // Not aligned to JPEG's 8x8 blocks, so the edges ring.
        for (int y = 5; y < 21; y++)
            for (int x = 5; x < 21; x++) values[y * 32 + x] = 255;
        set.WriteImage("a.png", 32, 32);
        DataTestSet.SaveJpeg(set.MaskPath("a.jpg"), new GrayImage(32, 32, values), quality: 50);
        set.WriteSplit("train", Rec("a.png", "a.jpg"));
        var decoded = ImageCodec.DecodeGray(set.MaskPath("a.jpg"));
        Assert.Contains(decoded.Pixels, v => v is not (0 or 255)); // the reference's problem

        var binary = new SampleLoader(Half(32), new SampleOptions(), PromptChoice.Parse("p1")).Load(Single(), 0)!;
        Assert.All(binary.Mask, v => Assert.True(v is 0f or 1f));
        Assert.Equal(decoded.Pixels.Select(v => v > 127 ? 1f : 0f), binary.Mask);
        Assert.InRange(binary.Mask.Count(v => v == 1f), 236, 276); // the 16x16 square, give or take its edge
        var soft = new SampleLoader(Half(32), new SampleOptions { MaskMode = MaskMode.Soft }, PromptChoice.Parse("p1")).Load(Single(), 0)!;
        Assert.Contains(soft.Mask, v => v is > 0f and < 1f);
    }

    [Fact]
    public void SizeMismatchNamesBothFilesOrIsSkippedAndCounted()
    {
        set.WriteImage("a.png", 8, 8);
        set.WriteMask("a.png", 8, 8);
        set.WriteImage("b.png", 8, 8);
        set.WriteMask("b_mask.png", 8, 6);
        set.WriteSplit("train", Rec("a.png", "a.png"), Rec("b.png", "b_mask.png"));
        var records = MedvlsmDataset.Open(set.Root).Records("train");

        var strict = new SampleLoader(Half(4), new SampleOptions(), PromptChoice.Parse("p1"));
        var e = Assert.Throws<VlsmException>(() => strict.Load(records[1], 0));
        Assert.Contains(set.ImagePath("b.png"), e.Message);
        Assert.Contains(set.MaskPath("b_mask.png"), e.Message);
        Assert.Contains("8x8", e.Message);
        Assert.Contains("8x6", e.Message);
        Assert.Contains("record 1", e.Message);

        var lenient = new SampleLoader(Half(4), new SampleOptions { OnError = OnError.Skip }, PromptChoice.Parse("p1"));
        var report = new LoadReport();
        Assert.NotNull(lenient.Load(records[0], 0, report));
        Assert.Null(lenient.Load(records[1], 0, report));
        Assert.Equal(1, report.Loaded);
        var skipped = Assert.Single(report.Skipped);
        Assert.Equal(records[1].Id, skipped.Id);
        Assert.Contains(set.MaskPath("b_mask.png"), skipped.Reason);
    }

    [Fact]
    public void MissingAndCorruptFilesNameTheFileAndRecord()
    {
        set.WriteImage("a.png", 8, 8);
        File.WriteAllBytes(set.MaskPath("a.png"), [0x89, 0x50, 0x4E, 0x47, 0, 1, 2]);
        set.WriteSplit("train", Rec("a.png", "a.png"), Rec("gone.png", "gone.png"));
        var records = MedvlsmDataset.Open(set.Root).Records("train");
        var loader = new SampleLoader(Half(4), new SampleOptions(), PromptChoice.Parse("p1"));

        var corrupt = Assert.Throws<VlsmException>(() => loader.Load(records[0], 0));
        Assert.Contains(set.MaskPath("a.png"), corrupt.Message);
        Assert.Contains("train.json: record 0", corrupt.Message);
        var missing = Assert.Throws<VlsmException>(() => loader.Load(records[1], 0));
        Assert.Contains(set.ImagePath("gone.png"), missing.Message);
    }

    [Fact]
    public void MissingPromptKeyIsAnErrorEvenWhenSkipping()
    {
        set.WriteImage("a.png", 4, 4);
        set.WriteMask("a.png", 4, 4);
        set.WriteSplit("train", Rec("a.png", "a.png"));
        var loader = new SampleLoader(Half(4), new SampleOptions { OnError = OnError.Skip }, PromptChoice.Parse("p7"));
        var e = Assert.Throws<VlsmException>(() => loader.Load(Single(), 0));
        Assert.Contains("\"p7\"", e.Message);
        Assert.Contains("record 0 (img_name \"a.png\")", e.Message);
    }

    [Fact]
    public void ExifOrientationIsAppliedToBothFiles()
    {
        // 16x8 JPEGs tagged "rotate 90° clockwise" (orientation 6) are upright at 8x16: both, so no size mismatch.
        var jpeg = DataTestSet.JpegBytes(new GrayImage(16, 8, new byte[16 * 8]), 90);
        File.WriteAllBytes(set.ImagePath("a.jpg"), DataTestSet.WithExifOrientation(jpeg, 6));
        File.WriteAllBytes(set.MaskPath("a.jpg"), DataTestSet.WithExifOrientation(jpeg, 6));
        set.WriteSplit("train", Rec("a.jpg", "a.jpg"));
        var sample = new SampleLoader(Half(2), new SampleOptions(), PromptChoice.Parse("p1")).Load(Single(), 0)!;
        Assert.Equal((8, 16), (sample.OriginalWidth, sample.OriginalHeight));
    }

    [Fact]
    public void ShortestEdgePreprocessorsAreRefused()
    {
        var pre = ImagePreprocessor.Parse("""{"size": {"shortest_edge": 224}, "do_center_crop": true, "crop_size": 224}""", "cfg.json");
        var e = Assert.Throws<VlsmException>(() => new SampleLoader(pre, new SampleOptions(), PromptChoice.Parse("p1")));
        Assert.Contains("shortest edge", e.Message);
    }
}
