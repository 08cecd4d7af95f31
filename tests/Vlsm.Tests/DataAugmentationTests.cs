using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Tests;

public sealed class DataAugmentationTests
{
    /// <summary>A black image and an empty mask, each with one white pixel at (x, y).</summary>
    private static (RgbImage Image, GrayImage Mask) OnePixel(int w, int h, int x, int y)
    {
        var rgb = new byte[w * h * 3];
        var gray = new byte[w * h];
        rgb[3 * (y * w + x)] = rgb[3 * (y * w + x) + 1] = rgb[3 * (y * w + x) + 2] = 255;
        gray[y * w + x] = 255;
        return (new RgbImage(w, h, rgb), new GrayImage(w, h, gray));
    }

    private static (int X, int Y) WhereWhite(GrayImage mask) =>
        Enumerable.Range(0, mask.Pixels.Length).Where(i => mask.Pixels[i] == 255).Select(i => (i % mask.Width, i / mask.Width)).Single();

    private static (int X, int Y) WhereWhite(RgbImage image) =>
        Enumerable.Range(0, image.Width * image.Height).Where(i => image.Pixels[3 * i] == 255).Select(i => (i % image.Width, i / image.Width)).Single();

    [Theory]
    [InlineData(true, false, 0, 9, 2)]    // mirrored: x → w-1-x
    [InlineData(false, true, 0, 2, 5)]    // flipped: y → h-1-y
    [InlineData(true, true, 0, 9, 5)]
    [InlineData(false, false, 90, 2, 9)]  // a quarter turn counter-clockwise: (x, y) → (y, w-1-x) on a square
    [InlineData(false, false, 180, 9, 9)]
    public void OneWhitePixelMovesIdenticallyInImageAndMask(bool h, bool v, double degrees, int expectedX, int expectedY)
    {
        // Non-square for the vertical flips, so a mix-up of width and height shows.
        var (image, mask) = v ? OnePixel(12, 8, 2, 2) : OnePixel(12, 12, 2, 2);
        var draw = AugmentDraw.Identity with { FlipHorizontal = h, FlipVertical = v, RotationDegrees = degrees };
        var (outImage, outMask) = Augmentation.Apply(image, mask, draw);
        Assert.Equal((expectedX, expectedY), WhereWhite(outMask));
        Assert.Equal((expectedX, expectedY), WhereWhite(outImage));
        Assert.All(outMask.Pixels, p => Assert.True(p is 0 or 255));
    }

    [Fact]
    public void RandomRotationAndScaleKeepTheMaskOnTheImagesBrightSpot()
    {
        for (int seed = 0; seed < 20; seed++)
        {
            // A 3x3 white block: zooming out by up to 30% with nearest can drop a single pixel, not a block.
            var (image, mask) = OnePixel(32, 32, 11, 19);
            for (int y = 18; y <= 20; y++)
            {
                for (int x = 10; x <= 12; x++)
                {
                    mask.Pixels[y * 32 + x] = 255;
                    image.Pixels[3 * (y * 32 + x)] = image.Pixels[3 * (y * 32 + x) + 1] = image.Pixels[3 * (y * 32 + x) + 2] = 255;
                }
            }
            var rng = new StableRng((ulong)seed);
            var options = new AugmentOptions { MaxRotationDegrees = 45, MaxScaleChange = 0.3 };
            var draw = Augmentation.Draw(options, ref rng);
            var (outImage, outMask) = Augmentation.Apply(image, mask, draw);
            Assert.All(outMask.Pixels, p => Assert.True(p is 0 or 255)); // nearest: still binary
            var maskPixels = Enumerable.Range(0, 1024).Where(i => outMask.Pixels[i] == 255).ToArray();
            Assert.NotEmpty(maskPixels);
            // Every mask pixel reads inside the white block, so bilinear gives it at least a quarter of the brightness.
            Assert.All(maskPixels, i => Assert.True(outImage.Pixels[3 * i] >= 63, $"seed {seed}: mask pixel {i} is dark in the image ({draw})"));
            // And the image's brightness is centred within a pixel of the mask's.
            double mx = maskPixels.Average(i => i % 32), my = maskPixels.Average(i => i / 32);
            double total = 0, ix = 0, iy = 0;
            for (int i = 0; i < 1024; i++)
            {
                total += outImage.Pixels[3 * i];
                ix += outImage.Pixels[3 * i] * (i % 32);
                iy += outImage.Pixels[3 * i] * (i / 32);
            }
            Assert.InRange(ix / total - mx, -1.0, 1.0);
            Assert.InRange(iy / total - my, -1.0, 1.0);
        }
    }

