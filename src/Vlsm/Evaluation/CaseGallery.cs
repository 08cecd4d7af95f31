using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Evaluation;

/// <summary>
/// Keeps the N best and N worst predictions by Dice per prompt key and dataset while scores arrive
/// (from several threads), then draws them with <see cref="Overlay.Captioned"/>: the prediction
/// filled in blue, the ground truth's outline in yellow on top, so misses (outline without fill) and
/// false positives (fill outside the outline) both show, captioned with the prompt, Dice and IoU and
/// a legend. Only 2N predictions per group are held, not one per image.
/// </summary>
internal sealed class CaseGallery
{
    private sealed record Case(ImageScore Score, DatasetRecord Record, GrayImage Prediction);

    private sealed class Group
    {
        public List<Case> Best { get; } = [];
        public List<Case> Worst { get; } = [];
    }

    // Ties go to the earlier record, so the selection does not depend on which thread scored first.
    private static readonly Comparison<Case> BestFirst = (a, b) =>
        b.Score.Dice.CompareTo(a.Score.Dice) is var c && c != 0 ? c : a.Score.Record.Index.CompareTo(b.Score.Record.Index);

    private static readonly Comparison<Case> WorstFirst = (a, b) =>
        a.Score.Dice.CompareTo(b.Score.Dice) is var c && c != 0 ? c : a.Score.Record.Index.CompareTo(b.Score.Record.Index);

    private readonly int _count;
    private readonly int _maskThreshold;
    private readonly Dictionary<(string Prompt, string Dataset), Group> _groups = [];
    private readonly object _gate = new();

    public CaseGallery(int count, int maskThreshold)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        _count = count;
        _maskThreshold = maskThreshold;
    }

    /// <param name="prediction">0/255 at the original size.</param>
    public void Offer(ImageScore score, DatasetRecord record, GrayImage prediction)
    {
        var item = new Case(score, record, prediction);
        lock (_gate)
        {
            var key = (score.PromptKey, score.Record.Dataset);
            if (!_groups.TryGetValue(key, out var group)) _groups[key] = group = new Group();
            Keep(group.Best, item, BestFirst);
            Keep(group.Worst, item, WorstFirst);
        }
    }

    private void Keep(List<Case> cases, Case item, Comparison<Case> order)
    {
        if (cases.Count == _count && order(item, cases[^1]) >= 0) return;
        int at = cases.FindIndex(c => order(item, c) < 0);
        cases.Insert(at < 0 ? cases.Count : at, item);
        if (cases.Count > _count) cases.RemoveAt(cases.Count - 1);
    }

    /// <summary>Writes <c>best_01_NAME.png</c>… and <c>worst_01_NAME.png</c>… under <paramref name="directory"/> (in each group's folder).</summary>
    public void Write(string directory, Evaluator evaluator)
    {
        lock (_gate)
        {
            foreach (var ((prompt, dataset), group) in _groups)
            {
                string folder = Path.Combine(directory, evaluator.GroupFolder(prompt, dataset));
                for (int i = 0; i < group.Best.Count; i++) Draw(group.Best[i], Path.Combine(folder, FileName("best", i, group.Best[i])));
                for (int i = 0; i < group.Worst.Count; i++) Draw(group.Worst[i], Path.Combine(folder, FileName("worst", i, group.Worst[i])));
            }
        }
    }

    /// <summary>"best_01_name.png": the image's name without extension, its subfolders joined with '_'.</summary>
    internal static string FileName(string kind, int rank, ImageScore score)
    {
        string name = Path.ChangeExtension(score.Record.ImgName, null)!.Replace('/', '_').Replace('\\', '_');
        return $"{kind}_{rank + 1:00}_{name}.png";
    }

    private static string FileName(string kind, int rank, Case item) => FileName(kind, rank, item.Score);

    private void Draw(Case item, string path)
    {
        var (image, truth) = item.Record.Decode();
        var foreground = PredictionScorer.Foreground(truth.Pixels, _maskThreshold);
        var binary = new GrayImage(truth.Width, truth.Height, foreground.Select(f => f ? (byte)255 : (byte)0).ToArray());
        // An image-only model has no prompt text to show.
        string? prompt = item.Score.PromptKey.Length == 0 && item.Score.Prompt.Length == 0 ? null : item.Score.Prompt;
        ImageCodec.SavePng(path, Overlay.Captioned(image, item.Prediction, binary, prompt, item.Score.Dice, item.Score.IoU));
    }
}
