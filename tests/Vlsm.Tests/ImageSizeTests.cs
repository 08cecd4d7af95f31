using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.Models;
using Vlsm.Models.Registry;

namespace Vlsm.Tests;

/// <summary>
/// Input sizes other than a model's own (<c>--image-size N</c>) in the library: the models of the
/// families that take other sizes predict at them.
/// </summary>
[Collection(GlobalRngCollection.Name)] // opening models draws from libtorch's global generator
public sealed class ImageSizeTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-image-size-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny(string name) => Path.Combine(Fixtures.Parity, name);

    public static TheoryData<string, int> TakeOtherSizes => new()
    {
        { "clipseg-tiny", 64 },
        { "cris-tiny", 64 },
        { "san-tiny", 64 },
        { "smp-unet-tiny", 64 },
        { "smp-unetplusplus-tiny", 96 },
        { "smp-deeplabv3plus-tiny", 48 },
    };

    [Theory]
    [MemberData(nameof(TakeOtherSizes))]
    public void AFamilyThatTakesOtherSizesPredictsAtThem(string model, int side)
    {
        string dir = Tiny(model);
        var family = ModelFamilies.ForFolder(dir);
        var image = new RgbImage(70, 70, Enumerable.Range(0, 70 * 70 * 3).Select(i => (byte)(i * 7 % 251)).ToArray());
        var prompts = family.TakesText ? new[] { "a round polyp" } : null;
        int ownInput, ownOutput;
        using (var own = ModelFamilies.OpenSegmenter(new ModelRequest { Directory = dir }))
        {
            ownInput = own.Preprocessor.Width;
            ownOutput = Assert.Single(own.Predict([image], prompts)).Width;
        }
        Assert.NotEqual(side, ownInput); // the fixture's own size is another
        using var segmenter = ModelFamilies.OpenSegmenter(new ModelRequest { Directory = dir, ImageSize = side });
        Assert.Equal((side, side), (segmenter.Preprocessor.Width, segmenter.Preprocessor.Height));
        var prediction = Assert.Single(segmenter.Predict([image], prompts));
        // The output follows the input: the input size, or a fixed fraction of it (clipseg-tiny's head gives half: patch 8, two x2 transposed convolutions).
        int output = side * ownOutput / ownInput;
        Assert.Equal((output, output), (prediction.Width, prediction.Height));
        Assert.All(prediction.Probabilities, p => Assert.InRange(p, 0f, 1f));
    }
}
