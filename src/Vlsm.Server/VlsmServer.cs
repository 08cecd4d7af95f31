using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Vlsm.Data.Prompts;
using Vlsm.Imaging;
using Vlsm.Inference;

namespace Vlsm.Server;

/// <summary>How <c>vlsm serve</c> listens and what it accepts.</summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8080;
    public int MaxUploadMegabytes { get; init; } = 32;

    /// <summary>Largest image accepted, in pixels (width x height).</summary>
    public long MaxPixels { get; init; } = 40_000_000;

    public int MaxPromptLength { get; init; } = 300;
    public int MaxPrompts { get; init; } = 16;

    /// <summary>Bearer token every /v1 request must carry; null: none.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Bind to a non-loopback address without an API key.</summary>
    public bool AllowRemote { get; init; }

    /// <exception cref="VlsmException">A value is out of range, or a non-loopback host without a key and without <see cref="AllowRemote"/>.</exception>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new VlsmException($"--port must be within 0..65535, got {Port}.");
        if (MaxUploadMegabytes < 1) throw new VlsmException($"--max-upload-mb must be at least 1, got {MaxUploadMegabytes}.");
        bool loopback = Host is "localhost" || (IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip));
        if (!loopback && ApiKey is null && !AllowRemote)
            throw new VlsmException($"--host {Host} is reachable from other machines; give --api-key KEY (or VLSM_API_KEY) so requests must carry it, or --allow-remote to serve without one.");
    }
}

