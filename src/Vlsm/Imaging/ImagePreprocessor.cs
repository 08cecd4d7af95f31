using System.Text.Json;

namespace Vlsm.Imaging;

/// <summary>
/// Turns RGB images into model input the way HF's <c>ViTImageProcessor</c> (CLIPSeg's image
/// processor) does: Pillow resize, then <c>x * rescale_factor</c> in double cast to float32, then
/// <c>(x - mean) / std</c> in float32, channel-first.
/// </summary>
public sealed class ImagePreprocessor
{
    public const string FileName = "preprocessor_config.json";

    private static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    /// <summary>352×352, bilinear, rescale 1/255, ImageNet mean and std: CLIPSeg's (CIDAS/clipseg-rd64-refined) settings.</summary>
    public static ImagePreprocessor Default { get; } = new(
        doResize: true, width: 352, height: 352, shortestEdge: null, doCenterCrop: false,
        resample: ResampleFilter.Bilinear, doRescale: true, rescaleFactor: 1.0 / 255.0,
        doNormalize: true, mean: ImageNetMean, std: ImageNetStd);

    /// <summary>Bilinear resize to <paramref name="width"/>x<paramref name="height"/>, rescale 1/255, normalise with <paramref name="mean"/> and <paramref name="std"/> (CRIS: CLIP's statistics at img_size).</summary>
    public static ImagePreprocessor Resized(int width, int height, IReadOnlyList<float> mean, IReadOnlyList<float> std) => new(
        doResize: true, width: width, height: height, shortestEdge: null, doCenterCrop: false,
        resample: ResampleFilter.Bilinear, doRescale: true, rescaleFactor: 1.0 / 255.0,
        doNormalize: true, mean: mean.ToArray(), std: std.ToArray());

    /// <summary>
    /// torchvision's <c>Resize(size)</c> with an int, as medvlsm preprocesses its CNN baselines: the
    /// shorter side goes to <paramref name="size"/> with the aspect kept (bilinear, Pillow's
    /// antialiasing), rescale 1/255, normalise. Batches hold one size, so only images whose resize is
    /// <paramref name="size"/> x <paramref name="size"/> are taken (square ones, and those within a
    /// pixel of square); others are refused with <paramref name="hint"/>, as the reference refuses them.
    /// </summary>
    public static ImagePreprocessor ShorterSide(int size, IReadOnlyList<float> mean, IReadOnlyList<float> std, string hint) =>
        new(doResize: true, width: size, height: size, shortestEdge: null, doCenterCrop: false,
            resample: ResampleFilter.Bilinear, doRescale: true, rescaleFactor: 1.0 / 255.0,
            doNormalize: true, mean: mean.ToArray(), std: std.ToArray()) { keepAspectHint = hint };

    /// <summary>
    /// This preprocessing at <paramref name="side"/> x <paramref name="side"/> (<c>--image-size</c>): a
    /// plain resize to that size, with this resampling filter, rescaling and normalisation, as a
    /// preprocessor_config.json whose <c>size</c> said so would give; this one itself when null.
    /// </summary>
    public ImagePreprocessor WithSide(int? side) => side is not int n ? this
        : new(doResize: true, width: n, height: n, shortestEdge: null, doCenterCrop: false,
            Resample, DoRescale, RescaleFactor, DoNormalize, _mean, _std);

    /// <summary>Set for <see cref="ShorterSide"/>: what to do about an image it refuses.</summary>
    private string? keepAspectHint;

    /// <summary>Whether images are resized by their shorter side with the aspect kept (<see cref="ShorterSide"/>).</summary>
    public bool KeepsAspect => keepAspectHint is not null;

    /// <summary>
    /// Why an image of this size cannot become model input, or null when it can: under
    /// <see cref="ShorterSide"/>, torchvision's size rule (shorter side to the model size, longer side
    /// scaled and truncated) must give exactly the model's <see cref="Width"/> x <see cref="Height"/>.
    /// </summary>
    public string? SizeProblem(int width, int height)
    {
        if (keepAspectHint is null || !DoResize) return null;
        long shortSide = Math.Min(width, height), longSide = Math.Max(width, height);
        long newLong = (long)Height * longSide / shortSide;
        long w = width <= height ? Width : newLong, h = width <= height ? newLong : Height;
        if (w == Width && h == Height) return null;
        return $"the image is {width}x{height}; resizing its shorter side to {Height} with the aspect kept (the model's reference preprocessing) "
            + $"gives {w}x{h}, not the model's {Width}x{Height} input; {keepAspectHint}";
    }

