using Vlsm.Data.Prompts;
using Vlsm.Imaging;

namespace Vlsm.Data.Synthetic;

/// <summary>
/// Procedural scenes for the demo and the tests: one to three objects that differ in colour
/// and in shape word, on a plain or textured background, with pixel noise and blur. Each object
/// has its own mask and prompts p0–p9 built with the generator's number/size/location rules
/// computed on that object's mask, so from p2 on the prompt alone decides which object is meant.
/// Scene k depends only on (seed, k, options): scenes are independent and reproducible.
/// </summary>
public static class SyntheticScenes
{
    public static readonly IReadOnlyList<string> NaturalShapes = ["circle", "square", "triangle", "ellipse"];
    public static readonly IReadOnlyList<string> MedicalShapes = ShapeClassifier.Words;

    /// <summary>Bright, saturated object colours for the natural style.</summary>
    public static readonly IReadOnlyList<string> NaturalColors = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black"];

    /// <summary>Tissue-like object colours for the medical style.</summary>
    public static readonly IReadOnlyList<string> MedicalColors = ["pink", "brown", "white", "dark red", "tan", "yellow", "orange"];

    private static readonly (byte R, byte G, byte B)[] NaturalBackgrounds =
        [(200, 200, 200), (235, 232, 225), (215, 205, 185), (90, 95, 105), (150, 150, 150), (55, 58, 62)];

    private static readonly (byte R, byte G, byte B)[] MedicalBackgrounds =
        [(190, 105, 90), (215, 165, 135), (200, 175, 170), (150, 80, 70), (225, 190, 180)];

    /// <summary>Objects closer than this to the background (ΔE*76 in CIELAB) would be invisible, not just low-contrast.</summary>
    private const double MinBackgroundContrast = 30;

    /// <summary>Pixels kept free around each object, so blur never joins two objects.</summary>
    private const int Gap = 3;

    /// <summary>Descriptions for prompts p7–p9 of a synthetic class (medvlsm's own for polyp).</summary>
    public static IReadOnlyList<string> Descriptions(string className)
    {
        var builtIn = ClassDescriptions.BuiltIn(className);
        if (builtIn.Count > 0) return builtIn;
        string[] texts = className.Trim().ToLowerInvariant() switch
        {
            "shape" or "object" => ["a flat figure of a single colour", "a simple geometric figure with a sharp outline", "a solid region that stands out from the background"],
            "lesion" => ["an abnormal patch of tissue", "a region that looks different from the tissue around it", "a spot with a blurred border"],
            _ => ["a region that stands out from the background", "one object of the scene"],
        };
        return texts.Select(t => ClassDescriptions.ToPhrase(className, t)).ToArray();
    }

    /// <summary>File stem of scene <paramref name="index"/> ("synth_00042"); at least five digits, more for large sets.</summary>
    public static string SceneName(int index, int sceneCount)
    {
        int digits = Math.Max(5, (Math.Max(sceneCount, 1) - 1).ToString(System.Globalization.CultureInfo.InvariantCulture).Length);
        return "synth_" + index.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(digits, '0');
    }

    /// <summary>Renders scene <paramref name="index"/> of a dataset with these options.</summary>
    public static SynthScene Render(SynthOptions options, int index)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        var rng = SeededRandom.ForItem(options.Seed, (ulong)index);
        int size = options.Size;
        bool medical = options.Style == SynthStyle.Medical;
        string className = options.EffectiveClassName;
        var phrases = Descriptions(className);

        var background = rng.Pick(medical ? MedicalBackgrounds : NaturalBackgrounds);
        var backgroundLab = ColorNamer.ToLab(background.R, background.G, background.B);
        var colors = (medical ? MedicalColors : NaturalColors)
            .Where(name =>
            {
                var c = ColorNamer.Get(name);
                var lab = ColorNamer.ToLab(c.R, c.G, c.B);
                double d2 = Sq(lab.L - backgroundLab.L) + Sq(lab.A - backgroundLab.A) + Sq(lab.B - backgroundLab.B);
                return d2 >= Sq(MinBackgroundContrast);
            }).ToList();
        var shapes = (medical ? MedicalShapes : NaturalShapes).ToList();
        rng.Shuffle(colors);
        rng.Shuffle(shapes);

