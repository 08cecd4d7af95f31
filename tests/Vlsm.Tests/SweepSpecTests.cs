using Vlsm.Apps.Sweeps;
using Vlsm.Data.Synthetic;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>The specs in sweeps/ (the papers' experiments), option bundles, and the hyper-parameter search.</summary>
[Collection(GlobalRngCollection.Name)]
public sealed class SweepSpecTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-sweep-spec-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static readonly Dictionary<string, string> Vars = new() { ["DATA"] = "/data/medvlsm", ["MODELS"] = "/models" };

    [Theory]
    [InlineData("vlsm-adapter-table1.yaml", SweepMode.Train, 9 * 8 * 3)]
    [InlineData("medvlsm-table2.yaml", SweepMode.Cross, 2 * 4 * 1)]
    [InlineData("medvlsm-zero-shot.yaml", SweepMode.Eval, 2 * 10 * 10)]
    [InlineData("clipseg-lr-search.yaml", SweepMode.Train, 1)]
    public void ThePapersSpecsReadAsWritten(string file, SweepMode mode, int gridCells)
    {
        var spec = SweepSpec.Load(Path.Combine(Fixtures.RepoRoot, "sweeps", file), Vars);
        Assert.Equal(mode, spec.Mode);
        var cells = spec.Cells();
        Assert.Equal(gridCells, cells.Count);
        Assert.All(cells, c => Assert.DoesNotContain("${", c.Name));
        foreach (var cell in cells.Take(5))
        {
            var config = CellRunner.Config(spec, cell);
            Assert.StartsWith("/models/", config.Model);
            Assert.All(config.Data, d => Assert.StartsWith("/data/medvlsm/", d));
        }
        if (file.StartsWith("vlsm-adapter", StringComparison.Ordinal))
        {
            var cris = CellRunner.Config(spec, cells.First(c => c.Name.StartsWith("method=CRIS", StringComparison.Ordinal)));
            Assert.Equal(("/models/cris", "cris", "full", 1e-4), (cris.Model, cris.Preset, cris.Mode, cris.Lr));
            Assert.Equal("41", CellRunner.Config(spec, cells[0]).Seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (mode == SweepMode.Cross) Assert.Equal(5, spec.Eval.Data.Count);
    }

    [Fact]
    public void AnUnsetVariableIsNamed()
    {
        string file = Path.Combine(tmp, "vars.yaml");
        File.WriteAllText(file, "model: ${NOWHERE_SET_42}/m\ngrid:\n  data: [d]\n");
        var e = Assert.Throws<VlsmException>(() => SweepSpec.Load(file));
        Assert.Contains("${NOWHERE_SET_42} is not set", e.Message);
        Assert.Contains("line 1", e.Message);
    }

    [Fact]
    public void SuccessiveHalvingTrainsTheBestTrialsOnAsIfTheyHadStartedLonger()
    {
        string data = Path.Combine(tmp, "data");
        SyntheticDataset.Generate(data, new SynthOptions(12, 4, Size: 64, Style: SynthStyle.Medical), null);
        string specFile = Path.Combine(tmp, "search.yaml");
        File.WriteAllText(specFile, $"""
            name: search
            model: {Path.Combine(Fixtures.Parity, "clipseg-tiny")}
            grid: {"{"}data: [data]{"}"}
            train: {"{"}mode: decoder, prompt: p1, batch_size: 8{"}"}
            search:
              trials: 4
              seed: 7
              space: {"{"}lr: {"{"}log_uniform: [1e-4, 1e-2]{"}"}{"}"}
              halving: {"{"}eta: 2, min_epochs: 1, max_epochs: 2{"}"}
            """);
        string dir = Path.Combine(tmp, "out");
        var r = CliRunner.RunIn(tmp, "sweep", specFile, "--out", dir);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var sweep = Sweep.Open(dir);
        Assert.Equal(4, sweep.Cells.Count);
        var records = sweep.Cells.Select(c => CellRunner.Read(sweep.CellDir(c))!).ToList();
        Assert.All(records, rec => Assert.Equal(CellStatus.Done, rec.Status));
        // Rung 0: every trial one epoch; rung 1: the best two by validation Dice, two epochs.
        var promoted = records.Where(rec => rec.Epochs == 2).ToList();
        Assert.Equal(2, promoted.Count);
        Assert.Equal(2, records.Count(rec => rec.Epochs == 1));
        var firstEpochDice = sweep.Cells.ToDictionary(c => c.Name, c => new RunFolder(Path.Combine(sweep.CellDir(c), "run")).ReadMetrics()[0].ValDice);
        double cut = firstEpochDice.Values.OrderDescending().ElementAt(1);
        Assert.All(promoted, rec => Assert.True(firstEpochDice[rec.Name] >= cut, $"{rec.Name} was promoted with {firstEpochDice[rec.Name]}"));
        // The same draws in every process: the trials' learning rates follow from the seed.
        Assert.Equal(sweep.Spec.Search!.Draw(0), SweepSpec.Load(specFile).Search!.Draw(0));

        // A promoted trial equals a run started with two epochs and its learning rate.
        var best = sweep.Cells.First(c => promoted[0].Name == c.Name);
        string lr = (string)best["lr"]!;
        string fresh = Path.Combine(tmp, "fresh.yaml");
        File.WriteAllText(fresh, $"""
            model: {Path.Combine(Fixtures.Parity, "clipseg-tiny")}
            grid: {"{"}data: [data]{"}"}
            train: {"{"}mode: decoder, prompt: p1, batch_size: 8, lr: {lr}, epochs: 2{"}"}
            """);
        string freshDir = Path.Combine(tmp, "fresh");
        Assert.Equal(0, CliRunner.RunIn(tmp, "sweep", fresh, "--out", freshDir).ExitCode);
        var straight = new RunFolder(Path.Combine(Sweep.Open(freshDir).CellDir(Sweep.Open(freshDir).Cells[0]), "run"));
        var extended = new RunFolder(Path.Combine(sweep.CellDir(best), "run"));
        static string[] WithoutSeconds(RunFolder run) => File.ReadAllLines(run.MetricsFile).Select(l => string.Join(',', l.Split(',')[..^1])).ToArray();
        Assert.Equal(WithoutSeconds(straight), WithoutSeconds(extended));
        Assert.Equal(File.ReadAllBytes(straight.BestFile), File.ReadAllBytes(extended.BestFile));
    }
}
