using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Vlsm.Imaging;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.Server;
using Vlsm.Text;

namespace Vlsm.Bench;

/// <summary>
/// Load and soak of <c>vlsm serve</c>, in process on a free loopback port: N concurrent clients
/// (one HttpClient each) post a 256x256 PNG with one prompt to <c>/v1/segment</c> (output: mask
/// PNG), against the tiny parity model and a full-size random-weight clipseg-rd64-refined.
/// Measures requests per second and p50/p95 latency per concurrency, the batching gain (MaxBatch 8
/// over MaxBatch 1 at the highest concurrency, and the mean pairs per batch the queue formed),
/// resident memory across 1,000 requests, and every response by status class.
/// --quick: the tiny model only, few requests, a 50-request soak.
/// </summary>
internal static class ServeLoad
{
    private const string Prompt = "a small round polyp";

    /// <summary>Responses by status class over the whole measurement; <c>Failed</c>: no response at all.</summary>
    private sealed class Statuses
    {
        public long Ok, Other2xx, Client4xx, Server5xx, OtherStatus, Failed;
        public readonly List<string> Problems = [];

        public void Add(HttpStatusCode? code, string detail)
        {
            int c = (int?)code ?? 0;
            if (c == 0) Interlocked.Increment(ref Failed);
            else if (c == 200) Interlocked.Increment(ref Ok);
            else if (c is >= 200 and < 300) Interlocked.Increment(ref Other2xx);
            else if (c is >= 400 and < 500) Interlocked.Increment(ref Client4xx);
            else if (c is >= 500 and < 600) Interlocked.Increment(ref Server5xx);
            else Interlocked.Increment(ref OtherStatus);
            if (c != 200) lock (Problems) if (Problems.Count < 5) Problems.Add($"{(c == 0 ? "no response" : c.ToString())}: {detail}");
        }
    }

    private sealed record Load(int Completed, double Seconds, double[] LatenciesMs)
    {
        public double Rps => Completed / Seconds;
        public double Percentile(double q) => LatenciesMs.Length == 0 ? double.NaN : LatenciesMs[Math.Clamp((int)Math.Ceiling(q * LatenciesMs.Length) - 1, 0, LatenciesMs.Length - 1)];
    }

    public static void Measure(JsonObject extra, bool quick)
    {
        if (MemoryGrowth.TinyModel() is not { } tiny)
        {
            Console.WriteLine("serve load: skipped (needs ../shared/parity/clipseg-tiny beside the checkout)");
            return;
        }
        var statuses = new Statuses();
        var rng = new Random(0);
        var image = new RgbImage(256, 256);
        rng.NextBytes(image.Pixels);
        byte[] png = ImageCodec.EncodePng(image);

        int[] concurrencies = quick ? [1, 4] : [1, 4, 8];
        Sweep(extra, "tiny", tiny, concurrencies, c => quick ? 8 * c : 100 * c, TimeSpan.FromSeconds(quick ? 20 : 60), png, statuses,
            host => Soak(extra, host, png, statuses, warmUp: quick ? 10 : 100, requests: quick ? 50 : 1000));
        if (!quick)
        {
            string full = Directory.CreateTempSubdirectory("vlsm-bench-serve-").FullName;
            try
            {
                WriteRandomFullSize(full);
                // A few dozen requests per setting: one forward of a 352x352 image takes ~0.3-1 s here.
                Sweep(extra, "full", full, concurrencies, c => c == 1 ? 8 : 4 * c, TimeSpan.FromSeconds(120), png, statuses, null);
            }
            finally
            {
                Directory.Delete(full, recursive: true);
            }
        }

        extra["serve_responses_200"] = statuses.Ok;
        extra["serve_responses_other_2xx"] = statuses.Other2xx;
        extra["serve_responses_4xx"] = statuses.Client4xx;
        extra["serve_responses_5xx"] = statuses.Server5xx;
        extra["serve_responses_other"] = statuses.OtherStatus + statuses.Failed;
        Console.WriteLine($"serve responses: {statuses.Ok} x 200, {statuses.Other2xx} other 2xx, {statuses.Client4xx} x 4xx, {statuses.Server5xx} x 5xx, "
            + $"{statuses.OtherStatus} other statuses, {statuses.Failed} without a response");
        foreach (var problem in statuses.Problems) Console.WriteLine($"  NOT 200: {problem}");
    }

    /// <summary>A random-weight clipseg-rd64-refined as an HF folder (HF's initialisation, the built-in CLIP vocabulary, the default 352x352 preprocessor).</summary>
    private static void WriteRandomFullSize(string dir)
    {
        TorchSharp.torch.manual_seed(0);
        using var model = new ClipSegModel(ClipSegConfig.Rd64Refined);
        ClipSegInitializer.Initialize(model, 0);
        ClipTokenizer.WriteBuiltInVocabulary(dir);
        ClipSegLoader.SaveFolder(model, dir, dir);
    }

