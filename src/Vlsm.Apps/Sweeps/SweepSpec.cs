using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Vlsm.Apps.Sweeps;

/// <summary>What every cell of a sweep does.</summary>
public enum SweepMode
{
    /// <summary>Train, then evaluate the best weights on the cell's own datasets.</summary>
    Train,

    /// <summary>Evaluate the model as it is (zero-shot, as medvlsm's zss.py does).</summary>
    Eval,

    /// <summary>Train on the cell's datasets, then evaluate on every dataset of <c>eval.data</c> (medvlsm's cross-dataset study).</summary>
    Cross,
}

/// <summary>
/// A sweep: a grid of train options in YAML, as <c>vlsm sweep SPEC.yaml</c> reads it.
/// <code>
/// name: tiny
/// model: ../shared/parity/clipseg-tiny      # the model of every cell (a grid axis "model" overrides it)
/// mode: train                               # train | eval | cross
/// vars: {DATA: /data/medvlsm}               # ${DATA} in paths; --var and the environment override
/// grid:                                     # every key is a train option; the cells are the product of the lists
///   preset: [clipseg_shallow_adapter_vlc, clipseg_dense_adapter_vl]
///   data: [data/a, data/b]                  # a list as one value pools datasets: [[a, b], c]
///   seed: [1, 2]
/// train: {epochs: 1, batch_size: 8}         # the same for every cell
/// eval: {split: test, prompt: p1}           # prompt defaults to the cell's training prompt; cross: data: [...]
/// </code>
/// Relative paths are relative to the spec file's folder.
/// </summary>
public sealed record SweepSpec(
    string Name,
    string Path,
    string? Model,
    SweepMode Mode,
    IReadOnlyList<(string Key, IReadOnlyList<object?> Values)> Grid,
    IReadOnlyDictionary<string, object?> Train,
    EvalSection Eval,
    SearchSpec? Search)
{
    private static readonly Regex Variable = new(@"\$\{(\w+)\}", RegexOptions.Compiled);

    /// <summary>Reads and checks a spec file; <paramref name="variables"/> (from --var) win over the spec's vars and the environment.</summary>
    /// <exception cref="VlsmException">The file is missing or not YAML, or a section or value is not what a spec holds (named with its line).</exception>
    public static SweepSpec Load(string path, IReadOnlyDictionary<string, string>? variables = null)
    {
        if (!File.Exists(path)) throw new VlsmException($"{path}: sweep spec not found.");
        var yaml = new YamlStream();
        try
        {
            using var reader = new StringReader(File.ReadAllText(path));
            yaml.Load(reader);
        }
        catch (YamlException e)
        {
            throw new VlsmException($"{path} line {e.Start.Line}: {e.Message}", e);
        }
        if (yaml.Documents.Count != 1 || yaml.Documents[0].RootNode is not YamlMappingNode root)
            throw new VlsmException($"{path}: a sweep spec is one YAML mapping (name:, model:, grid:, train:, eval:).");
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        var known = new HashSet<string> { "name", "model", "mode", "vars", "grid", "train", "eval", "search" };
        foreach (var key in root.Children.Keys)
            if (!known.Contains(Scalar(key, path)))
                throw new VlsmException($"{path} line {key.Start.Line}: \"{Scalar(key, path)}\" is not a sweep section; known: {string.Join(", ", known)}.");

        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Child(root, "vars") is { } varsNode)
            foreach (var (k, v) in Mapping(varsNode, path, "vars")) vars[k] = ScalarText(v, path, $"vars.{k}");
        string Expand(string text, YamlNode at) => Variable.Replace(text, m =>
        {
            string name = m.Groups[1].Value;
            if (variables?.TryGetValue(name, out var given) == true) return given;
            if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } env) return env;
            if (vars.TryGetValue(name, out var own)) return own;
            throw new VlsmException($"{path} line {at.Start.Line}: ${{{name}}} is not set; give --var {name}=VALUE, set it in vars:, or in the environment.");
        });
        string PathValue(string text, YamlNode at)
        {
            string expanded = Expand(text, at);
            return System.IO.Path.IsPathRooted(expanded) ? expanded : System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, expanded));
        }
        object? Value(string key, YamlNode node) => node switch
        {
            YamlScalarNode s when key is "model" or "data" => PathValue(s.Value ?? "", s),
            YamlScalarNode s => Expand(s.Value ?? "", s),
            YamlSequenceNode list when key == "data" => list.Children.Select(c => (object?)PathValue(ScalarText(c, path, key), c)).ToList(),
            _ => throw new VlsmException($"{path} line {node.Start.Line}: {key} takes a value{(key == "data" ? " or a list of datasets to pool" : "")}, not {NodeKind(node)}."),
        };
        // A grid value may also be a bundle of options set together: {name: cris, model: M, preset: cris}.
        object? GridValue(string axis, YamlNode node) => node is YamlMappingNode bundle
            ? Mapping(bundle, path, $"grid.{axis}").ToDictionary(kv => kv.Key, kv => kv.Key == "name" ? ScalarText(kv.Node, path, "name") : Value(kv.Key, kv.Node), StringComparer.Ordinal)
            : Value(axis, node);

        string name = Child(root, "name") is { } n ? ScalarText(n, path, "name") : System.IO.Path.GetFileNameWithoutExtension(path);
        string? model = Child(root, "model") is { } m ? (string?)Value("model", m) : null;
        var mode = Child(root, "mode") is { } modeNode
            ? ScalarText(modeNode, path, "mode") switch
            {
                "train" => SweepMode.Train,
                "eval" => SweepMode.Eval,
                "cross" => SweepMode.Cross,
                var other => throw new VlsmException($"{path} line {modeNode.Start.Line}: mode \"{other}\" is not one of train (train then evaluate), eval (zero-shot), cross (train, then evaluate on eval.data)."),
            }
            : SweepMode.Train;

        var grid = new List<(string, IReadOnlyList<object?>)>();
        if (Child(root, "grid") is { } gridNode)
        {
            foreach (var (key, node) in Mapping(gridNode, path, "grid"))
            {
                if (node is not YamlSequenceNode values || values.Children.Count == 0)
                    throw new VlsmException($"{path} line {node.Start.Line}: grid.{key} must be a non-empty list of values (e.g. [1, 2]).");
                grid.Add((key, values.Children.Select(v => GridValue(key, v)).ToList()));
            }
        }
        var train = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (Child(root, "train") is { } trainNode)
            foreach (var (key, node) in Mapping(trainNode, path, "train")) train[key] = Value(key, node);
        foreach (var (key, _) in grid)
            if (train.ContainsKey(key)) throw new VlsmException($"{path}: {key} is both a grid axis and a train option; keep one.");

        var eval = EvalSection.Read(Child(root, "eval"), path, s => PathValue(s.Value ?? "", s));
        var search = Child(root, "search") is { } searchNode ? SearchSpec.Read(searchNode, path) : null;

        var spec = new SweepSpec(name, System.IO.Path.GetFullPath(path), model, mode, grid, train, eval, search);
        spec.Check();
        return spec;
    }

    private void Check()
    {
        bool modelAxis = Grid.Any(g => g.Key == "model" || g.Values.All(v => v is IReadOnlyDictionary<string, object?> b && b.ContainsKey("model")));
        if (Model is null && !modelAxis) throw new VlsmException($"{Path}: no model; give model: PATH, or a grid axis model: [...].");
        bool dataGiven = Grid.Any(g => g.Key == "data") || Train.ContainsKey("data");
        if (!dataGiven) throw new VlsmException($"{Path}: no dataset; give a grid axis data: [...] or train: {{data: PATH}}.");
        if (Mode == SweepMode.Cross && Eval.Data.Count == 0) throw new VlsmException($"{Path}: mode cross evaluates on eval.data; list the datasets to test on there.");
        if (Search is not null && Mode == SweepMode.Eval) throw new VlsmException($"{Path}: search: trains; it does not go with mode eval.");
    }

    /// <summary>The cells: the product of the grid's lists, in the order the axes and values are written.</summary>
    public IReadOnlyList<SweepCell> Cells()
    {
        var cells = new List<SweepCell>();
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        void Expand(int axis)
        {
            if (axis == Grid.Count)
            {
                var copy = new List<(string, object?)>(Grid.Select(g => (g.Key, values[g.Key])));
                cells.Add(new SweepCell(cells.Count, CellName(copy), copy));
                return;
            }
            foreach (var v in Grid[axis].Values)
            {
                values[Grid[axis].Key] = v;
                Expand(axis + 1);
            }
        }
        Expand(0);
        var duplicate = cells.GroupBy(c => c.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new VlsmException($"{Path}: two cells would share the folder {duplicate.Key}; make the grid's values differ.");
        return cells;
    }

    /// <summary>A stable, readable folder name: key=value per axis, datasets by folder name; long names end in a hash of the values.</summary>
    internal static string CellName(IReadOnlyList<(string Key, object? Value)> values)
    {
        if (values.Count == 0) return "all";
        string Slug(object? v) => v switch
        {
            null => "none",
            IReadOnlyDictionary<string, object?> bundle => bundle.TryGetValue("name", out var name) ? Slug(name) : string.Join("+", bundle.Values.Select(Slug)),
            IReadOnlyList<object?> list => string.Join("+", list.Select(Slug)),
            string s when s.Contains('/') || s.Contains(System.IO.Path.DirectorySeparatorChar) => System.IO.Path.GetFileName(s.TrimEnd('/', System.IO.Path.DirectorySeparatorChar)),
            _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
        };
        string raw = string.Join("__", values.Select(v => $"{v.Key}={Slug(v.Value)}"));
        string safe = Regex.Replace(raw, @"[^A-Za-z0-9._=+\-]", "-");
        if (safe.Length <= 120) return safe;
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(raw)))[..8];
        return safe[..111] + "-" + hash;
    }

    /// <summary>The resolved spec as JSON (sweep.json), so cells run later, elsewhere (Slurm), exactly as planned.</summary>
    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["path"] = Path,
        ["model"] = Model,
        ["mode"] = Mode.ToString().ToLowerInvariant(),
        ["grid"] = new JsonArray(Grid.Select(g => (JsonNode)new JsonObject { ["key"] = g.Key, ["values"] = new JsonArray(g.Values.Select(CellRunner.ToJson).ToArray()) }).ToArray()),
        ["train"] = new JsonObject(Train.Select(kv => KeyValuePair.Create(kv.Key, CellRunner.ToJson(kv.Value)))),
        ["eval"] = new JsonObject
        {
            ["split"] = Eval.Split,
            ["prompt"] = Eval.Prompt,
            ["threshold"] = Eval.Threshold,
            ["data"] = new JsonArray(Eval.Data.Select(CellRunner.ToJson).ToArray()),
        },
        ["search"] = Search?.ToJson(),
    };

    public static SweepSpec FromJson(JsonObject o)
    {
        static object? Value(JsonNode? n) => n switch
        {
            null => null,
            JsonObject bundle => bundle.ToDictionary(kv => kv.Key, kv => Value(kv.Value), StringComparer.Ordinal),
            JsonArray a => a.Select(Value).ToList(),
            _ => n.GetValue<string>(),
        };
        var grid = o["grid"]!.AsArray().Select(g => (g!["key"]!.GetValue<string>(), (IReadOnlyList<object?>)g["values"]!.AsArray().Select(Value).ToList())).ToList();
        var train = o["train"]!.AsObject().ToDictionary(kv => kv.Key, kv => Value(kv.Value), StringComparer.Ordinal);
        var e = o["eval"]!;
        var eval = new EvalSection(e["split"]!.GetValue<string>(), e["prompt"]?.GetValue<string>(), e["threshold"]!.GetValue<float>(), e["data"]!.AsArray().Select(Value).ToList());
        var mode = Enum.Parse<SweepMode>(o["mode"]!.GetValue<string>(), ignoreCase: true);
        return new SweepSpec(o["name"]!.GetValue<string>(), o["path"]!.GetValue<string>(), o["model"]?.GetValue<string>(), mode, grid, train, eval,
            o["search"] is JsonObject search ? SearchSpec.FromJson(search) : null);
    }

    internal static YamlNode? Child(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var node) ? node : null;

    internal static IEnumerable<(string Key, YamlNode Node)> Mapping(YamlNode node, string path, string what)
    {
        if (node is not YamlMappingNode map) throw new VlsmException($"{path} line {node.Start.Line}: {what} must be a mapping (key: value), not {NodeKind(node)}.");
        return map.Children.Select(kv => (Scalar(kv.Key, path), kv.Value));
    }

    internal static string Scalar(YamlNode node, string path) =>
        node is YamlScalarNode s ? s.Value ?? "" : throw new VlsmException($"{path} line {node.Start.Line}: expected a name, not {NodeKind(node)}.");

    internal static string ScalarText(YamlNode node, string path, string what) =>
        node is YamlScalarNode s ? s.Value ?? "" : throw new VlsmException($"{path} line {node.Start.Line}: {what} takes one value, not {NodeKind(node)}.");

    private static string NodeKind(YamlNode node) => node switch
    {
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => "a value",
    };
}

