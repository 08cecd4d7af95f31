#nullable enable
// MSBuild task (compiled by RoslynCodeTaskFactory from Directory.Build.targets).
//
// TorchSharp 0.107.0's libLibTorchSharp.so was linked against a libstdc++ that has
// GLIBCXX_3.4.32, but it needs that version for one symbol only,
// std::ios_base_library_init(), which it references and never calls. Debian 12 ships
// libstdc++ up to GLIBCXX_3.4.30, so the dynamic loader refuses the library outright.
// Marking that version requirement weak (VER_FLG_WEAK in .gnu.version_r) turns the
// loader's hard error into a silent skip, and the library loads and runs.
//
// We patch only the copies in the output folders (never the NuGet cache), only when the
// system libstdc++ lacks the version, and we write a new file and rename it over the copy
// so a hard link back into the cache can never be modified.
using System;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenGlibcxxRequirement : Task
{
    [Required] public ITaskItem[] Libraries { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string Version { get; set; } = "";

    private static readonly string[] LibstdcxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/lib/aarch64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        if (Libraries.Length == 0) return true;
        string? system = LibstdcxxCandidates.FirstOrDefault(File.Exists);
        if (system != null && ContainsCString(File.ReadAllBytes(system), Version))
        {
            Log.LogMessage(MessageImportance.Low, $"{system} provides {Version}; TorchSharp needs no patch.");
            return true;
        }
        foreach (var item in Libraries)
        {
            string path = item.ItemSpec;
            try
            {
                byte[] elf = File.ReadAllBytes(path);
                switch (MarkWeak(elf, Version))
                {
                    case PatchResult.Patched:
                        // File.Copy keeps the mode bits; delete + move replaces the directory
                        // entry instead of writing through a possible hard link.
                        string tmp = path + ".weak-tmp";
                        File.Copy(path, tmp, true);
                        using (var f = new FileStream(tmp, FileMode.Open, FileAccess.Write))
                            f.Write(elf, 0, elf.Length);
                        File.Delete(path);
                        File.Move(tmp, path);
                        Log.LogMessage(MessageImportance.Normal, $"Marked {Version} weak in {path} (system libstdc++ lacks it).");
                        break;
                    case PatchResult.AlreadyWeak:
                        break;
                    case PatchResult.NotReferenced:
                        Log.LogMessage(MessageImportance.Low, $"{path} does not require {Version}.");
                        break;
                }
            }
            catch (Exception e) when (e is IOException || e is InvalidDataException || e is UnauthorizedAccessException)
            {
                Log.LogError($"Could not patch {path}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }

    private enum PatchResult { Patched, AlreadyWeak, NotReferenced }

    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    private static PatchResult MarkWeak(byte[] b, string version)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (b[4] != 2 || b[5] != 1)
            throw new InvalidDataException("only 64-bit little-endian ELF is supported");
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        var result = PatchResult.NotReferenced;
        for (int s = 0; s < shnum; s++)
        {
            int sh = checked((int)shoff + s * shentsize);
            if (BitConverter.ToUInt32(b, sh + 4) != ShtGnuVerneed) continue;
            int offset = checked((int)BitConverter.ToUInt64(b, sh + 0x18));
            int link = (int)BitConverter.ToUInt32(b, sh + 0x28);
            int entries = (int)BitConverter.ToUInt32(b, sh + 0x2C);
            int strtab = checked((int)BitConverter.ToUInt64(b, checked((int)shoff + link * shentsize) + 0x18));
            int vn = offset;
            for (int i = 0; i < entries; i++)
            {
                int count = BitConverter.ToUInt16(b, vn + 2);
                int aux = vn + (int)BitConverter.ToUInt32(b, vn + 8);
                for (int j = 0; j < count; j++)
                {
                    int name = strtab + (int)BitConverter.ToUInt32(b, aux + 8);
                    if (CStringAt(b, name) == version)
                    {
                        ushort flags = BitConverter.ToUInt16(b, aux + 4);
                        if ((flags & VerFlgWeak) != 0)
                        {
                            if (result == PatchResult.NotReferenced) result = PatchResult.AlreadyWeak;
                        }
                        else
                        {
                            BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(b, aux + 4);
                            result = PatchResult.Patched;
                        }
                    }
                    aux += (int)BitConverter.ToUInt32(b, aux + 12);
                }
                vn += (int)BitConverter.ToUInt32(b, vn + 12);
            }
        }
        return result;
    }

    private static string CStringAt(byte[] b, int start)
    {
        int end = Array.IndexOf(b, (byte)0, start);
        return Encoding.ASCII.GetString(b, start, (end < 0 ? b.Length : end) - start);
    }

    private static bool ContainsCString(byte[] haystack, string needle)
    {
        byte[] n = Encoding.ASCII.GetBytes(needle + "\0");
        for (int i = 0; i + n.Length <= haystack.Length; i++)
        {
            if (haystack[i] != n[0]) continue;
            int k = 1;
            while (k < n.Length && haystack[i + k] == n[k]) k++;
            if (k == n.Length) return true;
        }
        return false;
    }
}