    /// <summary>Model input width (after resizing and any center crop).</summary>
    public int Width { get; }

    /// <summary>Model input height (after resizing and any center crop).</summary>
    public int Height { get; }

    /// <summary>Per-channel mean (R, G, B) as float32, as HF casts it.</summary>
    public IReadOnlyList<float> Mean => _mean;

    /// <summary>Per-channel standard deviation (R, G, B) as float32, as HF casts it.</summary>
    public IReadOnlyList<float> Std => _std;

    public bool DoResize { get; }
    public ResampleFilter Resample { get; }
    public bool DoRescale { get; }
    public double RescaleFactor { get; }
    public bool DoNormalize { get; }

    /// <summary>When set, images are resized so their shorter edge has this length (aspect kept), then center-cropped to <see cref="Width"/>×<see cref="Height"/>.</summary>
    public int? ShortestEdge { get; }

    private readonly bool _doCenterCrop;
    private readonly float[] _mean;
    private readonly float[] _std;
    /// <summary>Output value for each channel and byte value: 3 × 256 entries.</summary>
    private readonly float[] _lut;

    private ImagePreprocessor(bool doResize, int width, int height, int? shortestEdge, bool doCenterCrop,
        ResampleFilter resample, bool doRescale, double rescaleFactor, bool doNormalize, float[] mean, float[] std)
    {
        DoResize = doResize;
        Width = width;
        Height = height;
        ShortestEdge = shortestEdge;
        _doCenterCrop = doCenterCrop;
        Resample = resample;
        DoRescale = doRescale;
        RescaleFactor = rescaleFactor;
        DoNormalize = doNormalize;
        _mean = mean;
        _std = std;
        _lut = new float[3 * 256];
        for (int c = 0; c < 3; c++)
        {
            for (int v = 0; v < 256; v++)
            {
                // HF: rescale() multiplies in float64 and casts to float32; normalize() then
                // works in float32 with mean and std cast to float32.
                float x = doRescale ? (float)(v * rescaleFactor) : v;
                _lut[c * 256 + v] = doNormalize ? (x - mean[c]) / std[c] : x;
            }
        }
    }

