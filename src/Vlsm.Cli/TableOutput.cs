using System.Text;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Vlsm.Cli;

/// <summary>
/// Tables on stdout: drawn with box characters on a terminal; as a Markdown table (one line per
/// row, never wrapped, cells as plain text) when stdout is a file or a pipe, so that other tools,
/// <c>column</c>, a README or a spreadsheet can read them.
/// </summary>
internal static class TableOutput
{
    public static void Write(Table table)
    {
        if (Console.IsOutputRedirected) Console.Out.Write(Markdown(table));
        else AnsiConsole.Write(table);
    }

    /// <summary>The table as GitHub-flavoured Markdown: header, alignment row (right-aligned columns "---:"), rows.</summary>
    public static string Markdown(Table table)
    {
        var sb = new StringBuilder();
        Line(sb, table.Columns.Select(c => Plain(c.Header)));
        sb.Append('|').Append(string.Join("|", table.Columns.Select(c => c.Alignment == Justify.Right ? "---:" : "---"))).Append("|\n");
        foreach (var row in table.Rows) Line(sb, row.Select(Plain));
        return sb.ToString();
    }

    private static void Line(StringBuilder sb, IEnumerable<string> cells) =>
        sb.Append("| ").Append(string.Join(" | ", cells)).Append(" |\n");

    /// <summary>A cell's text without colours or markup, on one line, with '|' escaped.</summary>
    private static string Plain(IRenderable cell)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 100_000;
        console.Write(cell);
        var text = string.Join(' ', writer.ToString().Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        return text.Replace("|", "\\|");
    }
}
