using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Models;

/// <summary>
/// A fingerprint of a model folder's base weights themselves, not only their shapes: SHA-256 over
/// every tensor of <c>model.safetensors</c> (name, dtype, shape and bytes, in ordinal key order).
/// Trained-weights files record it under <see cref="MetadataKey"/>, so an adapter is not applied
/// silently to another checkpoint of the same shape. Hashing a large model takes seconds, so the
/// value is cached beside the model (<see cref="CacheFile"/>, keyed by the weights file's size and
/// modification time, written atomically; skipped when the folder is read-only: no write permission bit) and in the process.
/// </summary>
public static class BaseWeights
{
    /// <summary>The metadata key of trained-weights files that holds the base's fingerprint.</summary>
    public const string MetadataKey = "base_weights";

    /// <summary>The weights file of a model folder (every family's).</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>The cache beside the weights.</summary>
    public const string CacheFile = "model.safetensors.fingerprint.json";

    private const string Prefix = "sha256:";

    private static readonly ConcurrentDictionary<(string Path, long Size, long Ticks), string> Memo = new();

    /// <summary>
    /// The fingerprint of <paramref name="modelDir"/>'s base weights ("sha256:" and 64 hex digits), or
    /// null when the folder has no <c>model.safetensors</c> (nothing to fingerprint).
    /// </summary>
    /// <exception cref="VlsmException">The weights file cannot be read or is not a safetensors file.</exception>
    public static string? Fingerprint(string modelDir)
    {
        string path = Path.GetFullPath(Path.Combine(modelDir, WeightsFile));
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        var key = (path, info.Length, info.LastWriteTimeUtc.Ticks);
        if (Memo.TryGetValue(key, out var known)) return known;
        string cache = Path.Combine(Path.GetDirectoryName(path)!, CacheFile);
        string? value = ReadCache(cache, key.Length, key.Ticks);
        if (value is null)
        {
            value = Compute(path);
            WriteCache(cache, key.Length, key.Ticks, value);
        }
        Memo[key] = value;
        return value;
    }

    /// <summary>The fingerprint a trained-weights file records, or null for a file written before it was recorded (or by the Python reference).</summary>
    public static string? Recorded(SafetensorsFile weights) =>
        weights.Metadata.TryGetValue(MetadataKey, out var value) && value.Length > 0 ? value : null;

    /// <summary>Adds <paramref name="modelDir"/>'s fingerprint to the metadata of a trained-weights file being written.</summary>
    public static void Record(IDictionary<string, string> metadata, string modelDir)
    {
        if (Fingerprint(modelDir) is { } value) metadata[MetadataKey] = value;
    }

    /// <summary>How messages show a fingerprint: the algorithm and its first 16 hex digits.</summary>
    public static string Short(string fingerprint) =>
        fingerprint.StartsWith(Prefix, StringComparison.Ordinal) && fingerprint.Length > Prefix.Length + 16 ? fingerprint[..(Prefix.Length + 16)] : fingerprint;

    /// <summary>
    /// Checks that <paramref name="weightsFile"/> was trained on <paramref name="modelDir"/>'s base weights.
    /// Returns a one-line note when the check cannot be made (the file records no fingerprint) or is
    /// overridden, else null.
    /// </summary>
    /// <param name="allowOther">Apply the weights to another base of the same shape, with a note instead of an error.</param>
    /// <exception cref="VlsmException">The file records another base's fingerprint and <paramref name="allowOther"/> is false.</exception>
    public static string? Check(string weightsFile, string modelDir, bool allowOther)
    {
        string? recorded;
        using (var file = SafetensorsFile.Open(weightsFile)) recorded = Recorded(file);
        if (recorded is null)
            return $"note: {weightsFile} records no base-weights fingerprint (written before vlsm recorded one, or by another tool), so it is applied to {modelDir} unchecked.";
        var actual = Fingerprint(modelDir);
        if (actual is null || actual == recorded) return null;
        string what = $"{weightsFile} was trained on base weights {Short(recorded)}, but {Path.Combine(modelDir, WeightsFile)} is {Short(actual)}";
        if (allowOther) return $"note: {what}; applied anyway (--allow-other-base).";
        throw new VlsmException($"{what}: another checkpoint of the same shape. Give --model the folder it was trained on, or --allow-other-base to apply it to this one anyway.");
    }

    /// <summary>SHA-256 over every tensor in ordinal name order: name, dtype, shape, then the stored bytes.</summary>
    internal static string Compute(string path)
    {
        using var file = SafetensorsFile.Open(path); // validates the header and every entry's extent
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        long dataStart = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var name in file.Names.Order(StringComparer.Ordinal))
        {
            var entry = file.Entry(name);
            string head = $"{name}\0{entry.Dtype}\0{string.Join(",", entry.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))}\0";
            hash.AppendData(Encoding.UTF8.GetBytes(head));
            stream.Position = dataStart + entry.Begin;
            for (long left = entry.End - entry.Begin; left > 0;)
            {
                int n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                if (n == 0) throw new VlsmException($"{path}: ends inside tensor \"{name}\"; the file is truncated.");
                hash.AppendData(buffer, 0, n);
                left -= n;
            }
        }
        return Prefix + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static string? ReadCache(string cache, long size, long ticks)
    {
        try
        {
            if (!File.Exists(cache)) return null;
            var o = JsonNode.Parse(File.ReadAllText(cache)) as JsonObject;
            if (o?["size"]?.GetValue<long>() != size || o["mtime_ticks"]?.GetValue<long>() != ticks) return null;
            var value = o[MetadataKey]?.GetValue<string>();
            return value is not null && value.StartsWith(Prefix, StringComparison.Ordinal) && value.Length == Prefix.Length + 64 ? value : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            return null; // an unreadable cache is recomputed
        }
    }

    private static void WriteCache(string cache, long size, long ticks, string value)
    {
        var o = new JsonObject
        {
            ["file"] = WeightsFile,
            ["size"] = size,
            ["mtime_ticks"] = ticks,
            [MetadataKey] = value,
        };
        string dir = Path.GetDirectoryName(cache)!;
        // A folder marked read-only (no write bit; root could still write) is left as it is.
        const UnixFileMode anyWrite = UnixFileMode.UserWrite | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(dir) & anyWrite) == 0) return;
        try
        {
            AtomicFile.WriteAllText(cache, o.ToJsonString() + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only model folder: the fingerprint is recomputed by the next process instead.
        }
    }
}