    /// <summary>
    /// Reads <c>preprocessor_config.json</c> from a HF model folder; <see cref="Default"/> when the
    /// folder has none. Fields absent from the file take the <see cref="Default"/> values.
    /// </summary>
    /// <exception cref="VlsmException">The file exists but cannot be read or has a malformed field.</exception>
    public static ImagePreprocessor FromFolder(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        string path = Path.Combine(modelDir, FileName);
        if (!File.Exists(path)) return Default;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VlsmException($"Cannot read '{path}': {e.Message} Check that the file is readable.", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses the JSON text of a <c>preprocessor_config.json</c>; <paramref name="path"/> is used in messages.</summary>
    /// <exception cref="VlsmException">The JSON is malformed or a field has the wrong type or value.</exception>
    public static ImagePreprocessor Parse(string json, string path)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new VlsmException($"'{path}' is not valid JSON ({e.Message}). Fix the file or delete it to use the defaults (352x352, ImageNet mean/std).", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new VlsmException($"'{path}' must hold a JSON object of image processor settings; it holds a {root.ValueKind}. Fix or delete the file.");
            var d = Default;

            bool doResize = Bool(root, "do_resize", d.DoResize, path);
            bool doRescale = Bool(root, "do_rescale", d.DoRescale, path);
            bool doNormalize = Bool(root, "do_normalize", d.DoNormalize, path);
            double rescale = Number(root, "rescale_factor", d.RescaleFactor, path);
            if (!(rescale > 0) || double.IsInfinity(rescale))
                throw Bad(path, "rescale_factor", "must be a positive number such as 0.00392156862745098 (1/255)");
            float[] mean = Triple(root, "image_mean", d._mean, path, positive: false);
            float[] std = Triple(root, "image_std", d._std, path, positive: true);

            var resample = d.Resample;
            if (root.TryGetProperty("resample", out var r) && r.ValueKind != JsonValueKind.Null)
            {
                if (r.ValueKind != JsonValueKind.Number || !r.TryGetInt32(out int code) || code < 0 || code > 5)
                    throw Bad(path, "resample", "must be a Pillow filter number: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming");
                resample = (ResampleFilter)code;
            }

            int width = d.Width, height = d.Height;
            int? shortest = null;
            bool crop = false;
            if (root.TryGetProperty("size", out var size) && size.ValueKind != JsonValueKind.Null)
            {
                if (size.ValueKind == JsonValueKind.Number)
                {
                    // HF's get_size_dict(int) for ViT-style processors: a square.
                    width = height = PositiveInt(size, "size", path);
                }
                else if (size.ValueKind == JsonValueKind.Object)
                {
                    bool hasH = size.TryGetProperty("height", out var h);
                    bool hasW = size.TryGetProperty("width", out var w);
                    if (hasH || hasW)
                    {
                        if (!(hasH && hasW)) throw Bad(path, "size", "needs both \"height\" and \"width\"");
                        height = PositiveInt(h, "size.height", path);
                        width = PositiveInt(w, "size.width", path);
                    }
                    else if (size.TryGetProperty("shortest_edge", out var se))
                    {
                        shortest = PositiveInt(se, "size.shortest_edge", path);
                        crop = Bool(root, "do_center_crop", true, path);
                        if (!crop)
                            throw Bad(path, "size", "is {\"shortest_edge\"} without do_center_crop, which gives inputs of varying size; vlsm needs a fixed size: use {\"height\": H, \"width\": W}");
                        width = height = shortest.Value;
                        if (root.TryGetProperty("crop_size", out var cs) && cs.ValueKind != JsonValueKind.Null)
                        {
                            if (cs.ValueKind == JsonValueKind.Number) width = height = PositiveInt(cs, "crop_size", path);
                            else if (cs.ValueKind == JsonValueKind.Object && cs.TryGetProperty("height", out var ch) && cs.TryGetProperty("width", out var cw))
                            {
                                height = PositiveInt(ch, "crop_size.height", path);
                                width = PositiveInt(cw, "crop_size.width", path);
                            }
                            else throw Bad(path, "crop_size", "must be an integer or {\"height\": H, \"width\": W}");
                        }
                    }
                    else throw Bad(path, "size", "must hold \"height\" and \"width\", or \"shortest_edge\"");
                }
                else throw Bad(path, "size", "must be an integer or an object {\"height\": H, \"width\": W}");
            }

            return new ImagePreprocessor(doResize, width, height, shortest, crop, resample, doRescale, rescale, doNormalize, mean, std);
        }
    }

    /// <summary>One image as model input: 3 × <see cref="Height"/> × <see cref="Width"/> floats, channel-first (R, G, B planes).</summary>
    /// <exception cref="VlsmException">Resizing is off and the image is not already <see cref="Width"/>×<see cref="Height"/>.</exception>
    public float[] ToChw(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var output = new float[3L * Width * Height];
        ToChw(image, output);
        return output;
    }

    /// <summary>Several images concatenated: N × 3 × <see cref="Height"/> × <see cref="Width"/>, processed in parallel.</summary>
    public float[] ToChwBatch(IReadOnlyList<RgbImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        int plane = 3 * Width * Height;
        long total = (long)images.Count * plane;
        if (total > Array.MaxLength)
            throw new ArgumentException($"A batch of {images.Count} images of {Width}x{Height} is too large for one array; use smaller batches.", nameof(images));
        var output = new float[total];
        Parallel.For(0, images.Count, i =>
        {
            var image = images[i] ?? throw new ArgumentException($"Image {i} of the batch is null.", nameof(images));
            ToChw(image, output.AsSpan(i * plane, plane));
        });
        return output;
    }

    private void ToChw(RgbImage image, Span<float> output) => Normalize(Prepare(image), output);

    /// <summary>
    /// Rescales and normalises an image already at model size (from <see cref="Prepare"/>, perhaps
    /// augmented since) into <paramref name="output"/>: 3 × <see cref="Height"/> × <see cref="Width"/>, channel-first.
    /// </summary>
    /// <exception cref="ArgumentException">The image is not <see cref="Width"/>×<see cref="Height"/> or the output has the wrong length.</exception>
    public void Normalize(RgbImage sized, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(sized);
        if (sized.Width != Width || sized.Height != Height)
            throw new ArgumentException($"The image is {sized.Width}x{sized.Height}; Normalize needs the model size {Width}x{Height} (call Prepare first).", nameof(sized));
        int count = Width * Height;
        if (output.Length != 3 * count)
            throw new ArgumentException($"The output holds {output.Length} floats; a {Width}x{Height} image needs {3 * count}.", nameof(output));
        ReadOnlySpan<byte> px = sized.Pixels;
        ReadOnlySpan<float> lut = _lut;
        ReadOnlySpan<float> lr = lut[..256], lg = lut.Slice(256, 256), lb = lut.Slice(512, 256);
        Span<float> r = output[..count], g = output.Slice(count, count), b = output.Slice(2 * count, count);
        for (int i = 0, s = 0; i < count; i++, s += 3)
        {
            r[i] = lr[px[s]];
            g[i] = lg[px[s + 1]];
            b[i] = lb[px[s + 2]];
        }
    }

    /// <summary>The resized (and center-cropped) 8-bit image that <see cref="ToChw(RgbImage)"/> normalizes.</summary>
    public RgbImage Prepare(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!DoResize)
        {
            if (image.Width != Width || image.Height != Height)
                throw new VlsmException(
                    $"The image is {image.Width}x{image.Height} but the preprocessor has do_resize off and expects {Width}x{Height}. Turn do_resize on or resize the images.");
            return image;
        }
        if (SizeProblem(image.Width, image.Height) is { } problem) throw new VlsmException(problem);
        if (ShortestEdge is not int shortest)
            return Resize.Resample(image, Width, Height, Resample);

        // HF get_resize_output_image_size(default_to_square=False), then center_crop.
        int w = image.Width, h = image.Height;
        int shortSide = Math.Min(w, h), longSide = Math.Max(w, h);
        int newLong = (int)((long)shortest * longSide / shortSide);
        int rw = w <= h ? shortest : newLong, rh = w <= h ? newLong : shortest;
        var resized = Resize.Resample(image, rw, rh, Resample);
        return _doCenterCrop ? CenterCrop(resized, Width, Height) : resized;
    }