        // Every background leaves at least three contrasting colours; the Min only guards edits of the palettes.
        int wanted = Math.Min(Math.Clamp(1 + PickObjectCount(rng), options.MinObjects, options.MaxObjects), colors.Count);
        // Area fractions: fewer objects may be larger; most targets land within 8–35 % of the image.
        (double Min, double Max) fraction = wanted switch { 1 => (0.10, 0.35), 2 => (0.08, 0.24), _ => (0.07, 0.17) };

        var occupied = new bool[size * size]; // object pixels dilated by Gap
        var placed = new List<(string Color, string Shape, BinaryMask Mask)>();
        for (int k = 0; k < wanted; k++)
        {
            string color = colors[k];
            string? shape = null;
            BinaryMask? mask = null, lastPlaced = null;
            // Medical shape words come from the classifier, so a drawn blob must be classified as
            // the word it was drawn for; redraw the few that are not.
            for (int attempt = 0; attempt < 12 && mask is null; attempt++)
            {
                string intended = shapes[k];
                var geometry = Make(intended, rng.NextDouble(fraction.Min, fraction.Max) * size * size, rng);
                var candidate = Place(geometry, size, occupied, rng);
                if (candidate is null) continue;
                lastPlaced = candidate;
                if (medical && ShapeClassifier.Name(candidate) != intended) continue;
                (shape, mask) = (intended, candidate);
            }
            if (mask is null && k == 0 && lastPlaced is not null)
            {
                // Never seen in practice; a scene must have an object, and the first cannot clash
                // with another's shape word, so take the word the classifier gives.
                (shape, mask) = (ShapeClassifier.Name(lastPlaced)!, lastPlaced);
                // Keep the later objects' words distinct from it.
                int taken = shapes.IndexOf(shape);
                if (taken > 0) (shapes[0], shapes[taken]) = (shapes[taken], shapes[0]);
            }
            if (mask is null || shape is null)
            {
                if (k == 0) throw new InvalidOperationException($"scene {index}: could not place a first object (size {size}); this is a bug.");
                break; // a crowded scene keeps the objects it has
            }
            Occupy(occupied, mask, size);
            placed.Add((color, shape, mask));
        }

