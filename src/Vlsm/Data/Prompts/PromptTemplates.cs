namespace Vlsm.Data.Prompts;

/// <summary>The words that fill medvlsm's templates for one mask.</summary>
/// <param name="Number">"one", "two", …</param>
/// <param name="Size">"small", "tiny, small", …; "" when no component is above 1e-4 coverage.</param>
/// <param name="Color">A <see cref="ColorNamer"/> palette word.</param>
/// <param name="Shape">A shape word (round, oval, … or circle, square, … for synthetic data).</param>
/// <param name="Location">Locations of the components joined by ", " ("top left, center").</param>
public sealed record PromptAttributes(string Number, string Size, string Color, string Shape, string Location);

/// <summary>
/// medvlsm's prompt templates p0–p9:
/// <code>
/// p0  ""
/// p1  {class}
/// p2  {shape} {class}
/// p3  {color} {shape} {class}
/// p4  {size} {color} {shape} {class}
/// p5  {number} {size} {color} {shape} {class}
/// p6  p5 + ", located in {location} of the image"
/// p7  [ "{class} which is {description}" for each description ]
/// p8  [ "{number} {size} {color} {shape} {class} which is {description}" … ]
/// p9  [ p8 + " located in {location} of the image" … ]
/// </code>
/// An empty word (a size when every component is at most 1e-4 of the image) is left out with its
/// space rather than leaving a double space. An empty mask gets "no {class}" for p1–p6 (as BUSI's
/// normal images) and, when the class has descriptions, ["no {class}"] for p7–p9 (as BKAI's
/// empty masks). Without descriptions p7–p9 are omitted: lists are never written empty.
/// </summary>
public static class PromptTemplates
{
    /// <summary>Keys whose values are lists, even with a single element (for <see cref="AnnotationFile.Write"/>).</summary>
    public static readonly IReadOnlySet<string> ListKeys = new HashSet<string> { "p7", "p8", "p9" };

    /// <param name="attributes">Null for an empty mask.</param>
    /// <param name="descriptionPhrases">Phrases "{class} which is …" (see <see cref="ClassDescriptions"/>); may be empty.</param>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Build(
        string className, PromptAttributes? attributes, IReadOnlyList<string> descriptionPhrases)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(className);
        ArgumentNullException.ThrowIfNull(descriptionPhrases);
        var prompts = new Dictionary<string, IReadOnlyList<string>> { ["p0"] = [""] };
        if (attributes is null)
        {
            string none = "no " + className;
            for (int i = 1; i <= 6; i++) prompts["p" + i] = [none];
            if (descriptionPhrases.Count > 0)
                for (int i = 7; i <= 9; i++) prompts["p" + i] = [none];
            return prompts;
        }

        var a = attributes;
        string described = Words(a.Number, a.Size, a.Color, a.Shape);
        string located = " located in " + a.Location + " of the image";
        prompts["p1"] = [className];
        prompts["p2"] = [Words(a.Shape, className)];
        prompts["p3"] = [Words(a.Color, a.Shape, className)];
        prompts["p4"] = [Words(a.Size, a.Color, a.Shape, className)];
        prompts["p5"] = [Words(described, className)];
        prompts["p6"] = [Words(described, className) + "," + located];
        if (descriptionPhrases.Count > 0)
        {
            prompts["p7"] = descriptionPhrases.ToArray();
            prompts["p8"] = descriptionPhrases.Select(d => Words(described, d)).ToArray();
            prompts["p9"] = descriptionPhrases.Select(d => Words(described, d) + located).ToArray();
        }
        return prompts;
    }

    private static string Words(params string[] words) => string.Join(' ', words.Where(w => w.Length > 0));
}
