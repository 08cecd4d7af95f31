using System.CommandLine;
using Vlsm.Apps.Sweeps;

namespace Vlsm.Cli.Commands;

/// <summary>The sbatch settings <c>vlsm sweep --backend slurm</c> passes through.</summary>
internal sealed class SlurmOptions
{
    private readonly Option<string?> partition = new("--partition") { Description = "Slurm: the partition (queue)." };
    private readonly Option<string?> time = new("--time") { Description = "Slurm: each task's time limit (e.g. 04:00:00); a task near it requeues itself and resumes." };
    private readonly Option<int?> cpus = new("--cpus-per-task") { Description = "Slurm: CPUs per task (also its libtorch threads)." };
    private readonly Option<string?> mem = new("--mem") { Description = "Slurm: memory per task (e.g. 16G)." };
    private readonly Option<string?> gres = new("--gres") { Description = "Slurm: generic resources (e.g. gpu:1)." };

    public static SlurmOptions Create() => new();

    public IEnumerable<Option> All => [partition, time, cpus, mem, gres];

    public SlurmSettings Read(ParseResult parse)
    {
        if (parse.GetValue(cpus) is < 1) throw new VlsmException($"--cpus-per-task must be at least 1, got {parse.GetValue(cpus)}.");
        return new SlurmSettings(parse.GetValue(partition), parse.GetValue(time), parse.GetValue(cpus), parse.GetValue(mem), parse.GetValue(gres));
    }
}
