using System.Globalization;
using System.Text.RegularExpressions;
using Vlsm.IO;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>config.yaml's floats are numbers to YAML 1.1 readers (PyYAML) as well as 1.2 ones, and round-trip exactly.</summary>
public sealed class YamlFloatsTests
{
    // YAML 1.1's float rule (yaml.org/type/float.html), which PyYAML's resolver implements: a '.' is required, an exponent is signed.
    private static readonly Regex Yaml11Float = new(@"^[-+]?([0-9][0-9_]*)?\.[0-9.]*([eE][-+][0-9]+)?$");

    [Theory]
    [InlineData(1e-8, "1.0e-08")]
    [InlineData(1e-3, "0.001")]
    [InlineData(3e-4, "0.0003")]
    [InlineData(1.0, "1.0")]
    [InlineData(0.999, "0.999")]
    [InlineData(-2.5e20, "-2.5e+20")]
    [InlineData(8.999999999999999E-05, "8.999999999999999e-05")]
    public void Writes_a_yaml_1_1_float_that_parses_back_to_the_same_double(double value, string expected)
    {
        string text = YamlFloats.Format(value);
        Assert.Equal(expected, text);
        Assert.Matches(Yaml11Float, text);
        Assert.Equal(value, double.Parse(text, CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Config_yaml_writes_every_float_field_as_a_yaml_1_1_float_and_reads_it_back()
    {
        var config = new TrainConfig { Lr = 3e-4, Eps = 1e-8, WeightDecay = 0, PlateauThreshold = 1e-4 };
        string yaml = config.ToYaml();
        foreach (var key in new[] { "lr", "eps", "weight_decay", "beta1", "beta2", "grad_clip", "plateau_factor", "plateau_threshold" })
        {
            var line = yaml.Split('\n').Single(l => l.StartsWith(key + ":", StringComparison.Ordinal));
            Assert.Matches(Yaml11Float, line[(key.Length + 1)..].Trim());
        }
        string path = Path.Combine(Directory.CreateTempSubdirectory("vlsm-yaml-").FullName, "config.yaml");
        File.WriteAllText(path, yaml);
        var back = TrainConfig.FromYaml(path);
        Assert.Equal((config.Lr, config.Eps, config.WeightDecay, config.PlateauThreshold, config.Beta2), (back.Lr, back.Eps, back.WeightDecay, back.PlateauThreshold, back.Beta2));
        Assert.Equal(yaml, back.ToYaml());
    }
}
