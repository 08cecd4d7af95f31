using System.Globalization;

namespace Vlsm.IO;

/// <summary>
/// An exclusive operating-system lock on an output folder (a run, an evaluation, a prediction, a
/// sweep cell) for as long as one process writes it. The lock is taken on <c>FOLDER/.vlsm.lock</c>
/// (a <see cref="FileStream"/> opened with <see cref="FileShare.None"/>: <c>flock(LOCK_EX)</c> on
/// Linux and macOS, a share-mode lock on Windows), so the system drops it when its holder exits,
/// crashes or is killed. The holder's PID and command are written to <c>FOLDER/.vlsm.owner</c> so
/// that a second process can say who holds the folder (the locked file itself cannot be read while it is held).
/// The lock file is never deleted: deleting a lock file lets two processes lock two different files of one name.
/// </summary>
public sealed class FolderLock : IDisposable
{
    public const string LockFileName = ".vlsm.lock";
    public const string OwnerFileName = ".vlsm.owner";

    private FileStream? stream;

    private FolderLock(string folder, FileStream stream)
    {
        Folder = folder;
        this.stream = stream;
    }

    /// <summary>The locked folder (full path).</summary>
    public string Folder { get; }

    /// <summary>
    /// Takes the folder's lock (creating the folder, and checking first that it can be written, so a
    /// read-only or full disk is reported as such rather than as a lock failure), or throws naming the
    /// process that holds it.
    /// </summary>
    /// <param name="what">What this process does there, for the holder record and messages ("train", "eval", ...).</param>
    /// <param name="flag">The option that named the folder, for messages (e.g. <c>--out</c>).</param>
    /// <exception cref="VlsmException">The folder cannot be written, or another live process holds it; the message names its PID.</exception>
    public static FolderLock Acquire(string folder, string what, string flag = "output folder")
    {
        OutputFolder.EnsureWritable(folder, flag);
        var held = TryAcquire(folder, what);
        if (held is not null) return held;
        throw new VlsmException(InUseMessage(Path.GetFullPath(folder)));
    }

    /// <summary>Takes the folder's lock (creating the folder), or returns null when another process (or another handle of this one) holds it.</summary>
    public static FolderLock? TryAcquire(string folder, string what)
    {
        string full = Path.GetFullPath(folder);
        OutputFolder.RefuseFileOnPath(full, "output folder");
        Directory.CreateDirectory(full);
        FileStream stream;
        try
        {
            stream = new FileStream(Path.Combine(full, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(Path.Combine(full, LockFileName)))
        {
            return null;
        }
        var held = new FolderLock(full, stream);
        try
        {
            RemoveStaleTemporaries(full);
            string owner = string.Create(CultureInfo.InvariantCulture,
                $"pid: {Environment.ProcessId}\nhost: {Environment.MachineName}\ncommand: {what}\nstarted: {DateTimeOffset.UtcNow:O}\n");
            AtomicFile.WriteAllText(Path.Combine(full, OwnerFileName), owner);
            // The same record in the locked file, for tools that read it after the holder is gone.
            stream.SetLength(0);
            stream.Write(System.Text.Encoding.UTF8.GetBytes(owner));
            stream.Flush();
        }
        catch
        {
            held.Dispose();
            throw;
        }
        return held;
    }

    /// <summary>
    /// Removes hidden temporary files (<see cref="AtomicFile"/>'s <c>.NAME.GUID.tmp</c>) and staging folders
    /// (<see cref="AtomicFolder"/>'s, beside the folder) that a killed process left: only those last written
    /// before this process started, and files only when no process has them open exclusively (a writer does).
    /// Called with the folder's lock held, so no other vlsm process writes there.
    /// </summary>
    private static void RemoveStaleTemporaries(string folder)
    {
        string full = Path.GetFullPath(folder);
        var started = System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime();
        bool Stale(FileSystemInfo info) => AtomicFile.IsTemporaryName(info.Name) && info.LastWriteTimeUtc < started;
        try
        {
            foreach (var file in new DirectoryInfo(full).EnumerateFiles(".*.tmp", SearchOption.AllDirectories).Where(Stale).ToList())
            {
                try
                {
                    using (new FileStream(file.FullName, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) { }
                    file.Delete();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Open in another process, or not ours to delete: left alone.
                }
            }
            var parent = new DirectoryInfo(full).Parent;
            var staging = new DirectoryInfo(full).EnumerateDirectories(".*.tmp", SearchOption.AllDirectories)
                .Concat(parent?.EnumerateDirectories($".{Path.GetFileName(full)}.*.tmp") ?? [])
                .Where(Stale).ToList();
            foreach (var dir in staging)
            {
                try
                {
                    dir.Delete(recursive: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Left alone.
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // An unreadable folder: nothing to clean that we could clean.
        }
    }

    /// <summary>Whether another process (or another handle of this one) holds the folder's lock now.</summary>
    public static bool IsHeld(string folder)
    {
        string full = Path.GetFullPath(folder);
        if (!File.Exists(Path.Combine(full, LockFileName))) return false;
        try
        {
            using var probe = new FileStream(Path.Combine(full, LockFileName), FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The PID the holder recorded, when the owner record is readable.</summary>
    public static int? HolderPid(string folder)
    {
        string path = Path.Combine(Path.GetFullPath(folder), OwnerFileName);
        try
        {
            foreach (var line in File.ReadLines(path))
                if (line.StartsWith("pid: ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(5), NumberStyles.Integer, CultureInfo.InvariantCulture, out int pid))
                    return pid;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No record (yet): the holder is named as unknown.
        }
        return null;
    }

    /// <summary>Throws, naming the holder, when another process holds the folder's lock.</summary>
    public static void ThrowIfHeld(string folder)
    {
        string full = Path.GetFullPath(folder);
        if (IsHeld(full)) throw new VlsmException(InUseMessage(full));
    }

    private static string InUseMessage(string full)
    {
        // The holder writes its record right after locking; give it a moment when the record is missing or from a dead holder.
        int? pid = null;
        for (int attempt = 0; attempt < 20; attempt++)
        {
            pid = HolderPid(full);
            if (pid is { } p && Alive(p)) break;
            Thread.Sleep(50);
        }
        string command = "";
        try
        {
            command = File.ReadLines(Path.Combine(full, OwnerFileName)).FirstOrDefault(l => l.StartsWith("command: ", StringComparison.Ordinal))?["command: ".Length..] ?? "";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The command is a courtesy; the PID is the point.
        }
        string who = pid is { } id ? $"process {id}{(command.Length > 0 ? $" (vlsm {command})" : "")}" : "another process";
        return $"{full} is in use by {who}, which holds its lock ({Path.Combine(full, LockFileName)}); wait for it to finish, stop it, or give another folder.";
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Releases the lock (the owner record goes first, so a record always belongs to a live holder or none).</summary>
    public void Dispose()
    {
        if (stream is null) return;
        try
        {
            File.Delete(Path.Combine(Folder, OwnerFileName));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A folder removed under us, or read-only: the lock is still released below.
        }
        stream.Dispose();
        stream = null;
    }
}
