using System.CommandLine;
using Vlsm.Cli.Commands;

namespace Vlsm.Cli;

/// <summary>The <c>vlsm</c> command line: parsing and error reporting only; the work is in Vlsm.Core.</summary>
public static class VlsmCli
{
    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Show stack traces on errors, and which convolution path this CPU needs.",
        Recursive = true,
    };

    public static int Run(string[] args)
    {
        var parse = BuildRoot().Parse(args);
        // Mistakes get one line and a usage line (ParseErrors), not .NET type names and the whole help.
        if (parse.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?" or "/?" or "/h" or "--version")) return ParseErrors.Report(parse);
        return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
    }

    /// <summary>Every command and option; parsing only, no command runs until the parse result is invoked.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("vlsm: fine-tune and run vision-language segmentation models (CLIPSeg, BiomedCLIPSeg, CRIS, SAN) and their image-only baselines (UNet, UNet++, DeepLabV3+) on a CPU.")
        {
            DemoCommand.Build(),
            PredictCommand.Build(),
            VerifyCommand.Build(),
            TokenizeCommand.Build(),
            InfoCommand.Build(),
            TrainCommand.Build(),
            DataCommand.Build(),
            EvalCommand.Build(),
            PromptsCommand.Build(),
            SynthCommand.Build(),
            ConvertCommand.Build(),
            InitCommand.Build(),
            EnvCommand.Build(),
            ScoreCommand.Build(),
            SweepCommand.Build(),
            ReportCommand.Build(),
            ServeCommand.Build(),
        };
        root.Options.Add(Verbose);
        return root;
    }

    /// <summary>
    /// Runs a command body; bad input (VlsmException) becomes a one-line message and exit code 2,
    /// anything else a one-line message and exit code 3. <c>--verbose</c> adds the stack trace.
    /// </summary>
    public static int Guard(ParseResult parse, Func<int> body)
    {
        bool verbose = parse.GetValue(Verbose);
        if (parse.CommandResult.Command.Options.FirstOrDefault(o => o.Name == DataOptions.FollowSymlinksName) is Option<bool> follow)
            Data.MedvlsmDataset.FollowSymlinksByDefault = parse.GetValue(follow);
        if (verbose) Tensors.SafeConvolution.PathChosen += description => Console.Error.WriteLine($"convolution path: {description}");
        try
        {
            return body();
        }
        catch (VlsmException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            if (verbose) Console.Error.WriteLine(e);
            return 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            if (verbose) Console.Error.WriteLine(e);
            return 2;
        }
        catch (Exception e)
        {
            // One line: libtorch's errors carry their native stack frames after the first line.
            string first = e.Message.Split('\n', 2)[0].Trim();
            Console.Error.WriteLine($"error: {e.GetType().Name}: {Vlsm.IO.Printable.Clip(first, 300)}" + (verbose ? "" : " (run with --verbose for the stack trace)"));
            if (verbose) Console.Error.WriteLine(e);
            return 3;
        }
    }
}
