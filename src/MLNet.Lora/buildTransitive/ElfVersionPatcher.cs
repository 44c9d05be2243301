#nullable enable
// Compiled twice: by MSBuild's RoslynCodeTaskFactory inside MLNet.Lora.targets (so it must stay a
// single self-contained file with no dependencies beyond the BCL) and into the library itself
// (MLNET_LORA_LIBRARY), whose run-time loader patches a copy where no build step ran (notebooks).
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

// The library's copy lives in another namespace so that it never clashes with the test project's copy.
#if MLNET_LORA_LIBRARY
namespace MLNet.Lora.Native
#else
namespace MLNet.Lora.Build
#endif
{
    /// <summary>
    /// Marks selected symbol-version requirements of an ELF64 shared library as weak
    /// (<c>vna_flags |= VER_FLG_WEAK</c> in <c>.gnu.version_r</c>), so that the dynamic loader accepts
    /// a system library that lacks that version. Safe only for versions whose symbols are never called
    /// through a relocation: libLibTorchSharp.so needs GLIBCXX_3.4.32 for one such symbol alone.
    /// </summary>
#if MLNET_LORA_LIBRARY
    internal
#else
    public
#endif
    static class ElfVersionPatcher
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlagWeak = 0x2;

        /// <summary>What <see cref="MarkWeak"/> did.</summary>
        public enum Outcome { Patched, AlreadyWeak, NotRequired }

        /// <summary>
        /// Marks <paramref name="version"/> weak in <paramref name="path"/>. The file is rewritten through a
        /// temporary file and a rename, which also breaks any hard link into a package cache.
        /// </summary>
        public static Outcome MarkWeak(string path, string version)
        {
            byte[] elf = File.ReadAllBytes(path);
            var flagOffsets = FindRequirementFlags(elf, version, path);
            if (flagOffsets.Count == 0) return Outcome.NotRequired;

            bool changed = false;
            foreach (int offset in flagOffsets)
            {
                ushort flags = BitConverter.ToUInt16(elf, offset);
                if ((flags & VerFlagWeak) != 0) continue;
                BitConverter.GetBytes((ushort)(flags | VerFlagWeak)).CopyTo(elf, offset);
                changed = true;
            }
            if (!changed) return Outcome.AlreadyWeak;

            // Keep the timestamp so that MSBuild's incremental copy sees the file as unchanged next time.
            DateTime stamp = File.GetLastWriteTimeUtc(path);
            string temp = path + ".weak-" + Guid.NewGuid().ToString("N") + ".tmp";
            File.WriteAllBytes(temp, elf);
            File.Replace(temp, path, null);
            File.SetLastWriteTimeUtc(path, stamp);
            return Outcome.Patched;
        }

        /// <summary>Whether a library file (say, the system's libstdc++) defines the given version string.</summary>
        public static bool DefinesVersion(string libraryPath, string version)
        {
            // Version names sit NUL-terminated in .dynstr; a plain text search over the file is enough.
            string text = Encoding.ASCII.GetString(File.ReadAllBytes(libraryPath));
            return text.Contains("\0" + version + "\0");
        }

        /// <summary>File offsets of the <c>vna_flags</c> fields of every requirement named <paramref name="version"/>.</summary>
        public static List<int> FindRequirementFlags(byte[] elf, string version, string nameForErrors)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException($"'{nameForErrors}' is not an ELF file.");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException($"'{nameForErrors}' is not a little-endian 64-bit ELF file.");

            long sectionTable = (long)BitConverter.ToUInt64(elf, 0x28);
            int entrySize = BitConverter.ToUInt16(elf, 0x3A);
            int count = BitConverter.ToUInt16(elf, 0x3C);
            var found = new List<int>();

            for (int s = 0; s < count; s++)
            {
                int header = checked((int)(sectionTable + (long)s * entrySize));
                if (BitConverter.ToUInt32(elf, header + 4) != ShtGnuVerneed) continue;

                int offset = checked((int)BitConverter.ToUInt64(elf, header + 0x18));
                int link = (int)BitConverter.ToUInt32(elf, header + 0x28);        // section of the string table
                int needCount = (int)BitConverter.ToUInt32(elf, header + 0x2C);   // number of Verneed entries
                int stringsHeader = checked((int)(sectionTable + (long)link * entrySize));
                int strings = checked((int)BitConverter.ToUInt64(elf, stringsHeader + 0x18));

                int need = offset;
                for (int n = 0; n < needCount; n++)
                {
                    int auxCount = BitConverter.ToUInt16(elf, need + 2);
                    int aux = need + (int)BitConverter.ToUInt32(elf, need + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        int name = strings + (int)BitConverter.ToUInt32(elf, aux + 8);
                        if (ReadCString(elf, name) == version) found.Add(aux + 4);
                        aux += (int)BitConverter.ToUInt32(elf, aux + 12);
                    }
                    need += (int)BitConverter.ToUInt32(elf, need + 12);
                }
            }
            return found;
        }

        /// <summary>The machine's libstdc++, looked up where Linux distributions put it, or null.</summary>
        public static string? FindSystemLibStdCxx()
        {
            string[] folders =
            {
                "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib",
            };
            foreach (string folder in folders)
            {
                string candidate = Path.Combine(folder, "libstdc++.so.6");
                if (File.Exists(candidate)) return candidate;
            }
            return null;
        }

        private static string ReadCString(byte[] bytes, int start)
        {
            int end = Array.IndexOf(bytes, (byte)0, start);
            return Encoding.ASCII.GetString(bytes, start, end - start);
        }
    }
}

#if !MLNET_LORA_TESTS && !MLNET_LORA_LIBRARY
namespace MLNet.Lora.Build
{
    using Microsoft.Build.Framework;
    using Microsoft.Build.Utilities;

    /// <summary>
    /// MSBuild task: when the machine's libstdc++ lacks <see cref="Version"/>, marks that requirement weak
    /// in each of <see cref="Libraries"/> (copies in a build or publish output, never the package cache).
    /// </summary>
    public class MarkElfVersionWeak : Task
    {
        [Required] public ITaskItem[] Libraries { get; set; } = Array.Empty<ITaskItem>();

        [Required] public string Version { get; set; } = "";

        public override bool Execute()
        {
            string? system = ElfVersionPatcher.FindSystemLibStdCxx();
            if (system == null)
            {
                Log.LogMessage(MessageImportance.Low, "MLNet.Lora: no system libstdc++.so.6 found; native libraries left as they are.");
                return true;
            }
            if (ElfVersionPatcher.DefinesVersion(system, Version))
            {
                Log.LogMessage(MessageImportance.Low, $"MLNet.Lora: {system} defines {Version}; native libraries left as they are.");
                return true;
            }
            foreach (ITaskItem item in Libraries)
            {
                string path = item.GetMetadata("FullPath");
                var outcome = ElfVersionPatcher.MarkWeak(path, Version);
                if (outcome == ElfVersionPatcher.Outcome.Patched)
                    Log.LogMessage(MessageImportance.High, $"MLNet.Lora: {system} lacks {Version}; marked that requirement weak in {path} so that it loads.");
                else
                    Log.LogMessage(MessageImportance.Normal, $"MLNet.Lora: {path}: {Version} requirement {(outcome == ElfVersionPatcher.Outcome.AlreadyWeak ? "already weak" : "not present")}.");
            }
            return !Log.HasLoggedErrors;
        }
    }
}
#endif