    /// <summary>
    /// One model: MaxBatch 8 at every concurrency, then MaxBatch 1 at the highest, each with its
    /// own host (loaded once) and server; <paramref name="andThen"/> runs on the MaxBatch 8 host.
    /// </summary>
    private static void Sweep(JsonObject extra, string label, string folder, int[] concurrencies, Func<int, int> requests, TimeSpan limit,
        byte[] png, Statuses statuses, Action<ModelHost>? andThen)
    {
        int top = concurrencies.Max();
        double batchedRps = 0;
        foreach (int maxBatch in new[] { 8, 1 })
        {
            using var host = ServedModelSpec.FromOptions([$"{label}={folder}"], [], null)[0]
                .Open(ComputePrecision.Fp32, new Dictionary<string, string>(), new QueueSettings(Capacity: 64, MaxBatch: maxBatch, BatchWindowMilliseconds: 4));
            var app = VlsmServer.Build(new ServerOptions { Port = 0 }, [host]);
            app.StartAsync().GetAwaiter().GetResult();
            try
            {
                string url = app.Urls.First() + "/v1/segment";
                Run(url, 1, 2, limit, png, statuses); // warm-up: first requests pay for JIT and first allocations
                foreach (int c in maxBatch == 8 ? concurrencies : [top])
                {
                    var before = host.Counts;
                    var load = Run(url, c, requests(c), limit, png, statuses);
                    var after = host.Counts;
                    double pairsPerBatch = (double)(after.Pairs - before.Pairs) / Math.Max(1, after.Batches - before.Batches);
                    string key = $"serve_{label}_c{c}" + (maxBatch == 1 ? "_maxbatch1" : "");
                    extra[$"{key}_requests"] = load.Completed;
                    extra[$"{key}_rps"] = Math.Round(load.Rps, 2);
                    extra[$"{key}_p50_ms"] = Math.Round(load.Percentile(0.50), 1);
                    extra[$"{key}_p95_ms"] = Math.Round(load.Percentile(0.95), 1);
                    extra[$"{key}_pairs_per_batch"] = Math.Round(pairsPerBatch, 2);
                    Console.WriteLine($"serve {label} MaxBatch {maxBatch}, {c} client(s): {load.Completed} requests in {load.Seconds:0.0} s = {load.Rps:0.00} req/s, "
                        + $"p50 {load.Percentile(0.50):0} ms, p95 {load.Percentile(0.95):0} ms, {pairsPerBatch:0.00} pairs per batch");
                    if (maxBatch == 8 && c == top) batchedRps = load.Rps;
                    if (maxBatch == 1)
                    {
                        double gain = load.Rps > 0 ? batchedRps / load.Rps : double.NaN;
                        extra[$"serve_{label}_c{c}_batching_gain"] = Math.Round(gain, 3);
                        Console.WriteLine($"serve {label} batching gain at {c} clients: MaxBatch 8 {batchedRps:0.00} req/s over MaxBatch 1 {load.Rps:0.00} req/s = {gain:0.00}x");
                    }
                }
                if (maxBatch == 8) andThen?.Invoke(host);
            }
            finally
            {
                app.StopAsync().GetAwaiter().GetResult();
                app.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
    }

    /// <summary>Resident memory after a warm-up and after <paramref name="requests"/> more requests (4 clients) on a running server.</summary>
    private static void Soak(JsonObject extra, ModelHost host, byte[] png, Statuses statuses, int warmUp, int requests)
    {
        var app = VlsmServer.Build(new ServerOptions { Port = 0 }, [host]);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            string url = app.Urls.First() + "/v1/segment";
            Run(url, 4, warmUp, TimeSpan.FromMinutes(5), png, statuses);
            long warm = PeakRss.ResidentKilobytesAfterGc();
            var load = Run(url, 4, requests, TimeSpan.FromMinutes(10), png, statuses);
            long after = PeakRss.ResidentKilobytesAfterGc();
            double growthPct = (after - warm) * 100.0 / warm;
            extra["serve_soak_requests"] = load.Completed;
            extra["serve_soak_rss_warm_mb"] = Math.Round(warm / 1024.0, 1);
            extra["serve_soak_rss_after_mb"] = Math.Round(after / 1024.0, 1);
            extra["serve_soak_rss_growth_mb"] = Math.Round((after - warm) / 1024.0, 1);
            extra["serve_soak_rss_growth_pct"] = Math.Round(growthPct, 2);
            Console.WriteLine($"serve soak (tiny, 4 clients): RSS {warm / 1024.0:0.0} MB after {warmUp} warm-up requests, {after / 1024.0:0.0} MB after {load.Completed} more "
                + $"({(after - warm) / 1024.0:+0.0;-0.0;0.0} MB, {growthPct:+0.00;-0.00;0.00} %)");
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            app.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary><paramref name="clients"/> clients, each with its own HttpClient, post until <paramref name="requests"/> are sent or <paramref name="limit"/> passes.</summary>
    private static Load Run(string url, int clients, int requests, TimeSpan limit, byte[] png, Statuses statuses)
    {
        int issued = 0;
        var latencies = new List<double>();
        var clock = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
            while (clock.Elapsed < limit && Interlocked.Increment(ref issued) <= requests)
            {
                using var form = new MultipartFormDataContent
                {
                    { new ByteArrayContent(png), "image", "scan.png" },
                    { new StringContent(Prompt), "prompt" },
                    { new StringContent("mask"), "output" },
                };
                var started = clock.Elapsed;
                try
                {
                    using var response = await http.PostAsync(url, form);
                    byte[] body = await response.Content.ReadAsByteArrayAsync();
                    double ms = (clock.Elapsed - started).TotalMilliseconds;
                    statuses.Add(response.StatusCode, $"{body.Length} bytes: {System.Text.Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 200)))}");
                    if (response.StatusCode == HttpStatusCode.OK) lock (latencies) latencies.Add(ms);
                }
                catch (HttpRequestException e)
                {
                    statuses.Add(null, e.Message);
                }
            }
        })).ToArray();
        Task.WaitAll(tasks);
        double seconds = clock.Elapsed.TotalSeconds;
        return new Load(latencies.Count, seconds, latencies.Order().ToArray());
    }
}