/// <summary>
/// The web page and REST API of <c>vlsm serve</c>: <c>GET /v1/models</c>, <c>POST /v1/segment</c>,
/// <c>GET /healthz</c>, the OpenAPI document at <c>/v1/openapi.json</c>, and the page at <c>/</c>.
/// Every model it serves goes through the same code, whatever its family.
/// </summary>
public static class VlsmServer
{
    public static WebApplication Build(ServerOptions options, IReadOnlyList<ModelHost> models, ILoggerProvider? log = null)
    {
        options.Validate();
        if (models.Count == 0) throw new VlsmException("nothing to serve; give --model DIR or --run RUN.");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (log is not null) builder.Logging.AddProvider(log);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = (long)options.MaxUploadMegabytes << 20;
            k.Listen(Address(options.Host), options.Port);
        });
        builder.Services.Configure<FormOptions>(f => f.MultipartBodyLengthLimit = (long)options.MaxUploadMegabytes << 20);
        builder.Services.AddOpenApi("v1");
        var app = builder.Build();
        var byName = models.ToDictionary(m => m.Name, StringComparer.Ordinal);

        // Refusals the framework makes itself (a body that is not a form, an unknown path, a wrong
        // method) get the same JSON shape as the API's own.
        app.UseStatusCodePages(async status =>
        {
            var context = status.HttpContext;
            if (context.Response.StatusCode is < 400 or >= 600 || context.Response.HasStarted) return;
            var (field, message) = context.Response.StatusCode switch
            {
                StatusCodes.Status415UnsupportedMediaType => ("content-type", "send multipart/form-data with the image in the field 'image'."),
                StatusCodes.Status404NotFound => ("path", $"no route {Clip(context.Request.Path.Value ?? "")}; see /v1/openapi.json."),
                StatusCodes.Status405MethodNotAllowed => ("method", $"{Clip(context.Request.Method)} is not allowed on {Clip(context.Request.Path.Value ?? "")}; see /v1/openapi.json."),
                StatusCodes.Status413PayloadTooLarge => ("image", $"the upload is over {options.MaxUploadMegabytes} MB; send a smaller image."),
                _ => ("request", $"the request was refused ({context.Response.StatusCode})."),
            };
            await Error(context, context.Response.StatusCode, field, message);
        });
        app.Use(async (context, next) =>
        {
            if (options.ApiKey is { } key && context.Request.Path.StartsWithSegments("/v1") && !Authorized(context, key))
            {
                await Error(context, StatusCodes.Status401Unauthorized, "authorization", "send the API key as 'Authorization: Bearer KEY'.");
                return;
            }
            await next();
        });

        app.MapGet("/healthz", () => Results.Json(new JsonObject { ["status"] = "ok", ["models"] = models.Count }))
            .WithSummary("Liveness: 200 while the server runs.");
        app.MapGet("/v1/models", () => Results.Json(new JsonObject { ["models"] = new JsonArray(models.Select(Describe).ToArray()) }))
            .WithSummary("The models served: name, family, modes, parameters, input size, whether a prompt is needed.");
        // Typed as a Delegate, not a RequestDelegate, so the endpoint carries the OpenAPI metadata below.
        Func<HttpContext, Task> segment = context => Segment(context, byName, options);
        app.MapPost("/v1/segment", (Delegate)segment)
            .Accepts<SegmentForm>("multipart/form-data")
            .Produces(StatusCodes.Status200OK, contentType: "image/png")
            .Produces<JsonObject>(StatusCodes.Status200OK, "application/json")
            .Produces<JsonObject>(StatusCodes.Status400BadRequest)
            .Produces<JsonObject>(StatusCodes.Status404NotFound)
            .Produces<JsonObject>(StatusCodes.Status413PayloadTooLarge)
            .Produces<JsonObject>(StatusCodes.Status415UnsupportedMediaType)
            .Produces<JsonObject>(StatusCodes.Status429TooManyRequests)
            .Produces<JsonObject>(StatusCodes.Status500InternalServerError)
            .WithSummary("Segment one image with one or more prompts; the mask, probabilities or overlay as PNG at the image's size, or JSON (COCO RLE, area, box, components).");
        app.MapGet("/v1/prompts", (Delegate)(Func<HttpContext, Task>)Prompts)
            .Produces<JsonObject>(StatusCodes.Status200OK)
            .Produces<JsonObject>(StatusCodes.Status400BadRequest)
            .WithSummary("medvlsm's prompts p0-p9 filled from query attributes: class (required), number, size, color, shape, location.");
        app.MapOpenApi("/v1/openapi.json");
        foreach (var (path, resource, type) in Page)
            app.MapGet(path, () => Results.Bytes(Resource(resource), type)).ExcludeFromDescription();
        return app;
    }

    /// <summary>The form /v1/segment reads (for the OpenAPI document).</summary>
    public sealed record SegmentForm(IFormFile Image, string? Model, string[]? Prompt, float? Threshold, string? Output, bool? Probabilities);

    private static readonly (string Path, string Resource, string Type)[] Page =
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "app.css", "text/css; charset=utf-8"),
    ];

    private static byte[] Resource(string name)
    {
        using var stream = typeof(VlsmServer).Assembly.GetManifestResourceStream("Vlsm.Server.wwwroot." + name)
            ?? throw new InvalidOperationException($"the page's {name} is missing from the assembly");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static IPAddress Address(string host) => host == "localhost" ? IPAddress.Loopback
        : IPAddress.TryParse(host, out var ip) ? ip
        : throw new VlsmException($"--host {host} is not an IP address; give one such as 127.0.0.1, or 0.0.0.0 for every interface.");

    private static bool Authorized(HttpContext context, string key)
    {
        string header = context.Request.Headers.Authorization.ToString();
        byte[] given = Encoding.UTF8.GetBytes(header.StartsWith("Bearer ", StringComparison.Ordinal) ? header[7..] : "");
        return CryptographicOperations.FixedTimeEquals(given, Encoding.UTF8.GetBytes(key));
    }

    private static JsonNode Describe(ModelHost m) => new JsonObject
    {
        ["name"] = m.Name,
        ["family"] = m.Segmenter.Family.ModelType,
        ["family_name"] = m.Segmenter.Family.Name,
        ["modes"] = new JsonArray(m.Segmenter.Family.Modes.Select(x => (JsonNode)Models.FineTuneSpec.ModeName(x)).ToArray()),
        ["total_parameters"] = m.Summary.TotalParameters,
        ["trainable_parameters"] = new JsonObject(m.TrainableByMode.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        ["weights"] = m.Weights is null ? null : Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(m.Weights))) + "/" + Path.GetFileName(m.Weights),
        ["input_size"] = new JsonArray(m.Segmenter.Preprocessor.Width, m.Segmenter.Preprocessor.Height),
        ["needs_prompt"] = m.Segmenter.Family.TakesText,
    };

    private static readonly string[] Outputs = ["mask", "probs", "overlay", "json"];

    private static async Task Segment(HttpContext context, IReadOnlyDictionary<string, ModelHost> models, ServerOptions options)
    {
        IFormCollection form;
        try
        {
            if (!context.Request.HasFormContentType)
            {
                await Error(context, StatusCodes.Status415UnsupportedMediaType, "content-type", "send multipart/form-data with the image in the field 'image'.");
                return;
            }
            form = await context.Request.ReadFormAsync(context.RequestAborted);
        }
        // A malformed multipart body (no closing boundary, truncated) surfaces as an IOException from the reader.
        catch (Exception e) when (e is Microsoft.AspNetCore.Http.BadHttpRequestException or InvalidDataException or IOException && !context.RequestAborted.IsCancellationRequested)
        {
            bool tooLarge = e is Microsoft.AspNetCore.Http.BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } || e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase);
            if (tooLarge)
                await Error(context, StatusCodes.Status413PayloadTooLarge, "image", $"the upload is over {options.MaxUploadMegabytes} MB; send a smaller image.");
            else
                await Error(context, StatusCodes.Status400BadRequest, "body", $"the multipart form could not be read ({Clip(e.Message)}); send multipart/form-data with the image in the field 'image'.");
            return;
        }

        string? modelName = form["model"].FirstOrDefault();
        ModelHost host;
        if (string.IsNullOrEmpty(modelName))
        {
            if (models.Count != 1)
            {
                await Error(context, StatusCodes.Status400BadRequest, "model", $"name the model; served: {string.Join(", ", models.Keys)}.");
                return;
            }
            host = models.Values.First();
        }
        else if (!models.TryGetValue(modelName, out host!))
        {
            await Error(context, StatusCodes.Status404NotFound, "model", $"no model named '{Clip(modelName)}'; served: {string.Join(", ", models.Keys)}.");
            return;
        }

        var file = form.Files.GetFile("image");
        if (file is null)
        {
            await Error(context, StatusCodes.Status400BadRequest, "image", "no image; send the image file in the form field 'image'.");
            return;
        }
        if (file.Length == 0)
        {
            await Error(context, StatusCodes.Status400BadRequest, "image", $"the uploaded image '{Clip(file.FileName)}' is empty (0 bytes); send the file's contents.");
            return;
        }

        float threshold = MaskRule.DefaultThreshold;
        if (form["threshold"].FirstOrDefault() is { Length: > 0 } t)
        {
            if (!float.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out threshold) || !(threshold is >= 0f and <= 1f))
            {
                await Error(context, StatusCodes.Status400BadRequest, "threshold", $"'{Clip(t)}' is not a probability; give a number within [0, 1].");
                return;
            }
        }
        string output = form["output"].FirstOrDefault() is { Length: > 0 } o ? o : "mask";
        if (!Outputs.Contains(output))
        {
            await Error(context, StatusCodes.Status400BadRequest, "output", $"'{Clip(output)}' is not an output; give one of {string.Join(", ", Outputs)}.");
            return;
        }

        bool withProbabilities = false;
        if (form["probabilities"].FirstOrDefault() is { } given)
        {
            if (given is "1" or "0") withProbabilities = given == "1";
            else if (!bool.TryParse(given, out withProbabilities))
            {
                await Error(context, StatusCodes.Status400BadRequest, "probabilities", $"'{Clip(given)}' is not a yes or no; give true or false.");
                return;
            }
        }

        var prompts = form["prompt"].Select(p => p ?? "").ToList();
        if (host.Segmenter.Family.TakesText)
        {
            if (prompts.Count == 0 || prompts.Any(p => p.Trim().Length == 0))
            {
                await Error(context, StatusCodes.Status400BadRequest, "prompt", "give what to segment in the field 'prompt' (e.g. 'small pink polyp'); it must not be empty.");
                return;
            }
            if (prompts.FirstOrDefault(p => p.Length > options.MaxPromptLength) is { } longest)
            {
                await Error(context, StatusCodes.Status400BadRequest, "prompt", $"a prompt of {longest.Length} characters is over the {options.MaxPromptLength} allowed; shorten it.");
                return;
            }
            if (prompts.Count > options.MaxPrompts)
            {
                await Error(context, StatusCodes.Status400BadRequest, "prompt", $"{prompts.Count} prompts is over the {options.MaxPrompts} a request may carry.");
                return;
            }
        }
        else if (prompts.Count > 0)
        {
            await Error(context, StatusCodes.Status400BadRequest, "prompt", $"model '{host.Name}' ({host.Segmenter.Family.Name}) reads no text; leave 'prompt' out.");
            return;
        }
        if (output != "json" && prompts.Count > 1)
        {
            await Error(context, StatusCodes.Status400BadRequest, "output", $"{output} returns one PNG, so it takes one prompt; use output=json for {prompts.Count}.");
            return;
        }

        RgbImage image;
        try
        {
            using var stream = new MemoryStream();
            await file.CopyToAsync(stream, context.RequestAborted);
            image = ImageCodec.DecodeRgb(stream.ToArray(), "upload");
        }
        catch (VlsmException e)
        {
            await Error(context, StatusCodes.Status415UnsupportedMediaType, "image", $"'{Clip(file.FileName)}' is not an image vlsm reads ({e.Message}); send a PNG or JPEG.");
            return;
        }
        if ((long)image.Width * image.Height > options.MaxPixels)
        {
            await Error(context, StatusCodes.Status413PayloadTooLarge, "image", $"the image is {image.Width}x{image.Height}, over the {options.MaxPixels:N0} pixels allowed; send a smaller one.");
            return;
        }

        if (host.Segmenter.Preprocessor.SizeProblem(image.Width, image.Height) is { } sizeProblem)
        {
            await Error(context, StatusCodes.Status400BadRequest, "image", $"model '{host.Name}' cannot take this image: {sizeProblem}");
            return;
        }

        var job = new SegmentJob(image, host.Segmenter.Family.TakesText ? prompts.Cast<string?>().ToList() : new List<string?> { null });
        if (!host.TryEnqueue(job))
        {
            context.Response.Headers.RetryAfter = "1";
            await Error(context, StatusCodes.Status429TooManyRequests, "model", $"model '{host.Name}' has a full queue; retry in a moment.");
            return;
        }
        IReadOnlyList<Prediction> predictions;
        try
        {
            predictions = await job.Done.Task;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The model failed on input that passed every check: say so as JSON, keep serving.
            await Error(context, StatusCodes.Status500InternalServerError, "model", $"model '{host.Name}' failed on this request: {e.Message}");
            return;
        }

        switch (output)
        {
            case "mask":
                await Png(context, ImageCodec.EncodePng(SegmentationResults.Mask(predictions[0], image, threshold)));
                break;
            case "probs":
                await Png(context, ImageCodec.EncodePng(SegmentationResults.Probabilities(predictions[0], image)));
                break;
            case "overlay":
                await Png(context, ImageCodec.EncodePng(SegmentationResults.Overlay(image, SegmentationResults.Mask(predictions[0], image, threshold))));
                break;
            default:
                var results = new JsonArray();
                for (int i = 0; i < predictions.Count; i++)
                {
                    var result = SegmentationResults.Json(job.Prompts[i], threshold, SegmentationResults.Mask(predictions[i], image, threshold));
                    if (withProbabilities)
                        result["probabilities_png"] = Convert.ToBase64String(ImageCodec.EncodePng(SegmentationResults.Probabilities(predictions[i], image)));
                    results.Add(result);
                }
                await context.Response.WriteAsJsonAsync(new JsonObject { ["model"] = host.Name, ["results"] = results });
                break;
        }
    }

    private static readonly string[] Attributes = ["number", "size", "color", "shape", "location"];

    /// <summary>The p0-p9 templates filled with the query's attributes, so the page never re-implements them.</summary>
    private static async Task Prompts(HttpContext context)
    {
        var query = context.Request.Query;
        string className = query["class"].FirstOrDefault()?.Trim() ?? "";
        if (className.Length == 0 || className.Length > 60)
        {
            await Error(context, StatusCodes.Status400BadRequest, "class", "give the class to describe (e.g. class=polyp), at most 60 characters.");
            return;
        }
        var values = new Dictionary<string, string>();
        foreach (var name in Attributes)
        {
            string value = query[name].FirstOrDefault()?.Trim() ?? "";
            if (value.Length > 60)
            {
                await Error(context, StatusCodes.Status400BadRequest, name, $"{name} is {value.Length} characters; give at most 60.");
                return;
            }
            values[name] = value;
        }
        var attributes = new PromptAttributes(values["number"], values["size"], values["color"], values["shape"], values["location"].Length > 0 ? values["location"] : "center");
        var prompts = PromptTemplates.Build(className, attributes, ClassDescriptions.BuiltIn(className));
        var result = new JsonObject();
        foreach (var (key, list) in prompts.OrderBy(p => p.Key, StringComparer.Ordinal))
            result[key] = new JsonArray(list.Select(x => (JsonNode)x).ToArray());
        await context.Response.WriteAsJsonAsync(new JsonObject { ["class"] = className, ["prompts"] = result });
    }

    private static async Task Png(HttpContext context, byte[] png)
    {
        context.Response.ContentType = "image/png";
        await context.Response.Body.WriteAsync(png);
    }

    /// <summary>A 4xx answer: JSON naming the field at fault and what would fix it.</summary>
    private static async Task Error(HttpContext context, int status, string field, string message)
    {
        context.Response.StatusCode = status;
        await context.Response.WriteAsJsonAsync(new JsonObject { ["error"] = new JsonObject { ["field"] = field, ["message"] = message } });
    }

    /// <summary>Request text quoted in a message: at most 80 characters, control characters escaped.</summary>
    private static string Clip(string text)
    {
        var clean = new string(text.Take(80).Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return text.Length > 80 ? clean + "…" : clean;
    }
}
