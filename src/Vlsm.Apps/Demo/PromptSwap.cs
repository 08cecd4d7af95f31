using Vlsm.Data;
using Vlsm.Data.Prompts;

namespace Vlsm.Apps.Demo;

/// <summary>
/// The prompt-swap test set: every record of a split whose image has other objects, given the
/// prompts of the next object of the same image (in file order, wrapping around) while keeping
/// its own mask. A model that reads the prompt segments the other object and scores a low Dice
/// here; one that ignores the text segments the same thing as for the true prompt.
/// </summary>
public static class PromptSwap
{
    /// <summary>Writes <c>anns/{to}.json</c> next to <c>anns/{from}.json</c>; returns the number of records written.</summary>
    /// <exception cref="VlsmException">The split has no image with two or more objects.</exception>
    public static int WriteSplit(string datasetRoot, string from, string to)
    {
        var dataset = MedvlsmDataset.Open(datasetRoot);
        var records = dataset.ReadAnnotations(from, required: true, out var file);
        var swapped = Swap(records);
        if (swapped.Count == 0)
            throw new VlsmException($"{file}: no image has two or more objects, so no prompt can be swapped; generate more scenes.");
        AnnotationFile.Write(Path.Combine(Path.GetDirectoryName(file!)!, to + ".json"), swapped, PromptTemplates.ListKeys);
        return swapped.Count;
    }

    public static IReadOnlyList<AnnotationRecord> Swap(IReadOnlyList<AnnotationRecord> records)
    {
        var byImage = records.GroupBy(r => r.ImgName, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var result = new List<AnnotationRecord>();
        foreach (var record in records)
        {
            var siblings = byImage[record.ImgName];
            if (siblings.Count < 2) continue;
            var next = siblings[(siblings.IndexOf(record) + 1) % siblings.Count];
            result.Add(record with { Prompts = next.Prompts });
        }
        return result;
    }
}
