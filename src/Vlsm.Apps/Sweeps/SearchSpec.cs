using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Vlsm.Apps.Sweeps;

/// <summary>A distribution a search draws one train option from.</summary>
/// <param name="Kind">log_uniform, uniform or choice.</param>
public sealed record SearchDimension(string Key, string Kind, IReadOnlyList<string> Values)
{
    /// <summary>A draw, as the text config.yaml would hold.</summary>
    public string Draw(Random rng)
    {
        double Bound(int i) => double.Parse(Values[i], NumberStyles.Float, CultureInfo.InvariantCulture);
        return Kind switch
        {
            "log_uniform" => Math.Exp(Math.Log(Bound(0)) + rng.NextDouble() * (Math.Log(Bound(1)) - Math.Log(Bound(0)))).ToString("R", CultureInfo.InvariantCulture),
            "uniform" => (Bound(0) + rng.NextDouble() * (Bound(1) - Bound(0))).ToString("R", CultureInfo.InvariantCulture),
            _ => Values[rng.Next(Values.Count)],
        };
    }
}

/// <summary>
/// Random search with successive halving (the synchronous form of ASHA): in every grid cell,
/// <see cref="Trials"/> seeded draws of the search space train for <see cref="MinEpochs"/>; the best
/// 1/<see cref="Eta"/> by validation Dice continue to <see cref="Eta"/> times as many epochs, and so
/// on up to <see cref="MaxEpochs"/>. A trial that continues resumes its own run, so its epochs are
/// never trained twice. Resumable like the rest of the sweep.
/// <code>
/// search:
///   trials: 8
///   seed: 0
///   space:
///     lr: {log_uniform: [1e-6, 1e-3]}
///     batch_size: {choice: [16, 32, 64, 128]}
///   halving: {eta: 2, min_epochs: 1, max_epochs: 4}
/// </code>
/// </summary>
public sealed record SearchSpec(int Trials, int Seed, IReadOnlyList<SearchDimension> Space, int Eta, int MinEpochs, int MaxEpochs)
{
    /// <summary>The epochs of each rung: MinEpochs, MinEpochs·Eta, … up to MaxEpochs.</summary>
    public IReadOnlyList<int> Rungs
    {
        get
        {
            var rungs = new List<int>();
            for (long e = MinEpochs; e < MaxEpochs; e *= Eta) rungs.Add((int)e);
            rungs.Add(MaxEpochs);
            return rungs;
        }
    }

    /// <summary>How many trials a rung keeps: the best ⌈n/eta⌉ of the previous one.</summary>
    public int Keep(int rung) => rung == 0 ? Trials : (int)Math.Ceiling(Keep(rung - 1) / (double)Eta);

    /// <summary>Trial <paramref name="trial"/>'s values: the same for the same seed and index, whatever else runs.</summary>
    public IReadOnlyList<(string Key, string Value)> Draw(int trial)
    {
        // System.HashCode is seeded per process; a draw must be the same in every process.
        var rng = new Random(unchecked(Seed * 1_000_003 + trial));
        return Space.Select(d => (d.Key, d.Draw(rng))).ToList();
    }

