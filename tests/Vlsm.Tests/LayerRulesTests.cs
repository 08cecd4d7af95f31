using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Vlsm.Tests;

/// <summary>
/// The layers of docs/architecture.md, enforced: core, then models, then data, then the tasks
/// (inference, evaluation, training, in that order), then the applications. A namespace may use
/// only its own layer's earlier namespaces and the layers below, no namespaces may form a cycle,
/// and project references follow the same order.
/// </summary>
public class LayerRulesTests
{
    private static readonly Regex Namespace = new(@"^namespace\s+([\w.]+)\s*;", RegexOptions.Multiline | RegexOptions.Compiled);
    private static readonly Regex Using = new(@"^using\s+(?:static\s+)?(?:\w+\s*=\s*)?(Vlsm(?:\.\w+)*)\s*;", RegexOptions.Multiline | RegexOptions.Compiled);
    private static readonly Regex Qualified = new(@"(?<![\w.])(Vlsm(?:\.[A-Z]\w*)+)", RegexOptions.Compiled);

    /// <summary>(layer, position within the layer) of a namespace; null when no layer claims it.</summary>
    internal static (int Layer, int Order)? Rank(string ns)
    {
        bool Under(string prefix) => ns == prefix || ns.StartsWith(prefix + ".", StringComparison.Ordinal);
        if (ns == "Vlsm" || Under("Vlsm.IO") || Under("Vlsm.Imaging") || Under("Vlsm.Text") || Under("Vlsm.Tensors") || Under("Vlsm.Platform")) return (0, 0);
        if (Under("Vlsm.Models")) return (1, 0);
        if (Under("Vlsm.Data")) return (2, 0);
        if (Under("Vlsm.Inference")) return (3, 0);
        if (Under("Vlsm.Evaluation")) return (3, 1);
        if (Under("Vlsm.Training")) return (3, 2);
        if (Under("Vlsm.Apps") || Under("Vlsm.Server") || Under("Vlsm.Cli")) return (4, 0);
        return null;
    }

    internal static readonly string[] LayerNames = ["core", "models", "data", "tasks", "apps"];

    /// <summary>The namespace graph of the C# files under src/: each namespace and the Vlsm namespaces it uses.</summary>
    internal static Dictionary<string, HashSet<string>> Graph(IEnumerable<string> files)
    {
        var texts = files.Select(f => (File: f, Text: File.ReadAllText(f))).ToList();
        var declared = texts.Select(t => Namespace.Match(t.Text)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        string? Resolve(string reference)
        {
            var parts = reference.Split('.');
            for (int k = parts.Length; k > 0; k--)
            {
                string candidate = string.Join('.', parts[..k]);
                if (declared.Contains(candidate)) return candidate;
            }
            return null;
        }
        var graph = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (file, text) in texts)
        {
            var m = Namespace.Match(text);
            string ns = m.Success ? m.Groups[1].Value : "Vlsm.Cli"; // top-level statements (Program.cs)
            var edges = graph.TryGetValue(ns, out var e) ? e : graph[ns] = new HashSet<string>(StringComparer.Ordinal);
            var code = string.Join('\n', text.Split('\n').Where(l => !l.TrimStart().StartsWith("//", StringComparison.Ordinal)));
            foreach (var reference in Using.Matches(code).Select(x => x.Groups[1].Value).Concat(Qualified.Matches(code).Select(x => x.Groups[1].Value)))
                if (Resolve(reference) is { } target && target != ns) edges.Add(target);
        }
        return graph;
    }

    /// <summary>Every dependency that points up a layer, or to a later namespace of the same layer, and every namespace no layer claims.</summary>
    internal static List<string> Violations(Dictionary<string, HashSet<string>> graph)
    {
        var problems = new List<string>();
        foreach (var (ns, targets) in graph.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (Rank(ns) is not { } from)
            {
                problems.Add($"{ns}: belongs to no layer; add it to LayerRulesTests.Rank and docs/architecture.md");
                continue;
            }
            foreach (var target in targets.Order(StringComparer.Ordinal))
            {
                if (Rank(target) is not { } to) continue;
                if (to.Layer > from.Layer || (to.Layer == from.Layer && to.Order > from.Order))
                    problems.Add($"{ns} ({LayerNames[from.Layer]}) uses {target} ({LayerNames[to.Layer]})");
            }
        }
        problems.AddRange(Cycles(graph).Select(c => "cycle: " + string.Join(" -> ", c)));
        return problems;
    }

