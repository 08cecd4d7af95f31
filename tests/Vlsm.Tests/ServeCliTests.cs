namespace Vlsm.Tests;

/// <summary>vlsm serve's refusals at start, as a user meets them.</summary>
public sealed class ServeCliTests
{
    private static readonly string Tiny = Path.Combine(Fixtures.Parity, "clipseg-tiny");

    [Theory]
    [InlineData("nothing to serve", "serve")]
    [InlineData("--api-key", "serve", "--model", "TINY", "--host", "0.0.0.0")]
    [InlineData("no such model folder", "serve", "--model", "/nonexistent/model")]
    [InlineData("two models are named 'a'", "serve", "--model", "a=TINY", "--model", "a=TINY")]
    [InlineData("--max-batch must be at least 1", "serve", "--model", "TINY", "--max-batch", "0")]
    [InlineData("--adapter goes with exactly one --model", "serve", "--model", "TINY", "--model", "b=TINY", "--adapter", "x.safetensors")]
    public void Refuses_bad_options_with_a_message_and_exit_2(string message, params string[] args)
    {
        var result = CliRunner.Run(args.Select(a => a.Replace("TINY", Tiny)).ToArray());
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [Fact]
    public async Task Serves_the_fixture_model_and_answers_with_a_mask_of_the_image_size()
    {
        using var serve = new ServeProcess("--model", Tiny, "--max-batch", "4");
        using var http = new HttpClient();
        using var form = ServeApiTests.Form(UploadImages.Png(77, 41), "x.png", ("prompt", "polyp"));
        using var response = await http.PostAsync(serve.BaseUrl + "/v1/segment", form);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var mask = ServeApiTests.Gray(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal((77, 41), (mask.Width, mask.Height));
        Assert.Contains("loading clipseg-tiny (CLIPSeg)", serve.Output);
    }
}
