using System.Security.Cryptography;
using System.Text.Json;
using Vlsm.Data;
using Vlsm.IO;

namespace Vlsm.Training;

/// <summary>One dataset of a run as it was when the run started: its folder, record counts of the splits it trains and validates on, and a hash of its annotation files.</summary>
public sealed record DatasetIdentity(string Root, IReadOnlyDictionary<string, int> Records, string AnnotationsSha256);

/// <summary>
/// What a run trained on, written to <c>RUN/data.json</c> when the run starts and compared on every
/// resume: a dataset edited, re-split or replaced by another folder of the same name is refused by
/// name (unless the user allows it), instead of training on silently.
/// </summary>
public sealed record DataIdentity(IReadOnlyList<DatasetIdentity> Datasets)
{
    public const string FileName = "data.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Counts the records of <paramref name="splits"/> in each dataset and hashes its split files and dataset.yaml.</summary>
    public static DataIdentity Of(PooledDataset data, IEnumerable<string> splits)
    {
        var names = splits.Distinct(StringComparer.Ordinal).ToList();
        return new DataIdentity(data.Datasets.Select(d => new DatasetIdentity(
            d.Root,
            names.ToDictionary(s => s, s => d.Records(s).Count, StringComparer.Ordinal),
            AnnotationsHash(d))).ToList());
    }

    /// <summary>SHA-256 over every split file (name and bytes, in split order) and dataset.yaml, when present.</summary>
    private static string AnnotationsHash(MedvlsmDataset dataset)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = dataset.Splits.Select(dataset.SplitFile).OfType<string>().Append(Path.Combine(dataset.Root, DatasetConfig.FileName));
        foreach (var file in files)
        {
            if (!File.Exists(file)) continue;
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetRelativePath(dataset.Root, file) + "\n"));
            hash.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public void Write(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json) + "\n");

    /// <summary>The identity a run recorded, or null when it has none (a run from an older vlsm).</summary>
    public static DataIdentity? Read(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<DataIdentity>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{path}: not a data identity record ({e.Message}); delete it to record the data as it is now.", e);
        }
    }

    /// <summary>How <paramref name="now"/> differs from this (the recorded identity), one phrase per difference; empty when they agree.</summary>
    public IReadOnlyList<string> Differences(DataIdentity now)
    {
        var differences = new List<string>();
        if (Datasets.Count != now.Datasets.Count)
        {
            differences.Add($"the run trained on {Datasets.Count} dataset(s), now {now.Datasets.Count} are given");
            return differences;
        }
        for (int i = 0; i < Datasets.Count; i++)
        {
            var (was, isNow) = (Datasets[i], now.Datasets[i]);
            if (was.Root != isNow.Root) differences.Add($"dataset {i + 1} was {was.Root}, now {isNow.Root}");
            foreach (var (split, count) in was.Records)
            {
                int current = isNow.Records.GetValueOrDefault(split, -1);
                if (current != count) differences.Add($"{isNow.Root}: split \"{split}\" had {count} records, now {(current < 0 ? "none" : current.ToString(System.Globalization.CultureInfo.InvariantCulture))}");
            }
            if (was.AnnotationsSha256 != isNow.AnnotationsSha256) differences.Add($"{isNow.Root}: the annotation files (anns/*.json, dataset.yaml) changed");
        }
        return differences;
    }
}