    /// <summary>Strongly connected groups of more than one namespace (Tarjan).</summary>
    internal static List<List<string>> Cycles(Dictionary<string, HashSet<string>> graph)
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var result = new List<List<string>>();
        int next = 0;
        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in graph.TryGetValue(v, out var ws) ? ws : [])
            {
                if (!index.ContainsKey(w))
                {
                    Visit(w);
                    low[v] = Math.Min(low[v], low[w]);
                }
                else if (onStack.Contains(w))
                {
                    low[v] = Math.Min(low[v], index[w]);
                }
            }
            if (low[v] != index[v]) return;
            var group = new List<string>();
            string x;
            do
            {
                x = stack.Pop();
                onStack.Remove(x);
                group.Add(x);
            } while (x != v);
            if (group.Count > 1) result.Add(group.Order(StringComparer.Ordinal).ToList());
        }
        foreach (var v in graph.Keys.Order(StringComparer.Ordinal))
            if (!index.ContainsKey(v)) Visit(v);
        return result;
    }

    private static IEnumerable<string> SourceFiles() =>
        Directory.EnumerateFiles(Path.Combine(Fixtures.RepoRoot, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"));

    [Fact]
    public void NoNamespaceDependsUpwardOrInACycle()
    {
        var graph = Graph(SourceFiles());
        Assert.Contains("Vlsm.Models.Registry", graph.Keys);
        Assert.Contains("Vlsm.Apps.Demo", graph.Keys);
        var problems = Violations(graph);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void TheCheckFindsAnUpwardDependencyAndACycle()
    {
        var graph = new Dictionary<string, HashSet<string>>
        {
            ["Vlsm.Models"] = ["Vlsm.Training"],
            ["Vlsm.Training"] = ["Vlsm.Models"],
            ["Vlsm.Inference"] = ["Vlsm.Evaluation"],
            ["Vlsm.Data.Prompts"] = ["Vlsm.Data.Synthetic"],
            ["Vlsm.Data.Synthetic"] = ["Vlsm.Data.Prompts"],
            ["Vlsm.Gizmos"] = [],
        };
        var problems = Violations(graph);
        Assert.Contains("Vlsm.Models (models) uses Vlsm.Training (tasks)", problems);
        Assert.Contains("Vlsm.Inference (tasks) uses Vlsm.Evaluation (tasks)", problems);
        Assert.Contains(problems, p => p.StartsWith("cycle: ") && p.Contains("Vlsm.Data.Prompts") && p.Contains("Vlsm.Data.Synthetic"));
        Assert.Contains(problems, p => p.StartsWith("Vlsm.Gizmos: belongs to no layer"));
    }

    [Fact]
    public void ProjectReferencesFollowTheLayers()
    {
        List<string> References(string project) => XDocument.Load(Path.Combine(Fixtures.RepoRoot, project)).Descendants("ProjectReference")
            .Select(e => Path.GetFileNameWithoutExtension(e.Attribute("Include")!.Value)).Order(StringComparer.Ordinal).ToList();
        List<string> Packages(string project) => XDocument.Load(Path.Combine(Fixtures.RepoRoot, project)).Descendants("PackageReference")
            .Select(e => e.Attribute("Include")!.Value).ToList();
        Assert.Empty(References("src/Vlsm/Vlsm.csproj"));
        Assert.Equal(["Vlsm"], References("src/Vlsm.Apps/Vlsm.Apps.csproj"));
        Assert.Equal(["Vlsm"], References("src/Vlsm.Server/Vlsm.Server.csproj"));
        Assert.Equal(["Vlsm", "Vlsm.Apps", "Vlsm.Server"], References("src/Vlsm.Cli/Vlsm.Cli.csproj"));
        // The library stays free of the command line's packages (and of a libtorch backend: applications choose it).
        foreach (var package in new[] { "Spectre.Console", "System.CommandLine", "TorchSharp-cpu" })
        {
            Assert.DoesNotContain(package, Packages("src/Vlsm/Vlsm.csproj"));
            Assert.DoesNotContain(package, Packages("src/Vlsm.Apps/Vlsm.Apps.csproj"));
            Assert.DoesNotContain(package, Packages("src/Vlsm.Server/Vlsm.Server.csproj"));
        }
    }
}
