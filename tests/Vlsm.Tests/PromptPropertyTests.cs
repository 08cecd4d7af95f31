using CsCheck;
using Vlsm.Data.Prompts;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>Random masks: the generator never crashes and agrees with an independent flood fill.</summary>
public sealed class PromptPropertyTests
{
    /// <summary>Masks of 1–24 × 1–24 pixels with a random foreground density.</summary>
    private static readonly Gen<BinaryMask> Masks =
        Gen.Select(Gen.Int[1, 24], Gen.Int[1, 24], Gen.Byte)
            .SelectMany((w, h, density) => Gen.Byte.Array[w * h].Select(bytes =>
                new BinaryMask(w, h, bytes.Select(b => b < density).ToArray())));

    /// <summary>Components by a recursive 4-neighbour flood fill on a copy: a different algorithm from the library's.</summary>
    private static int CountByFloodFill(BinaryMask mask)
    {
        var seen = new bool[mask.Width, mask.Height];
        int count = 0;
        void Fill(int x, int y)
        {
            if (x < 0 || y < 0 || x >= mask.Width || y >= mask.Height || seen[x, y] || !mask[x, y]) return;
            seen[x, y] = true;
            Fill(x + 1, y);
            Fill(x - 1, y);
            Fill(x, y + 1);
            Fill(x, y - 1);
        }
        for (int y = 0; y < mask.Height; y++)
            for (int x = 0; x < mask.Width; x++)
                if (mask[x, y] && !seen[x, y])
                {
                    count++;
                    Fill(x, y);
                }
        return count;
    }

    [Fact]
    public void NumberMatchesAnIndependentFloodFill()
    {
        Masks.Sample(mask =>
        {
            var d = MaskDescription.Of(mask);
            int expected = CountByFloodFill(mask);
            Assert.Equal(expected, d.Components.Count);
            Assert.Equal(MedvlsmRules.NumberWord(expected), d.Number);
            Assert.Equal(mask.Count, d.Components.Sum(c => c.Component.PixelCount));
        }, iter: 300);
    }

    [Fact]
    public void GeneratorNeverCrashesAndGivesWellFormedWords()
    {
        var cells = LocationGrid.CellNames.ToHashSet();
        Gen.Select(Masks, Gen.Int).Sample((mask, seed) =>
        {
            var random = new Random(seed);
            var image = new RgbImage(mask.Width, mask.Height);
            random.NextBytes(image.Pixels);
            var attributes = PromptGenerator.Describe(image, mask);
            var d = MaskDescription.Of(mask);
            if (mask.IsEmpty)
            {
                Assert.Null(attributes);
                return;
            }
            Assert.NotNull(attributes);
            var locations = attributes.Location.Split(", ");
            Assert.Equal(d.Components.Count, locations.Length);
            Assert.All(locations, l => Assert.Contains(l, cells));
            Assert.Contains(attributes.Shape, ShapeClassifier.Words);
            Assert.Contains(attributes.Color, ColorNamer.Palette.Select(c => c.Name));
            // Every component has a cell with at least 10 % of it (so the "none" branch never fires on masks).
            Assert.All(d.Components, c => Assert.Contains(c.Component.CellCounts, n => n >= 0.1 * c.Component.PixelCount));
            var prompts = PromptTemplates.Build("polyp", attributes, ClassDescriptions.Polyp);
            Assert.All(prompts.Values.SelectMany(v => v).Skip(1), p => Assert.DoesNotContain("  ", p));
            var m = ShapeClassifier.Measure(d.Labels, d.Components[0].Component);
            Assert.InRange(m.Solidity, 0.0, 1.0);
            Assert.True(m.AspectRatio >= 1);
        }, iter: 300);
    }

    [Fact]
    public void LabelsArePartitionedInRasterOrder()
    {
        Masks.Sample(mask =>
        {
            var labels = ConnectedComponents.Label(mask);
            int next = 1;
            for (int i = 0; i < labels.Labels.Length; i++)
            {
                Assert.Equal(mask.Pixels[i], labels.Labels[i] != 0);
                // The first time a label appears it is the next unused one.
                if (labels.Labels[i] == next) next++;
                else Assert.True(labels.Labels[i] < next);
            }
            Assert.Equal(labels.Components.Count + 1, next);
        }, iter: 200);
    }
}
