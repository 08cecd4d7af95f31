using Vlsm.Training;

namespace Vlsm.Apps.Sweeps;

/// <summary>
/// Successive halving over a sweep's trials: rung by rung, each grid cell's best trials (by the
/// best validation Dice their runs reached) train on to the next rung's epochs, resuming their own
/// runs. What a rung decided is read back from the cells, so a killed search picks up where it was.
/// </summary>
internal sealed class SearchRunner(Sweep sweep)
{
    public void Run(Action<IReadOnlyList<SweepCell>> runCells)
    {
        var search = sweep.Spec.Search!;
        var rungs = search.Rungs;
        var groups = sweep.Cells.GroupBy(c => string.Join("|", c.Values.Where(v => sweep.Spec.Grid.Any(g => g.Key == v.Key)).Select(v => $"{v.Key}={v.Value}")))
            .Select(g => g.ToList()).ToList();
        var survivors = groups.Select(g => (IReadOnlyList<SweepCell>)g).ToList();
        for (int rung = 0; rung < rungs.Count; rung++)
        {
            if (rung > 0)
                survivors = survivors.Select(g => (IReadOnlyList<SweepCell>)g
                    .OrderByDescending(c => CellRunner.Read(sweep.CellDir(c))?.BestValDice ?? double.NegativeInfinity)
                    .ThenBy(c => c.Index)
                    .Take(search.Keep(rung)).ToList()).ToList();
            var cells = survivors.SelectMany(g => g).ToList();
            foreach (var cell in cells) Promote(cell, rungs[rung]);
            runCells(cells);
        }
    }

    /// <summary>Sets a cell to train to <paramref name="epochs"/>: a cell done at fewer epochs runs again, resuming its run.</summary>
    private void Promote(SweepCell cell, int epochs)
    {
        string dir = sweep.CellDir(cell);
        Directory.CreateDirectory(dir);
        var record = CellRunner.Read(dir) ?? CellRunner.NewRecord(cell);
        if (record.TargetEpochs >= epochs) return;
        // A run that stopped early has trained all it will and stays done.
        bool more = RunExtension.Extend(new RunFolder(Path.Combine(dir, "run")), epochs);
        var status = record.Status == CellStatus.Done && more ? CellStatus.Pending : record.Status;
        CellRunner.Write(dir, record with { TargetEpochs = epochs, Status = status });
    }
}
