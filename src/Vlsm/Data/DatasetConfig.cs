using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Vlsm.Data;

/// <summary>
/// The optional <c>ROOT/dataset.yaml</c>: renames the medvlsm folders and annotation files.
/// <code>
/// images: imgs              # default "images"
/// masks: gt                 # default "masks"
/// class: polyp              # optional class name
/// annotations:              # default anns/{train,val,test}.json (+ any other anns/*.json)
///   train: splits/tr.json   # when given, these are exactly the dataset's splits
///   val: splits/va.json
/// </code>
/// All paths are relative to ROOT and must stay inside it.
/// </summary>
public sealed record DatasetConfig(string Images, string Masks, string? Class, IReadOnlyDictionary<string, string>? Annotations)
{
    public const string FileName = "dataset.yaml";

    public static DatasetConfig Default { get; } = new("images", "masks", null, null);

    private static readonly string[] Keys = ["images", "masks", "class", "annotations"];

    /// <summary>Reads <c>ROOT/dataset.yaml</c>; <see cref="Default"/> when there is none.</summary>
    /// <exception cref="VlsmException">The file is not valid YAML, has an unknown key, a value of the wrong type, or a path outside ROOT.</exception>
    public static DatasetConfig Load(string root)
    {
        string path = Path.Combine(root, FileName);
        if (!File.Exists(path)) return Default;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VlsmException($"{path}: cannot read the dataset settings ({e.Message}). Check that the file is readable.", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses the YAML text of a dataset.yaml; <paramref name="path"/> names it in messages.</summary>
    public static DatasetConfig Parse(string text, string path)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            // YamlDotNet wraps duplicate keys and syntax errors alike; its Start names the line.
            throw new VlsmException($"{path}: not valid YAML at line {e.Start.Line}: {Inner(e)}. Fix the file (keys: {string.Join(", ", Keys)}).", e);
        }
        catch (ArgumentException e)
        {
            throw new VlsmException($"{path}: not valid YAML ({e.Message}); is a key repeated? Fix the file.", e);
        }
        if (stream.Documents.Count == 0) return Default;
        if (stream.Documents.Count > 1)
            throw new VlsmException($"{path}: holds {stream.Documents.Count} YAML documents; a dataset.yaml is one mapping. Remove the extra '---' sections.");
        var rootNode = stream.Documents[0].RootNode;
        if (IsNull(rootNode)) return Default;
        if (rootNode is not YamlMappingNode map)
            throw new VlsmException($"{path}: must be a mapping of {string.Join(", ", Keys)}, not a {Kind(rootNode)} (line {rootNode.Start.Line}).");

        string images = Default.Images, masks = Default.Masks;
        string? cls = null;
        Dictionary<string, string>? annotations = null;
        foreach (var (keyNode, value) in map.Children)
        {
            string key = keyNode is YamlScalarNode { Value: { } k } ? k : "";
            switch (key)
            {
                case "images":
                    images = Folder(value, key);
                    break;
                case "masks":
                    masks = Folder(value, key);
                    break;
                case "class":
                    cls = Scalar(value, key, "a class name such as \"polyp\"");
                    break;
                case "annotations":
                    annotations = Annotations(value);
                    break;
                default:
                    throw new VlsmException(
                        $"{path}: unknown key \"{(key.Length > 0 ? key : keyNode.ToString())}\" (line {keyNode.Start.Line}). Known keys: {string.Join(", ", Keys)}; fix the spelling or remove it.");
            }
        }
        return new DatasetConfig(images, masks, cls, annotations);

        string Scalar(YamlNode node, string key, string what)
        {
            if (node is YamlScalarNode s && !IsNull(s) && !string.IsNullOrWhiteSpace(s.Value)) return s.Value!;
            throw new VlsmException($"{path}: key \"{key}\" (line {node.Start.Line}) must be {what}, not {Describe(node)}.");
        }

        string Folder(YamlNode node, string key)
        {
            string value = Scalar(node, key, "a path relative to the dataset folder");
            if (RecordPaths.Problem(value) is { } problem)
                throw new VlsmException($"{path}: key \"{key}\" = \"{value}\" {problem}; give a path inside the dataset folder, relative to it, without '..'.");
            return value;
        }

        Dictionary<string, string> Annotations(YamlNode node)
        {
            if (node is not YamlMappingNode splits || splits.Children.Count == 0)
                throw new VlsmException($"{path}: key \"annotations\" (line {node.Start.Line}) must map split names to JSON files, e.g. \"train: anns/train.json\", not {Describe(node)}.");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (splitNode, fileNode) in splits.Children)
            {
                string split = Scalar(splitNode, "annotations", "a split name such as train, val or test");
                if (!MedvlsmDataset.IsValidSplitName(split))
                    throw new VlsmException($"{path}: annotations key \"{split}\" (line {splitNode.Start.Line}) is not a usable split name; use letters, digits, '_' or '-' (train, val, test).");
                string file = Scalar(fileNode, $"annotations.{split}", "a JSON file path relative to the dataset folder");
                if (RecordPaths.Problem(file) is { } problem)
                    throw new VlsmException($"{path}: key \"annotations.{split}\" = \"{file}\" {problem}; give a path inside the dataset folder, relative to it, without '..'.");
                result[split] = file;
            }
            return result;
        }
    }

    private static string Inner(YamlException e)
    {
        string message = e.InnerException?.Message ?? e.Message;
        // YamlDotNet prefixes "(Line: 3, Col: 1, Idx: 10) - (Line: ...): " to its messages; the line is already given.
        int cut = message.LastIndexOf("): ", StringComparison.Ordinal);
        return (cut >= 0 && message.StartsWith('(') ? message[(cut + 3)..] : message).TrimEnd('.');
    }

    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: not (YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted) } s
        && (s.Value is null or "" or "~" or "null" or "Null" or "NULL");

    private static string Kind(YamlNode node) => node switch
    {
        YamlMappingNode => "mapping",
        YamlSequenceNode => "list",
        _ => "single value",
    };

    private static string Describe(YamlNode node) => node switch
    {
        YamlScalarNode s when IsNull(s) => "empty",
        YamlScalarNode s => $"\"{s.Value}\"",
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => node.NodeType.ToString(),
    };
}