        var image = medical ? PaintMedical(size, background, placed, rng) : PaintNatural(size, background, placed, rng);
        var objects = placed.Select(p =>
        {
            var description = MaskDescription.Of(p.Mask);
            var attributes = new PromptAttributes(description.Number, description.Sizes, p.Color, p.Shape, description.Locations);
            return new SynthObject(p.Color, p.Shape, p.Mask, attributes, PromptTemplates.Build(className, attributes, phrases));
        }).ToList();
        return new SynthScene(index, SceneName(index, options.Scenes), image, objects);
    }

    /// <summary>0, 1 or 2 extra objects with probabilities 0.4, 0.35, 0.25.</summary>
    private static int PickObjectCount(SeededRandom rng)
    {
        double u = rng.NextDouble();
        return u < 0.4 ? 0 : u < 0.75 ? 1 : 2;
    }

    /// <summary>A shape of about <paramref name="area"/> pixels, centred at the origin for now.</summary>
    private static ShapeGeometry Make(string shape, double area, SeededRandom rng) => shape switch
    {
        "circle" => new Disc(Math.Sqrt(area / Math.PI)),
        "square" => new Square(Math.Sqrt(area) / 2, rng.NextDirection()),
        "triangle" => new Triangle(Math.Sqrt(4 * area / Math.Sqrt(3)) / Math.Sqrt(3), rng.NextDirection()),
        "ellipse" => MakeEllipse(area, rng.NextDouble(1.6, 2.2), rng),
        ShapeClassifier.Round => MakeEllipse(area, rng.NextDouble(1.0, 1.15), rng),
        ShapeClassifier.Oval => MakeEllipse(area, rng.NextDouble(1.6, 2.1), rng),
        ShapeClassifier.Elongated => MakeEllipse(area, rng.NextDouble(3.0, 4.0), rng),
        ShapeClassifier.Irregular => MakeBlob(area, rng),
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "unknown synthetic shape"),
    };

    private static Ellipse MakeEllipse(double area, double aspect, SeededRandom rng)
    {
        double a = Math.Sqrt(area * aspect / Math.PI);
        return new Ellipse(a, a / aspect, rng.NextDirection());
    }

    /// <summary>A core disc with three to five lobes on its rim; lobes add about half the core's area.</summary>
    private static LobedBlob MakeBlob(double area, SeededRandom rng)
    {
        double core = Math.Sqrt(area / (1.5 * Math.PI));
        int count = rng.NextInt(3, 6);
        var lobes = new (double X, double Y, double R)[count];
        for (int i = 0; i < count; i++)
        {
            var (c, s) = rng.NextDirection();
            double distance = core * rng.NextDouble(0.9, 1.15), radius = core * rng.NextDouble(0.4, 0.6);
            lobes[i] = (c * distance, s * distance, radius);
        }
        return new LobedBlob(core, lobes);
    }

    /// <summary>
    /// Puts the shape at a random spot fully inside the image and clear of other objects; shrinks
    /// it (to at most 0.8⁴ of its size) when no spot is found. Null when it never fits.
    /// </summary>
    private static BinaryMask? Place(ShapeGeometry geometry, int size, bool[] occupied, SeededRandom rng)
    {
        // Never larger than 90 % of the image across.
        double limit = 0.45 * size;
        if (geometry.Radius > limit) geometry.Scale(limit / geometry.Radius);
        for (int shrink = 0; shrink < 5; shrink++, geometry.Scale(0.8))
        {
            double r = geometry.Radius;
            double low = r + 1, high = size - r - 1;
            if (high <= low) continue;
            for (int attempt = 0; attempt < 40; attempt++)
            {
                geometry.CenterX = rng.NextDouble(low, high);
                geometry.CenterY = rng.NextDouble(low, high);
                if (geometry.Overlaps(occupied, size)) continue;
                var mask = geometry.Rasterize(size);
                return mask.IsEmpty ? null : mask;
            }
        }
        return null;
    }

    /// <summary>Marks the mask dilated by <see cref="Gap"/> pixels (a square neighbourhood) as taken; separable: rows, then columns.</summary>
    private static void Occupy(bool[] occupied, BinaryMask mask, int size)
    {
        var wide = new bool[size * size];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                if (mask[x, y])
                    for (int xx = Math.Max(0, x - Gap); xx <= Math.Min(size - 1, x + Gap); xx++) wide[y * size + xx] = true;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                if (wide[y * size + x])
                    for (int yy = Math.Max(0, y - Gap); yy <= Math.Min(size - 1, y + Gap); yy++) occupied[yy * size + x] = true;
    }

    // ------------------------------------------------------------------ painting

    private static RgbImage PaintNatural(int size, (byte R, byte G, byte B) background, List<(string Color, string Shape, BinaryMask Mask)> objects, SeededRandom rng)
    {
        var pixels = new double[size * size * 3];
        // Plain or lightly textured background, so the model must look at colour and shape, not texture.
        double[]? texture = rng.NextBool(0.5) ? ValueNoise(size, rng, rng.NextDouble(0.04, 0.10)) : null;
        Fill(pixels, size, background, texture);
        foreach (var (colorName, _, mask) in objects)
        {
            var color = Jitter(ColorNamer.Get(colorName), 8, rng);
            for (int i = 0; i < mask.Pixels.Length; i++)
            {
                if (!mask.Pixels[i]) continue;
                pixels[3 * i] = color.R;
                pixels[3 * i + 1] = color.G;
                pixels[3 * i + 2] = color.B;
            }
        }
        AddNoise(pixels, rng.NextDouble(1.5, 5), rng);
        if (rng.NextBool(0.3)) pixels = BoxBlur(pixels, size, 1);
        return ToImage(pixels, size);
    }

    private static RgbImage PaintMedical(int size, (byte R, byte G, byte B) background, List<(string Color, string Shape, BinaryMask Mask)> objects, SeededRandom rng)
    {
        var pixels = new double[size * size * 3];
        Fill(pixels, size, background, ValueNoise(size, rng, rng.NextDouble(0.10, 0.18)));
        foreach (var (colorName, _, mask) in objects)
        {
            var color = Jitter(ColorNamer.Get(colorName), 10, rng);
            var texture = ValueNoise(size, rng, rng.NextDouble(0.05, 0.10));
            // Soft edges: the object's opacity is its mask blurred twice (≈ Gaussian, σ ≈ 1.4 px),
            // scaled down so the object blends with the tissue instead of sitting on it.
            var alpha = new double[size * size];
            for (int i = 0; i < alpha.Length; i++) alpha[i] = mask.Pixels[i] ? 1 : 0;
            alpha = BoxBlur(BoxBlur(alpha, size, 1, channels: 1), size, 1, channels: 1);
            double contrast = rng.NextDouble(0.6, 0.85);
            for (int i = 0; i < alpha.Length; i++)
            {
                double a = alpha[i] * contrast;
                if (a <= 0) continue;
                double shade = 1 + texture[i];
                pixels[3 * i] = (1 - a) * pixels[3 * i] + a * color.R * shade;
                pixels[3 * i + 1] = (1 - a) * pixels[3 * i + 1] + a * color.G * shade;
                pixels[3 * i + 2] = (1 - a) * pixels[3 * i + 2] + a * color.B * shade;
            }
        }
        AddNoise(pixels, rng.NextDouble(3, 7), rng);
        pixels = BoxBlur(pixels, size, 1);
        return ToImage(pixels, size);
    }

    private static (double R, double G, double B) Jitter(NamedColor c, double amount, SeededRandom rng) =>
        (c.R + rng.NextDouble(-amount, amount), c.G + rng.NextDouble(-amount, amount), c.B + rng.NextDouble(-amount, amount));

    private static void Fill(double[] pixels, int size, (byte R, byte G, byte B) color, double[]? texture)
    {
        for (int i = 0; i < size * size; i++)
        {
            double shade = texture is null ? 1 : 1 + texture[i];
            pixels[3 * i] = color.R * shade;
            pixels[3 * i + 1] = color.G * shade;
            pixels[3 * i + 2] = color.B * shade;
        }
    }

    /// <summary>
    /// Smooth random shading in [−amplitude, amplitude]: two octaves of value noise (random values
    /// on a coarse grid, smoothstep-interpolated), cells of a third and an eighth of the image.
    /// </summary>
    private static double[] ValueNoise(int size, SeededRandom rng, double amplitude)
    {
        var result = new double[size * size];
        foreach (var (cells, weight) in new[] { (3, 0.65), (8, 0.35) })
        {
            int n = cells + 2;
            var grid = new double[n * n];
            for (int i = 0; i < grid.Length; i++) grid[i] = rng.NextDouble(-1, 1);
            double step = (double)size / cells;
            for (int y = 0; y < size; y++)
            {
                double gy = (y + 0.5) / step;
                int iy = (int)gy;
                double ty = Smooth(gy - iy);
                for (int x = 0; x < size; x++)
                {
                    double gx = (x + 0.5) / step;
                    int ix = (int)gx;
                    double tx = Smooth(gx - ix);
                    double top = grid[iy * n + ix] * (1 - tx) + grid[iy * n + ix + 1] * tx;
                    double bottom = grid[(iy + 1) * n + ix] * (1 - tx) + grid[(iy + 1) * n + ix + 1] * tx;
                    result[y * size + x] += amplitude * weight * (top * (1 - ty) + bottom * ty);
                }
            }
        }
        return result;

        static double Smooth(double t) => t * t * (3 - 2 * t);
    }

    private static void AddNoise(double[] pixels, double sigma, SeededRandom rng)
    {
        for (int i = 0; i < pixels.Length; i++) pixels[i] += sigma * rng.NextGaussian();
    }

    /// <summary>Mean over a (2r+1)² window, clamped at the borders; separable.</summary>
    private static double[] BoxBlur(double[] pixels, int size, int radius, int channels = 3)
    {
        var horizontal = new double[pixels.Length];
        var result = new double[pixels.Length];
        double norm = 1.0 / (2 * radius + 1);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                for (int c = 0; c < channels; c++)
                {
                    double sum = 0;
                    for (int d = -radius; d <= radius; d++)
                        sum += pixels[(y * size + Math.Clamp(x + d, 0, size - 1)) * channels + c];
                    horizontal[(y * size + x) * channels + c] = sum * norm;
                }
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                for (int c = 0; c < channels; c++)
                {
                    double sum = 0;
                    for (int d = -radius; d <= radius; d++)
                        sum += horizontal[(Math.Clamp(y + d, 0, size - 1) * size + x) * channels + c];
                    result[(y * size + x) * channels + c] = sum * norm;
                }
        return result;
    }

    private static RgbImage ToImage(double[] pixels, int size)
    {
        var bytes = new byte[pixels.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            double v = pixels[i];
            bytes[i] = v <= 0 ? (byte)0 : v >= 255 ? (byte)255 : (byte)(v + 0.5);
        }
        return new RgbImage(size, size, bytes);
    }

    private static double Sq(double v) => v * v;
}
