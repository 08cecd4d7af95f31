using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using Vlsm.Platform;

namespace Vlsm.Cli.Commands;

internal static class EnvCommand
{
    public static Command Build()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var cmd = new Command("env", "What a bug report needs: versions, CPU and instruction sets, threads, the convolution path and whether bf16 is fast here.") { json };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var report = PlatformReport.Collect();
            if (parse.GetValue(json))
            {
                Console.WriteLine(report.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).AddColumn("what").AddColumn("value");
            void Row(string what, string value) => table.AddRow(Markup.Escape(what), Markup.Escape(value));
            Row("vlsm", report.Commit is null ? report.VlsmVersion : $"{report.VlsmVersion} (commit {report.Commit})");
            Row(".NET", report.DotNet);
            Row("TorchSharp / libtorch", $"{report.TorchSharp} / {report.LibTorch}");
            Row("OS", report.Os);
            var cpu = report.Cpu;
            Row("CPU", cpu.Family is null ? cpu.Model : $"{cpu.Model} ({cpu.Vendor}, family {cpu.Family}, model {cpu.ModelNumber})");
            Row("instruction sets", cpu.InstructionSets.Count == 0 ? "(none of interest)" : string.Join(" ", cpu.InstructionSets));
            Row("threads", $"{report.TorchThreads} libtorch threads, {report.LogicalProcessors} logical processors");
            Row("convolution", report.ConvolutionDetail);
            Row("float32 products", MklFloatKernels.Setting);
            Row("bf16", $"{(report.Bf16IsFast ? "fast" : report.Bf16IsSlow ? $"slow, {report.GemmFp32Gflops / report.GemmBf16Gflops:0}x below fp32 (libtorch's reference kernel: use fp32 here)" : "not faster than fp32")}: 512x512 matmul {report.GemmBf16Gflops:0} GFLOP/s bf16, {report.GemmFp32Gflops:0} GFLOP/s fp32");
            foreach (var (name, value) in report.EnvironmentVariables) Row(name, value);
            TableOutput.Write(table);
            return 0;
        }));
        return cmd;
    }
}
