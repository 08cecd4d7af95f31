using System.CommandLine;
using Microsoft.Extensions.Hosting;
using Vlsm.Server;

namespace Vlsm.Cli.Commands;

internal static class ServeCommand
{
    public static Command Build()
    {
        var model = new Option<string[]>("--model")
        {
            Description = "Model folder to serve, as NAME=DIR or DIR (named after the folder); repeatable. Any family vlsm knows.",
            AllowMultipleArgumentsPerToken = false,
        };
        var run = new Option<string[]>("--run") { Description = "Training run folder to serve (its best weights on its model), as NAME=RUN or RUN; repeatable." };
        var adapter = ModelOptions.Adapter();
        var host = new Option<string>("--host") { Description = "Address to listen on; anything but loopback needs --api-key or --allow-remote.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: any free port, printed at start).", DefaultValueFactory = _ => 8080 };
        var precision = PrecisionOption.Create();
        var maxBatch = new Option<int>("--max-batch") { Description = "Largest batch of (image, prompt) pairs the queue forms from requests that wait together.", DefaultValueFactory = _ => 8 };
        var queue = new Option<int>("--queue") { Description = "Requests a model's queue holds; beyond it the reply is 429.", DefaultValueFactory = _ => 64 };
        var maxUpload = new Option<int>("--max-upload-mb") { Description = "Largest request body, in megabytes.", DefaultValueFactory = _ => 32 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1 requests (or set VLSM_API_KEY)." };
        var allowRemote = new Option<bool>("--allow-remote") { Description = "Listen on a non-loopback address without an API key." };
        var familyFlags = ModelOptions.FamilyOptionFlags();
        var allowOtherBase = ModelOptions.AllowOtherBase();
        var cmd = new Command("serve", "Serve models over HTTP: a web page at / and a REST API under /v1 (OpenAPI at /v1/openapi.json).")
            { model, run, adapter, host, port, precision, maxBatch, queue, maxUpload, apiKey, allowRemote };
        foreach (var flag in familyFlags) cmd.Options.Add(flag);
        cmd.Options.Add(allowOtherBase);
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                MaxUploadMegabytes = parse.GetValue(maxUpload),
                ApiKey = parse.GetValue(apiKey) ?? NonEmpty(Environment.GetEnvironmentVariable("VLSM_API_KEY")),
                AllowRemote = parse.GetValue(allowRemote),
            };
            options.Validate();
            var settings = new QueueSettings(parse.GetValue(queue), parse.GetValue(maxBatch));
            settings.Validate();
            var precisionValue = ModelOptions.Precision(parse.GetValue(precision)!);
            var specs = ServedModelSpec.FromOptions(parse.GetValue(model) ?? [], parse.GetValue(run) ?? [], parse.GetValue(adapter));
            var hosts = new List<ModelHost>();
            try
            {
                foreach (var spec in specs)
                {
                    Console.WriteLine($"loading {spec.Name} ({spec.Reference.Family.Name}) from {spec.Reference.ModelDirectory}" + (spec.Reference.Weights is { } w ? $" with {w}" : ""));
                    hosts.Add(spec.Open(precisionValue, ModelOptions.FamilyOptions(parse, familyFlags), settings, parse.GetValue(allowOtherBase), ModelOptions.Note));
                }
                var app = VlsmServer.Build(options, hosts);
                app.StartAsync().GetAwaiter().GetResult();
                foreach (var url in app.Urls) Console.WriteLine($"serving {hosts.Count} model(s) at {url}/ (API: {url}/v1, OpenAPI: {url}/v1/openapi.json); Ctrl+C stops");
                Console.Out.Flush();
                app.WaitForShutdownAsync().GetAwaiter().GetResult();
                return 0;
            }
            finally
            {
                foreach (var h in hosts) h.Dispose();
            }
        }));
        return cmd;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