    public static SearchSpec Read(YamlNode node, string path)
    {
        int trials = 8, seed = 0, eta = 2, minEpochs = 1, maxEpochs = 0;
        var space = new List<SearchDimension>();
        int Int(YamlNode n, string what, int min)
        {
            string text = SweepSpec.ScalarText(n, path, what);
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= min
                ? v
                : throw new VlsmException($"{path} line {n.Start.Line}: {what} \"{text}\" must be a whole number, at least {min}.");
        }
        foreach (var (key, value) in SweepSpec.Mapping(node, path, "search"))
        {
            switch (key)
            {
                case "trials": trials = Int(value, "search.trials", 1); break;
                case "seed": seed = Int(value, "search.seed", 0); break;
                case "space":
                    foreach (var (option, distribution) in SweepSpec.Mapping(value, path, "search.space"))
                    {
                        var pairs = SweepSpec.Mapping(distribution, path, $"search.space.{option}").ToList();
                        if (pairs.Count != 1 || pairs[0].Node is not YamlSequenceNode list)
                            throw new VlsmException($"{path} line {distribution.Start.Line}: search.space.{option} is one of {{log_uniform: [LOW, HIGH]}}, {{uniform: [LOW, HIGH]}}, {{choice: [A, B, ...]}}.");
                        string kind = pairs[0].Key;
                        var values = list.Children.Select(c => SweepSpec.ScalarText(c, path, $"search.space.{option}")).ToList();
                        if (kind is "log_uniform" or "uniform")
                        {
                            if (values.Count != 2 || !values.All(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _)))
                                throw new VlsmException($"{path} line {list.Start.Line}: {kind} takes [LOW, HIGH] numbers.");
                            double lo = double.Parse(values[0], CultureInfo.InvariantCulture), hi = double.Parse(values[1], CultureInfo.InvariantCulture);
                            if (!(lo < hi) || (kind == "log_uniform" && lo <= 0))
                                throw new VlsmException($"{path} line {list.Start.Line}: {kind} needs LOW < HIGH{(kind == "log_uniform" ? ", both positive" : "")}.");
                        }
                        else if (kind != "choice" || values.Count == 0)
                        {
                            throw new VlsmException($"{path} line {distribution.Start.Line}: \"{kind}\" is not a distribution; use log_uniform, uniform or choice (a non-empty list).");
                        }
                        space.Add(new SearchDimension(option, kind, values));
                    }
                    break;
                case "halving":
                    foreach (var (h, hv) in SweepSpec.Mapping(value, path, "search.halving"))
                    {
                        switch (h)
                        {
                            case "eta": eta = Int(hv, "search.halving.eta", 2); break;
                            case "min_epochs": minEpochs = Int(hv, "search.halving.min_epochs", 1); break;
                            case "max_epochs": maxEpochs = Int(hv, "search.halving.max_epochs", 1); break;
                            default: throw new VlsmException($"{path} line {hv.Start.Line}: search.halving.{h} is not a setting; known: eta, min_epochs, max_epochs.");
                        }
                    }
                    break;
                default:
                    throw new VlsmException($"{path} line {value.Start.Line}: search.{key} is not a search setting; known: trials, seed, space, halving.");
            }
        }
        if (space.Count == 0) throw new VlsmException($"{path}: search.space names no train option to search.");
        if (maxEpochs == 0) maxEpochs = minEpochs;
        if (maxEpochs < minEpochs) throw new VlsmException($"{path}: search.halving.max_epochs ({maxEpochs}) is below min_epochs ({minEpochs}).");
        return new SearchSpec(trials, seed, space, eta, minEpochs, maxEpochs);
    }

    public JsonObject ToJson() => new()
    {
        ["trials"] = Trials,
        ["seed"] = Seed,
        ["eta"] = Eta,
        ["min_epochs"] = MinEpochs,
        ["max_epochs"] = MaxEpochs,
        ["space"] = new JsonArray(Space.Select(d => (JsonNode)new JsonObject
        {
            ["key"] = d.Key,
            ["kind"] = d.Kind,
            ["values"] = new JsonArray(d.Values.Select(v => (JsonNode)v).ToArray()),
        }).ToArray()),
    };

    public static SearchSpec FromJson(JsonObject o) => new(
        o["trials"]!.GetValue<int>(), o["seed"]!.GetValue<int>(),
        o["space"]!.AsArray().Select(d => new SearchDimension(d!["key"]!.GetValue<string>(), d["kind"]!.GetValue<string>(),
            d["values"]!.AsArray().Select(v => v!.GetValue<string>()).ToList())).ToList(),
        o["eta"]!.GetValue<int>(), o["min_epochs"]!.GetValue<int>(), o["max_epochs"]!.GetValue<int>());
}
