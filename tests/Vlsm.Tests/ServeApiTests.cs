using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Vlsm.Data.Prompts;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.Models;
using Vlsm.Server;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>The REST API of vlsm serve, in process on a free loopback port, with the clipseg-tiny fixture.</summary>
public sealed class ServeApiTests : IClassFixture<ServeApiTests.Servers>, IDisposable
{
    private static readonly string Tiny = Path.Combine(Fixtures.Parity, "clipseg-tiny");
    private readonly Servers servers;
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromMinutes(2) };

    public ServeApiTests(Servers servers) => this.servers = servers;

    public void Dispose() => http.Dispose();

    /// <summary>The default server, one with tight limits, and one that checks an API key.</summary>
    public sealed class Servers : IDisposable
    {
        public readonly ModelHost Host;
        public readonly WebApplication Default, Strict, Keyed;

        public Servers()
        {
            Host = Open("tiny", new QueueSettings());
            Default = Start(new ServerOptions { Port = 0 }, Host);
            Strict = Start(new ServerOptions { Port = 0, MaxUploadMegabytes = 1, MaxPixels = 1000 }, Host);
            Keyed = Start(new ServerOptions { Port = 0, ApiKey = "sesame" }, Host);
        }

        public void Dispose()
        {
            foreach (var app in new[] { Default, Strict, Keyed }) app.StopAsync().GetAwaiter().GetResult();
            Host.Dispose();
        }
    }

    internal static ModelHost Open(string name, QueueSettings queue) =>
        ServedModelSpec.FromOptions([$"{name}={Tiny}"], [], null)[0].Open(ComputePrecision.Fp32, new Dictionary<string, string>(), queue);

    internal static WebApplication Start(ServerOptions options, params ModelHost[] hosts)
    {
        var app = VlsmServer.Build(options, hosts);
        app.StartAsync().GetAwaiter().GetResult();
        return app;
    }

    internal static string Url(WebApplication app) => app.Urls.First();

    internal static MultipartFormDataContent Form(byte[]? image, string fileName = "scan.png", params (string Name, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        if (image is not null) form.Add(new ByteArrayContent(image), "image", fileName);
        foreach (var (name, value) in fields) form.Add(new StringContent(value), name);
        return form;
    }

    private async Task<HttpResponseMessage> Segment(WebApplication app, MultipartFormDataContent form) =>
        await http.PostAsync(Url(app) + "/v1/segment", form);

    private static RgbImage Decode(byte[] bytes) => ImageCodec.DecodeRgb(bytes, "test");

    /// <summary>What the library predicts for the image as the server decodes it, without the server.</summary>
    private Prediction Direct(byte[] upload, string prompt) => servers.Host.Segmenter.Predict([ImageCodec.DecodeRgb(upload, "direct")], [prompt])[0];

    public static TheoryData<string, int, int> Uploads => new()
    {
        { "png", 50, 37 },
        { "jpeg", 64, 40 },
        { "gray16", 33, 21 },
    };

    private static byte[] Upload(string kind, int w, int h) => kind switch
    {
        "png" => UploadImages.Png(w, h),
        "jpeg" => UploadImages.Jpeg(w, h),
        _ => UploadImages.Gray16Png(w, h),
    };

    [Theory]
    [MemberData(nameof(Uploads))]
    public async Task Mask_png_has_the_uploaded_size_and_equals_the_library_prediction(string kind, int w, int h)
    {
        var upload = Upload(kind, w, h);
        using var response = await Segment(servers.Default, Form(upload, "scan." + kind, ("prompt", "small pink polyp")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        var mask = Gray(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal((w, h), (mask.Width, mask.Height));
        var expected = Direct(upload, "small pink polyp").MaskAt(w, h, MaskRule.DefaultThreshold);
        Assert.Equal(expected.Pixels, mask.Pixels);
    }

    [Fact]
    public async Task Probabilities_png_is_the_sigmoid_in_255_steps_and_overlay_is_rgb_at_image_size()
    {
        var upload = UploadImages.Png(40, 30);
        using var probs = await Segment(servers.Default, Form(upload, fields: [("prompt", "polyp"), ("output", "probs")]));
        Assert.Equal(HttpStatusCode.OK, probs.StatusCode);
        var gray = Gray(await probs.Content.ReadAsByteArrayAsync());
        var p = Direct(upload, "polyp");
        // Nearest resize from the model grid, as the mask is resized.
        var expected = Resize.ResizeNearest(p.Probabilities, p.Width, p.Height, 40, 30);
        for (int i = 0; i < expected.Length; i++)
            Assert.InRange(gray.Pixels[i], expected[i] * 255f - 0.51f, expected[i] * 255f + 0.51f);
        using var overlay = await Segment(servers.Default, Form(upload, fields: [("prompt", "polyp"), ("output", "overlay")]));
        var rgb = Decode(await overlay.Content.ReadAsByteArrayAsync());
        Assert.Equal((40, 30), (rgb.Width, rgb.Height));
    }

    [Fact]
    public async Task Json_output_rle_area_box_and_components_describe_the_same_mask_as_the_png()
    {
        var upload = UploadImages.Png(45, 32);
        using var mask = await Segment(servers.Default, Form(upload, fields: [("prompt", "a"), ("threshold", "0.45")]));
        var expected = Gray(await mask.Content.ReadAsByteArrayAsync());
        using var json = await Segment(servers.Default, Form(upload, fields: [("prompt", "a"), ("threshold", "0.45"), ("output", "json")]));
        Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        var result = JsonNode.Parse(await json.Content.ReadAsStringAsync())!["results"]![0]!;
        var counts = result["rle"]!["counts"]!.AsArray().Select(c => (int)c!).ToArray();
        Assert.Equal([32, 45], result["rle"]!["size"]!.AsArray().Select(c => (int)c!).ToArray());
        Assert.Equal(45 * 32, counts.Sum());
        // Decode COCO's column-major runs, starting with background.
        var decoded = new byte[45 * 32];
        int at = 0;
        for (int run = 0; run < counts.Length; run++)
        {
            for (int k = 0; k < counts[run]; k++, at++)
                if (run % 2 == 1) decoded[(at % 32) * 45 + at / 32] = 255;
        }
        Assert.Equal(expected.Pixels, decoded);
        int area = expected.Pixels.Count(v => v == 255);
        Assert.Equal(area, (int)result["area"]!);
        Assert.Equal(area, result["components"]!.AsArray().Sum(c => (int)c!["area"]!));
        if (area > 0)
        {
            var box = result["bbox"]!.AsArray().Select(v => (int)v!).ToArray();
            var on = Enumerable.Range(0, decoded.Length).Where(i => decoded[i] == 255).ToList();
            Assert.Equal(on.Min(i => i % 45), box[0]);
            Assert.Equal(on.Min(i => i / 45), box[1]);
            Assert.Equal(on.Max(i => i % 45) - box[0] + 1, box[2]);
            Assert.Equal(on.Max(i => i / 45) - box[1] + 1, box[3]);
        }
    }

    [Fact]
    public async Task Several_prompts_answer_in_order_each_as_alone()
    {
        var upload = UploadImages.Png(36, 36);
        string[] prompts = ["polyp", "large round polyp at the top", "nothing"];
        using var both = await Segment(servers.Default, Form(upload, fields: [.. prompts.Select(p => ("prompt", p)), ("output", "json"), ("threshold", "0.5")]));
        var results = JsonNode.Parse(await both.Content.ReadAsStringAsync())!["results"]!.AsArray();
        Assert.Equal(prompts, results.Select(r => (string)r!["prompt"]!).ToArray());
        for (int i = 0; i < prompts.Length; i++)
        {
            var alone = Direct(upload, prompts[i]).MaskAt(36, 36, 0.5f);
            Assert.Equal(alone.Pixels.Count(v => v == 255), (int)results[i]!["area"]!);
        }
    }

    public static TheoryData<string, int, string> BadRequests => new()
    {
        { "no-image", 400, "image" },
        { "text-as-image", 415, "image" },
        { "not-multipart", 415, "content-type" },
        { "empty-prompt", 400, "prompt" },
        { "no-prompt", 400, "prompt" },
        { "long-prompt", 400, "prompt" },
        { "unknown-model", 404, "model" },
        { "threshold-above", 400, "threshold" },
        { "threshold-below", 400, "threshold" },
        { "threshold-text", 400, "threshold" },
        { "unknown-output", 400, "output" },
        { "two-prompts-one-png", 400, "output" },
        { "probabilities-maybe", 400, "probabilities" },
        { "malformed-multipart", 400, "body" },
        { "empty-image", 400, "image" },
        { "over-upload-limit", 413, "image" },
        { "over-pixel-limit", 413, "image" },
    };

    /// <summary>What the message of some refusals must say, beyond naming the field.</summary>
    private static readonly Dictionary<string, string> Says = new()
    {
        ["no-image"] = "no image",
        ["empty-image"] = "the uploaded image 'scan.png' is empty (0 bytes)",
        ["probabilities-maybe"] = "'maybe' is not a yes or no; give true or false",
        ["malformed-multipart"] = "the multipart form could not be read",
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_request_gets_its_4xx_naming_the_field(string kind, int status, string field)
    {
        var png = UploadImages.Png(50, 37);
        var app = kind.StartsWith("over-", StringComparison.Ordinal) ? servers.Strict : servers.Default;
        HttpContent content = kind switch
        {
            "no-image" => Form(null, fields: [("prompt", "polyp")]),
            "text-as-image" => Form("patient notes, not pixels\n"u8.ToArray(), "scan.png", ("prompt", "polyp")),
            "not-multipart" => new StringContent("{\"prompt\":\"polyp\"}", System.Text.Encoding.UTF8, "application/json"),
            "empty-prompt" => Form(png, fields: [("prompt", "   ")]),
            "no-prompt" => Form(png),
            "long-prompt" => Form(png, fields: [("prompt", new string('a', 301))]),
            "unknown-model" => Form(png, fields: [("prompt", "polyp"), ("model", "../../etc/passwd")]),
            "threshold-above" => Form(png, fields: [("prompt", "polyp"), ("threshold", "1.5")]),
            "threshold-below" => Form(png, fields: [("prompt", "polyp"), ("threshold", "-0.1")]),
            "threshold-text" => Form(png, fields: [("prompt", "polyp"), ("threshold", "half")]),
            "unknown-output" => Form(png, fields: [("prompt", "polyp"), ("output", "dicom")]),
            "two-prompts-one-png" => Form(png, fields: [("prompt", "polyp"), ("prompt", "lesion")]),
            "probabilities-maybe" => Form(png, fields: [("prompt", "polyp"), ("output", "json"), ("probabilities", "maybe")]),
            "malformed-multipart" => new StringContent("garbage") { Headers = { ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=zzz") } },
            "empty-image" => Form([], "scan.png", ("prompt", "polyp")),
            "over-upload-limit" => Form(new byte[(1 << 20) + 4096], "big.png", ("prompt", "polyp")),
            "over-pixel-limit" => Form(png, fields: [("prompt", "polyp")]),
            _ => throw new ArgumentException(kind),
        };
        using var response = await http.PostAsync(Url(app) + "/v1/segment", content);
        Assert.Equal(status, (int)response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(field, (string)error["field"]!);
        Assert.False(string.IsNullOrWhiteSpace((string)error["message"]!));
        if (Says.TryGetValue(kind, out var says)) Assert.Contains(says, (string)error["message"]!);
        // The server keeps serving after every refusal.
        using var health = await http.GetAsync(Url(app) + "/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Models_lists_name_family_modes_counts_input_size_and_prompt_need()
    {
        var body = JsonNode.Parse(await http.GetStringAsync(Url(servers.Default) + "/v1/models"))!["models"]!.AsArray();
        var m = Assert.Single(body)!;
        var family = servers.Host.Segmenter.Family;
        var source = ModelSource.Folder(Tiny);
        Assert.Equal("tiny", (string)m["name"]!);
        Assert.Equal(family.ModelType, (string)m["family"]!);
        Assert.Equal(family.Modes.Select(FineTuneSpec.ModeName).ToArray(), m["modes"]!.AsArray().Select(x => (string)x!).ToArray());
        Assert.Equal(family.Describe(source, null).TotalParameters, (long)m["total_parameters"]!);
        foreach (var mode in family.Modes)
            Assert.Equal(family.Describe(source, FineTuneSpec.Create(mode)).TrainableParameters, (long?)m["trainable_parameters"]![FineTuneSpec.ModeName(mode)]);
        Assert.Equal([servers.Host.Segmenter.Preprocessor.Width, servers.Host.Segmenter.Preprocessor.Height], m["input_size"]!.AsArray().Select(x => (int)x!).ToArray());
        Assert.True((bool)m["needs_prompt"]!);
    }

    [Fact]
    public async Task Prompts_endpoint_fills_medvlsm_templates_and_names_a_missing_class()
    {
        var body = JsonNode.Parse(await http.GetStringAsync(Url(servers.Default) + "/v1/prompts?class=polyp&number=one&size=small&color=pink&shape=round&location=top%20left"))!["prompts"]!;
        var expected = PromptTemplates.Build("polyp", new PromptAttributes("one", "small", "pink", "round", "top left"), ClassDescriptions.Polyp);
        foreach (var (key, list) in expected)
            Assert.Equal(list.ToArray(), body[key]!.AsArray().Select(x => (string)x!).ToArray());
        using var missing = await http.GetAsync(Url(servers.Default) + "/v1/prompts?color=pink");
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Equal("class", (string)JsonNode.Parse(await missing.Content.ReadAsStringAsync())!["error"]!["field"]!);
    }

    [Fact]
    public async Task A_text_free_model_needs_no_prompt_refuses_one_and_names_an_image_it_cannot_size()
    {
        var spec = ServedModelSpec.FromOptions([$"unet={Path.Combine(Fixtures.Parity, "smp-unet-tiny")}"], [], null)[0];
        using var host = spec.Open(ComputePrecision.Fp32, new Dictionary<string, string>(), new QueueSettings());
        var app = Start(new ServerOptions { Port = 0 }, host);
        try
        {
            var model = JsonNode.Parse(await http.GetStringAsync(Url(app) + "/v1/models"))!["models"]![0]!;
            Assert.False((bool)model["needs_prompt"]!);
            int size = host.Segmenter.Preprocessor.Width;
            var upload = UploadImages.Png(size + 20, size + 20);
            using var mask = await Segment(app, Form(upload));
            Assert.Equal(HttpStatusCode.OK, mask.StatusCode);
            var gray = Gray(await mask.Content.ReadAsByteArrayAsync());
            Assert.Equal((size + 20, size + 20), (gray.Width, gray.Height));
            var direct = host.Segmenter.Predict([ImageCodec.DecodeRgb(upload, "direct")], null)[0].MaskAt(size + 20, size + 20, MaskRule.DefaultThreshold);
            Assert.Equal(direct.Pixels, gray.Pixels);

            using var prompted = await Segment(app, Form(upload, fields: [("prompt", "polyp")]));
            Assert.Equal(HttpStatusCode.BadRequest, prompted.StatusCode);
            Assert.Equal("prompt", (string)JsonNode.Parse(await prompted.Content.ReadAsStringAsync())!["error"]!["field"]!);

            // medvlsm's Resize(256) keeps the aspect, so a wide image cannot become this model's square input.
            using var wide = await Segment(app, Form(UploadImages.Png(2 * size, size)));
            Assert.Equal(HttpStatusCode.BadRequest, wide.StatusCode);
            var error = JsonNode.Parse(await wide.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("image", (string)error["field"]!);
            Assert.Contains($"{2 * size}x{size}", (string)error["message"]!);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public async Task Openapi_document_describes_every_v1_route()
    {
        var doc = JsonNode.Parse(await http.GetStringAsync(Url(servers.Default) + "/v1/openapi.json"))!;
        var paths = doc["paths"]!.AsObject().Select(p => p.Key).ToHashSet();
        Assert.Superset(new HashSet<string> { "/healthz", "/v1/models", "/v1/segment", "/v1/prompts" }, paths);
        Assert.NotNull(doc["paths"]!["/v1/segment"]!["post"]!["requestBody"]!["content"]!["multipart/form-data"]);
    }

    [Fact]
    public async Task Api_key_is_required_on_v1_routes_when_set()
    {
        using var without = await http.GetAsync(Url(servers.Keyed) + "/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, without.StatusCode);
        Assert.Equal("authorization", (string)JsonNode.Parse(await without.Content.ReadAsStringAsync())!["error"]!["field"]!);
        using var wrong = new HttpRequestMessage(HttpMethod.Get, Url(servers.Keyed) + "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "sesam") } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
        using var right = new HttpRequestMessage(HttpMethod.Get, Url(servers.Keyed) + "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "sesame") } };
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(right)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(Url(servers.Keyed) + "/healthz")).StatusCode);
    }

    [Theory]
    [InlineData("0.0.0.0", null, false, true)]
    [InlineData("192.168.1.20", null, false, true)]
    [InlineData("0.0.0.0", "key", false, false)]
    [InlineData("0.0.0.0", null, true, false)]
    [InlineData("127.0.0.1", null, false, false)]
    [InlineData("::1", null, false, false)]
    public void Remote_binding_needs_a_key_or_allow_remote(string host, string? key, bool allowRemote, bool refused)
    {
        var options = new ServerOptions { Host = host, ApiKey = key, AllowRemote = allowRemote };
        if (refused) Assert.Contains("--api-key", Assert.Throws<VlsmException>(options.Validate).Message);
        else options.Validate();
    }

    [Fact]
    public async Task A_full_queue_answers_429_and_waiting_requests_form_one_batch()
    {
        var gate = new GatedSegmenter(servers.Host.Segmenter);
        using var host = new ModelHost("gated", gate, servers.Host.Summary, new QueueSettings(Capacity: 3, MaxBatch: 8, BatchWindowMilliseconds: 50));
        var app = Start(new ServerOptions { Port = 0 }, host);
        try
        {
            var png = UploadImages.Png(30, 30);
            // The first request occupies the worker; three more fill the queue; the fifth is turned away.
            var first = Segment(app, Form(png, fields: [("prompt", "polyp 0")]));
            Assert.True(gate.Entered.Wait(TimeSpan.FromMinutes(1)));
            var waiting = new List<Task<HttpResponseMessage>>();
            for (int i = 1; i <= 3; i++)
            {
                waiting.Add(Segment(app, Form(png, fields: [("prompt", $"polyp {i}")])));
                await WaitUntil(() => host.Queued == i);
            }
            using var refused = await Segment(app, Form(png, fields: [("prompt", "polyp 4")]));
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal("model", (string)JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["field"]!);
            Assert.True(refused.Headers.Contains("Retry-After"));
            gate.Open();
            foreach (var t in waiting.Prepend(first)) Assert.Equal(HttpStatusCode.OK, (await t).StatusCode);
            Assert.Equal((2L, 4L), host.Counts);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var until = DateTime.UtcNow.AddMinutes(1);
        while (!condition())
        {
            if (DateTime.UtcNow > until) throw new TimeoutException("condition not reached in a minute");
            await Task.Delay(5);
        }
    }

    /// <summary>A gray PNG's pixels (decoded as RGB, whose channels are then equal).</summary>
    internal static GrayImage Gray(byte[] png)
    {
        var rgb = ImageCodec.DecodeRgb(png, "answer");
        var gray = new byte[rgb.Width * rgb.Height];
        for (int i = 0; i < gray.Length; i++)
        {
            Assert.True(rgb.Pixels[3 * i] == rgb.Pixels[3 * i + 1] && rgb.Pixels[3 * i] == rgb.Pixels[3 * i + 2], "the PNG is not gray");
            gray[i] = rgb.Pixels[3 * i];
        }
        return new GrayImage(rgb.Width, rgb.Height, gray);
    }

    /// <summary>The real segmenter behind a gate: the worker blocks in EncodeImages until the test opens it.</summary>
    private sealed class GatedSegmenter(ISegmenter inner) : ISegmenter
    {
        private readonly ManualResetEventSlim gate = new(false);
        public readonly ManualResetEventSlim Entered = new(false);

        public void Open() => gate.Set();

        public IModelFamily Family => inner.Family;
        public ImagePreprocessor Preprocessor => inner.Preprocessor;

        public IImageFeatures EncodeImages(Tensor pixels)
        {
            Entered.Set();
            gate.Wait();
            return inner.EncodeImages(pixels);
        }

        public Tensor Decode(IImageFeatures images, IReadOnlyList<string>? prompts) => inner.Decode(images, prompts);

        // The inner segmenter belongs to the shared fixture.
        public void Dispose() { }
    }
}