    /// <summary>HF <c>center_crop</c>: top/left = (size - crop) // 2, zero padding when the image is smaller.</summary>
    private static RgbImage CenterCrop(RgbImage src, int cropW, int cropH)
    {
        if (src.Width == cropW && src.Height == cropH) return src;
        var dst = new RgbImage(cropW, cropH);
        int top = FloorDiv(src.Height - cropH, 2), left = FloorDiv(src.Width - cropW, 2);
        for (int y = 0; y < cropH; y++)
        {
            int sy = y + top;
            if (sy < 0 || sy >= src.Height) continue;
            int x0 = Math.Max(0, -left), x1 = Math.Min(cropW, src.Width - left);
            if (x1 <= x0) continue;
            src.Pixels.AsSpan((sy * src.Width + x0 + left) * 3, (x1 - x0) * 3)
                .CopyTo(dst.Pixels.AsSpan((y * cropW + x0) * 3));
        }
        return dst;

        static int FloorDiv(int a, int b) => (int)Math.Floor((double)a / b);
    }

    // ---------------------------------------------------------------- JSON helpers

    private static VlsmException Bad(string path, string field, string what) =>
        new($"'{path}': field \"{field}\" {what}. Fix the field or remove it to use the default.");

    private static bool Bool(JsonElement root, string name, bool fallback, string path)
    {
        if (!root.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return fallback;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(path, name, $"must be true or false, not {e.GetRawText()}"),
        };
    }

    private static double Number(JsonElement root, string name, double fallback, string path)
    {
        if (!root.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return fallback;
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out double v))
            throw Bad(path, name, $"must be a number, not {e.GetRawText()}");
        return v;
    }

    private static int PositiveInt(JsonElement e, string name, string path)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int v) || v <= 0 || v > 65536)
            throw Bad(path, name, $"must be a positive integer (pixels), not {e.GetRawText()}");
        return v;
    }

    private static float[] Triple(JsonElement root, string name, float[] fallback, string path, bool positive)
    {
        if (!root.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return fallback;
        string need = positive ? "three positive numbers (R, G, B)" : "three numbers (R, G, B)";
        if (e.ValueKind == JsonValueKind.Number)
        {
            // HF accepts a single float for all channels.
            float one = (float)e.GetDouble();
            if (positive && !(one > 0)) throw Bad(path, name, $"must be {need}, not {e.GetRawText()}");
            return [one, one, one];
        }
        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != 3)
            throw Bad(path, name, $"must be {need}, not {e.GetRawText()}");
        var result = new float[3];
        int i = 0;
        foreach (var item in e.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetDouble(out double v) || !double.IsFinite(v) || (positive && !(v > 0)))
                throw Bad(path, name, $"must be {need}, not {e.GetRawText()}");
            result[i++] = (float)v;
        }
        return result;
    }
}