/// <summary>How cells are evaluated: split, prompt, threshold, and (mode cross) the datasets to test on.</summary>
public sealed record EvalSection(string Split, string? Prompt, float Threshold, IReadOnlyList<object?> Data)
{
    public static EvalSection Read(YamlNode? node, string path, Func<YamlScalarNode, string> pathValue)
    {
        if (node is null) return new EvalSection("test", null, 0.5f, []);
        string split = "test";
        string? prompt = null;
        float threshold = 0.5f;
        var data = new List<object?>();
        foreach (var (key, value) in SweepSpec.Mapping(node, path, "eval"))
        {
            switch (key)
            {
                case "split":
                    split = SweepSpec.ScalarText(value, path, "eval.split");
                    break;
                case "prompt":
                    prompt = SweepSpec.ScalarText(value, path, "eval.prompt");
                    break;
                case "threshold":
                    string t = SweepSpec.ScalarText(value, path, "eval.threshold");
                    if (!float.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out threshold) || threshold is < 0 or > 1)
                        throw new VlsmException($"{path} line {value.Start.Line}: eval.threshold \"{t}\" must be a probability in [0, 1].");
                    break;
                case "data":
                    if (value is not YamlSequenceNode list) throw new VlsmException($"{path} line {value.Start.Line}: eval.data must be a list of datasets.");
                    foreach (var item in list.Children)
                    {
                        data.Add(item switch
                        {
                            YamlScalarNode s => pathValue(s),
                            YamlSequenceNode pooled => pooled.Children.Select(c => (object?)pathValue((YamlScalarNode)c)).ToList(),
                            _ => throw new VlsmException($"{path} line {item.Start.Line}: eval.data holds datasets or lists of datasets."),
                        });
                    }
                    break;
                default:
                    throw new VlsmException($"{path} line {value.Start.Line}: eval.{key} is not an eval setting; known: split, prompt, threshold, data.");
            }
        }
        return new EvalSection(split, prompt, threshold, data);
    }
}

/// <summary>One cell: its position, its folder name and its values for each grid axis.</summary>
public sealed record SweepCell(int Index, string Name, IReadOnlyList<(string Key, object? Value)> Values)
{
    public object? this[string key] => Values.FirstOrDefault(v => v.Key == key).Value;

    public bool Has(string key) => Values.Any(v => v.Key == key);
}
