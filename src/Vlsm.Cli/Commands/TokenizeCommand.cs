using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Text;

namespace Vlsm.Cli.Commands;

internal static class TokenizeCommand
{
    public static Command Build()
    {
        var model = new Option<string>("--model") { Description = "Model folder with vocab.json and merges.txt.", Required = true };
        var input = new Option<string?>("--input") { Description = "File with one JSON string per line." };
        var texts = new Argument<string[]>("TEXT") { Description = "Texts to tokenize.", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("tokenize", "CLIP token ids of texts, one JSON line each (start and end ids included, truncated to 77).") { model, input, texts };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var tokenizer = ClipTokenizer.FromFolder(parse.GetValue(model)!);
            var all = new List<string>(parse.GetValue(texts) ?? Array.Empty<string>());
            if (parse.GetValue(input) is { } path) all.AddRange(ReadJsonLines(path));
            if (all.Count == 0) throw new VlsmException("nothing to tokenize; give TEXT arguments or --input FILE.");
            foreach (var text in all)
            {
                var line = new JsonObject { ["text"] = text, ["ids"] = new JsonArray(tokenizer.Encode(text).Select(i => (JsonNode)i).ToArray()) };
                Console.WriteLine(line.ToJsonString());
            }
            return 0;
        }));
        return cmd;
    }

    private static IEnumerable<string> ReadJsonLines(string path)
    {
        if (!File.Exists(path)) throw new VlsmException($"{path}: input file not found.");
        int n = 0;
        foreach (var line in File.ReadLines(path))
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string? text;
            try
            {
                text = JsonSerializer.Deserialize<string>(line);
            }
            catch (JsonException)
            {
                text = null;
            }
            if (text is null)
                throw new VlsmException($"{path} line {n}: expected a JSON string such as \"a small polyp\", got {Truncate(line)}.");
            yield return text;
        }
    }

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..57] + "...";
}
