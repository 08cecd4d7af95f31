using Vlsm.Models.ClipSeg;

namespace Vlsm.Tests;

public class ClipSegArchitectureTests
{
    [Fact]
    public void Rd64RefinedHasTheReferenceParameterCounts()
    {
        using var model = new ClipSegModel(ClipSegConfig.Rd64Refined);
        var s = ClipSegSummary.Of(model);
        Assert.Equal(150_747_746, s.TotalParameters);
        Assert.Equal(1_127_009, s.DecoderParameters);
        Assert.Equal(s.TotalParameters, s.TextParameters + s.VisionParameters + s.ProjectionParameters + s.DecoderParameters);
    }

    [Fact]
    public void ConfigRoundTripsThroughHfJson()
    {
        var c = ClipSegConfig.Parse((System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(ClipSegConfig.Rd64Refined.ToJson())!);
        Assert.Equal(ClipSegConfig.Rd64Refined.Vision, c.Vision);
        Assert.Equal(ClipSegConfig.Rd64Refined.Text, c.Text);
        Assert.Equal(ClipSegConfig.Rd64Refined.ExtractLayers, c.ExtractLayers);
        Assert.True(c.UseComplexTransposedConvolution);
        Assert.Equal(64, c.ReduceDim);
    }

    [Fact]
    public void StateDictKeysAreTheHfKeysOfTheFixture()
    {
        var dir = Path.Combine(Fixtures.Parity, "clipseg-geometry");
        using var model = new ClipSegModel(ClipSegLoader.ReadConfig(dir));
        using var file = Vlsm.IO.SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        var expected = file.Names.Where(n => !ClipSegLoader.IsIgnoredKey(n)).Order(StringComparer.Ordinal);
        Assert.Equal(expected, model.state_dict().Keys.Order(StringComparer.Ordinal));
    }
}
