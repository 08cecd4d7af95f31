using System.Diagnostics;
using System.Text.Json.Nodes;
using Vlsm.Apps.Sweeps;
using Vlsm.Data;
using Vlsm.Data.Synthetic;
using Vlsm.Evaluation;
using Vlsm.Inference;
using Vlsm.Models;
using Vlsm.Training;

namespace Vlsm.Bench;

/// <summary>
/// What the sweep runner adds per cell: eight zero-shot evaluation cells of the tiny parity model
/// through <c>Sweep.RunLocal</c> against the same eight evaluations called directly, back to back.
/// </summary>
internal static class SweepOverhead
{
    public static void Measure(JsonObject extra, string tinyModel)
    {
        string root = Directory.CreateTempSubdirectory("vlsm-bench-sweep-").FullName;
        try
        {
            string data = Path.Combine(root, "data");
            SyntheticDataset.Generate(data, new SynthOptions(24, 5, Size: 64, Style: SynthStyle.Medical), null);
            string spec = Path.Combine(root, "spec.yaml");
            File.WriteAllText(spec, $"name: overhead\nmode: eval\nmodel: {tinyModel}\ngrid:\n  data: [data]\n  prompt: [p0, p1, p2, p3, p4, p5, p6, p7]\n");
            var sweep = Sweep.Plan(SweepSpec.Load(spec), Path.Combine(root, "out"));

            // Direct: open the model and evaluate each prompt, as a hand-written loop would. One
            // untimed evaluation first, so neither side pays the process's first-use costs.
            void EvaluateDirectly(int p)
            {
                using var segmenter = new ModelReference(tinyModel, null, null).Open(ComputePrecision.Fp32, new Dictionary<string, string>());
                var evaluator = Evaluator.Plan(segmenter, PooledDataset.Open([data]), new EvaluationOptions { Prompt = $"p{p}" }, tinyModel, null);
                evaluator.Run().Write(Directory.CreateTempSubdirectory("vlsm-bench-eval-").FullName);
            }
            EvaluateDirectly(0);
            var direct = Stopwatch.StartNew();
            for (int p = 0; p < 8; p++) EvaluateDirectly(p);
            double directSeconds = direct.Elapsed.TotalSeconds;

            var swept = Stopwatch.StartNew();
            var states = sweep.RunLocal(1, Environment.ProcessorCount, null, new Quiet());
            double sweepSeconds = swept.Elapsed.TotalSeconds;
            if (states.Any(s => s.Status != CellStatus.Done)) throw new InvalidOperationException("a bench sweep cell did not finish");

            double perCell = (sweepSeconds - directSeconds) / 8;
            extra["sweep_cells"] = 8;
            extra["sweep_direct_s"] = Math.Round(directSeconds, 3);
            extra["sweep_runner_s"] = Math.Round(sweepSeconds, 3);
            extra["sweep_overhead_per_cell_s"] = Math.Round(perCell, 4);
            Console.WriteLine($"sweep runner: 8 zero-shot cells {sweepSeconds:0.00} s, the same evaluations called directly {directSeconds:0.00} s: {perCell * 1000:0} ms per cell of overhead (plan, locks, cell.json)");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private sealed class Quiet : ISweepObserver
    {
        public ITrainingObserver Training { get; } = new SilentTraining();
        public void CellStarted(SweepCell cell, int position, int count) { }
        public void CellFinished(CellRecord record) { }
    }

    private sealed class SilentTraining : ITrainingObserver
    {
        public void RunStarted(string description) { }
        public void EpochStarted(int epoch, int maxEpochs, int steps) { }
        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond) { }
        public void EpochCompleted(EpochMetrics metrics, bool best) { }
        public void Message(string text) { }
    }
}
