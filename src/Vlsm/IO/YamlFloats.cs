using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace Vlsm.IO;

/// <summary>
/// Writes doubles as YAML floats that both YAML 1.1 readers (PyYAML) and YAML 1.2 readers parse as
/// numbers: the shortest round-trip digits, with a '.' in the mantissa and a signed exponent
/// (<c>1.0e-08</c>, not .NET's <c>1E-08</c>, which PyYAML reads as a string). Reading is the default.
/// </summary>
public sealed class YamlFloats : IYamlTypeConverter
{
    public bool Accepts(Type type) => type == typeof(double);

    public object? ReadYaml(IParser parser, Type type, ObjectDeserializer rootDeserializer)
    {
        var scalar = parser.Consume<Scalar>();
        return double.Parse(scalar.Value, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    public void WriteYaml(IEmitter emitter, object? value, Type type, ObjectSerializer serializer) =>
        emitter.Emit(new Scalar(Format((double)value!)));

    /// <summary>The YAML 1.1/1.2 float spelling of <paramref name="value"/>.</summary>
    public static string Format(double value)
    {
        if (double.IsNaN(value)) return ".nan";
        if (double.IsInfinity(value)) return value > 0 ? ".inf" : "-.inf";
        string text = value.ToString("R", CultureInfo.InvariantCulture);
        int e = text.IndexOfAny(['E', 'e']);
        string mantissa = e < 0 ? text : text[..e];
        if (!mantissa.Contains('.')) mantissa += ".0";
        if (e < 0) return mantissa;
        string exponent = text[(e + 1)..];
        if (exponent[0] is not ('+' or '-')) exponent = "+" + exponent;
        return mantissa + "e" + exponent;
    }
}
