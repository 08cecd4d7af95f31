using Vlsm.Data.Prompts;
using Vlsm.Imaging;

namespace Vlsm.Data.Synthetic;

/// <summary>
/// Writes synthetic scenes in the medvlsm layout: <c>images/NAME.png</c>, one mask per object
/// <c>masks/NAME_objK.png</c> (or <c>masks/NAME.png</c> when every scene has one object), and
/// <c>anns/{train,val,test}.json</c> with one record per object, split by image so all objects
/// of a scene land in the same split. Same options and seed → byte-identical files.
/// </summary>
public static class SyntheticDataset
{
    /// <exception cref="VlsmException">Bad options, or <paramref name="outDir"/> already holds a dataset.</exception>
    public static SynthSummary Generate(string outDir, SynthOptions options, Action<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(outDir);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (File.Exists(outDir)) throw new VlsmException($"--out {outDir} is a file; give a folder (it is created if missing).");
        foreach (var sub in new[] { "images", "masks", "anns" })
        {
            string dir = Path.Combine(outDir, sub);
            // Refuse rather than mix: files left from a larger or different run would pair with the new ones.
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
                throw new VlsmException($"{dir} already has files; give an empty or new --out folder (or delete the old dataset first).");
        }

        var ratios = options.Split ?? SplitRatios.TrainValTest70_15_15;
        var splits = DatasetSplit.Assign(options.Scenes, ratios, options.Seed);
        var records = DatasetSplit.Names.ToDictionary(n => n, _ => new List<AnnotationRecord>());
        var imageCounts = DatasetSplit.Names.ToDictionary(n => n, _ => 0);
        string imageDir = Path.Combine(outDir, "images"), maskDir = Path.Combine(outDir, "masks");
        Directory.CreateDirectory(imageDir);
        Directory.CreateDirectory(maskDir);
        bool singleObject = options.MaxObjects == 1;
        var sceneRecords = new AnnotationRecord[options.Scenes][];
        var progressLock = new object();
        // Scenes are independent (each has its own seeded stream) and each writes only its own
        // files, so rendering and writing them concurrently changes no byte of the output; it
        // overlaps the per-file flush-to-disk waits, which otherwise dominate the run time.
        ForEachScene(options.Scenes, index =>
        {
            var scene = SyntheticScenes.Render(options, index);
            string imageName = scene.Name + ".png";
            ImageCodec.SavePng(Path.Combine(imageDir, imageName), scene.Image);
            var mine = new AnnotationRecord[scene.Objects.Count];
            for (int k = 0; k < scene.Objects.Count; k++)
            {
                var obj = scene.Objects[k];
                string maskName = singleObject ? imageName : $"{scene.Name}_obj{k + 1}.png";
                ImageCodec.SavePng(Path.Combine(maskDir, maskName), obj.Mask.ToGray());
                mine[k] = new AnnotationRecord(imageName, maskName, obj.Prompts);
            }
            sceneRecords[index] = mine;
            if (progress is not null)
                lock (progressLock) progress(1);
        });
        int total = 0;
        for (int index = 0; index < options.Scenes; index++)
        {
            records[splits[index]].AddRange(sceneRecords[index]);
            imageCounts[splits[index]]++;
            total += sceneRecords[index].Length;
        }
        foreach (var name in DatasetSplit.Names)
            AnnotationFile.Write(Path.Combine(outDir, "anns", name + ".json"), records[name], PromptTemplates.ListKeys);
        var perSplit = DatasetSplit.Names.ToDictionary(n => n, n => (imageCounts[n], records[n].Count));
        return new SynthSummary(outDir, options.Scenes, total, perSplit);
    }

    /// <summary>Runs the scenes on a few threads; a failure surfaces as its own exception (e.g. a VlsmException for a full disk), not an AggregateException.</summary>
    private static void ForEachScene(int count, Action<int> body)
    {
        try
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, body);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(
                e.InnerExceptions.FirstOrDefault(x => x is VlsmException) ?? e.InnerExceptions[0]).Throw();
        }
    }
}
