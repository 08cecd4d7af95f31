using System.CommandLine;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm data …</c>: dataset tools.</summary>
internal static class DataCommand
{
    public static Command Build() => new("data", "Dataset tools (medvlsm layout: images/, masks/, anns/{train,val,test}.json).")
    {
        DataCheckCommand.Build(),
    };
}
