using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>Random masks, random file bytes and random annotation JSON: the data layer either works or says which file is at fault.</summary>
public sealed class DataPropertyTests : IDisposable
{
    private readonly DataTestSet set = new();
    private int counter;

    public void Dispose() => set.Dispose();

    private string Unique(string ext) => $"f{Interlocked.Increment(ref counter)}.{ext}";

    private DatasetRecord RecordFor(string img, string mask) =>
        MedvlsmDataset.Open(set.Root).Resolve("train", Path.Combine(set.Root, "anns", "train.json"), 0,
            new AnnotationRecord(img, mask, DataTestSet.StandardPrompts(img)), out _)!;

    [Fact]
    public void RandomMasksNeverCrashAndGiveTargetsInRange()
    {
        var gen = Gen.Select(Gen.Int[1, 24], Gen.Int[1, 24], Gen.Int[0, 254], Gen.Bool, Gen.Int[1, 12])
            .SelectMany((w, h, threshold, soft, size) => Gen.Byte.Array[w * h].Select(values => (w, h, threshold, soft, size, values)));
        gen.Sample(t =>
        {
            string name = Unique("png");
            set.WriteImage(name, t.w, t.h);
            set.WriteMask(name, t.w, t.h, t.values);
            var record = RecordFor(name, name);
            var options = new SampleOptions { MaskThreshold = t.threshold, MaskMode = t.soft ? MaskMode.Soft : MaskMode.Binary };
            var pre = DataSampleLoaderTests.Half(t.size);
            var sample = new SampleLoader(pre, options, PromptChoice.Parse("p1")).Load(record, 0)!;

            Assert.Equal(t.size * t.size, sample.Mask.Length);
            Assert.Equal(3 * t.size * t.size, sample.Image.Length);
            Assert.Equal((t.w, t.h), (sample.OriginalWidth, sample.OriginalHeight));
            var resized = Resize.ResizeNearest(new GrayImage(t.w, t.h, t.values), t.size, t.size).Pixels;
            for (int i = 0; i < resized.Length; i++)
                Assert.Equal(t.soft ? resized[i] / 255f : resized[i] > t.threshold ? 1f : 0f, sample.Mask[i]);
            Assert.All(sample.Image, v => Assert.True(float.IsFinite(v) && v >= -1f && v <= 1f));
        }, iter: 60, threads: 1);
    }

    [Fact]
    public void RandomImageAndMaskBytesGiveOnlyErrorsNamingTheFile()
    {
        set.WriteImage("good.png", 16, 16);
        set.WriteMask("good.png", 16, 16);
        DataTestSet.SaveJpeg(set.MaskPath("good.jpg"), new GrayImage(16, 16, new byte[256]));
        byte[][] seeds = [File.ReadAllBytes(set.ImagePath("good.png")), File.ReadAllBytes(set.MaskPath("good.png")), File.ReadAllBytes(set.MaskPath("good.jpg"))];
        var bytes = Gen.OneOf(
            Gen.Byte.Array[0, 300],
            Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Double[0, 1], (s, f) => seeds[s][..(int)(seeds[s].Length * f)]),
            Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Int[0, 100000].Array[1, 6], Gen.Byte.Array[6], (s, at, val) =>
            {
                var b = (byte[])seeds[s].Clone();
                for (int i = 0; i < at.Length; i++) b[at[i] % b.Length] = val[i];
                return b;
            }));
        var loader = new SampleLoader(DataSampleLoaderTests.Half(8), new SampleOptions(), PromptChoice.Parse("p1"));
        Gen.Select(bytes, Gen.Bool).Sample((content, asMask) =>
        {
            string name = Unique("png");
            string path = asMask ? set.MaskPath(name) : set.ImagePath(name);
            File.WriteAllBytes(path, content);
            var record = asMask ? RecordFor("good.png", name) : RecordFor(name, "good.png");
            try
            {
                loader.Load(record, 0);
            }
            catch (VlsmException e)
            {
                Assert.Contains(path, e.Message);
            }
        }, iter: 150, threads: 1);
    }

    /// <summary>Random JSON built from the annotation vocabulary, so the reader's own checks are reached, not just the JSON parser's.</summary>
    private static readonly Gen<JsonNode?> AnnotationLikeJson = Gen.Recursive<JsonNode?>((depth, self) =>
    {
        var scalar = Gen.OneOf<JsonNode?>(
            Gen.Const((JsonNode?)null),
            Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b)),
            Gen.Int[-5, 5].Select(i => (JsonNode?)JsonValue.Create(i)),
            Gen.OneOf("", "a.png", "../up.png", "/abs.png", "mask_1/x.png", "p0", "random", "sub\\..\\x.png", "C:/x.png", "\u0000")
                .Select(s => (JsonNode?)JsonValue.Create(s)));
        if (depth > 3) return scalar;
        var key = Gen.OneOf("img_name", "mask_name", "prompts", "p0", "p1", "p2", "bbox", "x");
        var obj = Gen.Select(key, self).Array[0, 5].Select(pairs =>
        {
            var o = new JsonObject();
            foreach (var (k, v) in pairs) o[k] = v?.DeepClone();
            return (JsonNode?)o;
        });
        var arr = self.Array[0, 4].Select(items => (JsonNode?)new JsonArray(items.Select(i => i?.DeepClone()).ToArray()));
        return Gen.Frequency<JsonNode?>((3, scalar), (3, obj), (2, arr));
    });

    [Fact]
    public void RandomAnnotationJsonGivesOnlyErrorsNamingTheFile()
    {
        string valid = """[{"img_name": "a.png", "mask_name": "mask_1/a.png", "prompts": {"p0": "", "p1": ["x", "y"]}}]""";
        var text = Gen.OneOf(
            Gen.Byte.Array[0, 200].Select(b => Encoding.Latin1.GetString(b)),
            AnnotationLikeJson.Array[0, 4].Select(items => new JsonArray(items.Select(i => i?.DeepClone()).ToArray()).ToJsonString()),
            AnnotationLikeJson.Select(n => n?.ToJsonString() ?? "null"),
            // The valid file with characters deleted or replaced: near-misses of real files.
            Gen.Select(Gen.Int[0, valid.Length - 1].Array[1, 4], Gen.Char["{}[]\":,x0 "].Array[4], (at, with) =>
            {
                var sb = new StringBuilder(valid);
                for (int i = 0; i < at.Length; i++) sb[at[i] % sb.Length] = with[i];
                return sb.ToString();
            }),
            Gen.Const("""[{"img_name": "a", "img_name": "b", "mask_name": "m"}]"""));
        text.Sample(content =>
        {
            using var ds = new DataTestSet();
            string path = Path.Combine(ds.Root, "anns", "train.json");
            File.WriteAllText(path, content);
            try
            {
                var records = MedvlsmDataset.Open(ds.Root).Records("train");
                Assert.All(records, r =>
                {
                    Assert.StartsWith(ds.Root, r.ImagePath);
                    Assert.StartsWith(ds.Root, r.MaskPath);
                });
            }
            catch (VlsmException e)
            {
                Assert.Contains(path, e.Message);
            }
            // The checker reports instead of throwing.
            var report = DatasetChecker.Plan(ds.Root, new DatasetCheckOptions { Prompt = PromptChoice.Random, Workers = 1 }).Run();
            Assert.All(report.Issues, i => Assert.False(string.IsNullOrEmpty(i.File)));
        }, iter: 200, threads: 1);
    }
}