    [Fact]
    public void ColourJitterChangesOnlyTheImage()
    {
        var (image, mask) = OnePixel(8, 8, 3, 3);
        for (int i = 0; i < image.Pixels.Length; i++) image.Pixels[i] = (byte)(i * 5);
        var draw = AugmentDraw.Identity with { Brightness = 1.2, Contrast = 0.8, Saturation = 1.3 };
        var (outImage, outMask) = Augmentation.Apply(image, mask, draw);
        Assert.Equal(mask.Pixels, outMask.Pixels);
        Assert.NotEqual(image.Pixels, outImage.Pixels);
        // Brightness alone scales (and clips).
        var bright = Augmentation.Apply(image, mask, AugmentDraw.Identity with { Brightness = 1.5 }).Image;
        for (int i = 0; i < image.Pixels.Length; i++)
            Assert.Equal((byte)Math.Min(255, Math.Round(image.Pixels[i] * 1.5, MidpointRounding.AwayFromZero)), bright.Pixels[i]);
    }

    [Theory]
    [InlineData("polyp at the top left", true, false, "polyp at the top right")]
    [InlineData("polyp at the top left", false, true, "polyp at the bottom left")]
    [InlineData("polyp at the top left", true, true, "polyp at the bottom right")]
    [InlineData("Left lobe, RIGHT side, Top, bottom.", true, true, "Right lobe, LEFT side, Bottom, top.")]
    [InlineData("leftmost lesion; bright spot; topology", true, true, "leftmost lesion; bright spot; topology")]
    [InlineData("located in right of the image", false, true, "located in right of the image")]
    [InlineData("top-left corner", true, false, "top-right corner")]
    [InlineData("left", false, false, "left")]
    public void FlipsSwapPositionWordsWholeWordKeepingCase(string prompt, bool h, bool v, string expected) =>
        Assert.Equal(expected, Augmentation.SwapPositionWords(prompt, h, v));

    [Fact]
    public void AugmentationIsDeterministicFromSeedEpochAndRecordAndSwapsThePrompt()
    {
        using var set = new DataTestSet();
        set.WriteSimpleSplit("train", 8, 16, 16);
        var records = MedvlsmDataset.Open(set.Root).Records("train");
        var options = new SampleOptions { Seed = 4, Augment = new AugmentOptions { HorizontalFlipProbability = 0.5, MaxRotationDegrees = 10 } };
        var loader = new SampleLoader(DataSampleLoaderTests.Half(16), options, PromptChoice.Parse("p3"));

        var first = records.Select(r => loader.Load(r, 2)!).ToArray();
        var again = records.Select(r => loader.Load(r, 2)!).ToArray();
        var other = records.Select(r => loader.Load(r, 3)!).ToArray();
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(first[i].Image, again[i].Image);
            Assert.Equal(first[i].Mask, again[i].Mask);
            Assert.Equal(first[i].Prompt, again[i].Prompt);
        }
        Assert.Contains(Enumerable.Range(0, 8), i => !first[i].Image.SequenceEqual(other[i].Image));
        // p3 says "left"; a mirrored sample says "right", and its mask's white half moved right.
        foreach (var s in first.Concat(other))
        {
            bool mirrored = s.Prompt.Contains("right");
            Assert.True(mirrored || s.Prompt.Contains("left"), s.Prompt);
            float leftHalf = 0, rightHalf = 0;
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++) (x < 8 ? ref leftHalf : ref rightHalf) += s.Mask[y * 16 + x];
            Assert.True(mirrored ? rightHalf > leftHalf : leftHalf > rightHalf, $"{s.Prompt}: {leftHalf} vs {rightHalf}");
        }
        Assert.Contains(first.Concat(other), s => s.Prompt.Contains("right"));
        Assert.Contains(first.Concat(other), s => s.Prompt.Contains("left"));
    }

    [Fact]
    public void OutOfRangeOptionsAreRejected()
    {
        var e = Assert.Throws<VlsmException>(() => new AugmentOptions { HorizontalFlipProbability = 1.5 }.Validate());
        Assert.Contains("horizontal flip", e.Message);
        Assert.False(AugmentOptions.None.IsEnabled);
    }
}
