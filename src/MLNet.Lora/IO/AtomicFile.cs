using System.Collections.Concurrent;

namespace MLNet.Lora.IO;

/// <summary>
/// Writes files so that readers never see half of one: into a temporary file beside the target (same folder, hence same
/// volume, so the rename is atomic), flushed to disk, then renamed over it. A failure leaves the old file as it was.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Temporary files this process is writing now; stale ones of other (killed) writers are deleted.</summary>
    private static readonly ConcurrentDictionary<string, byte> InProgress = new(StringComparer.Ordinal);

    public static void WriteAllText(string path, string text) =>
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), leaveOpen: true);
            writer.Write(text);
        }, createFolder: true);

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, stream => stream.Write(bytes), createFolder: true);

    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/>. Refuses a read-only target (the rename would
    /// replace it regardless of its mode) and names the user's path, never the hidden temporary file, in errors.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="write">Writes the content.</param>
    /// <param name="createFolder">Create a missing folder; when false a missing folder is an error.</param>
    public static void Write(string path, Action<Stream> write, bool createFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        if (createFolder) Directory.CreateDirectory(folder);
        else if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot write '{path}': folder '{folder}' does not exist.");
        if (Directory.Exists(full)) throw new IOException($"Cannot write '{path}': it is a folder.");
        if (File.Exists(full) && IsReadOnly(full))
            throw new UnauthorizedAccessException($"Cannot write '{path}': the file is read-only. Make it writable or choose another path.");

        string prefix = $".{Path.GetFileName(full)}.";
        DeleteStale(folder, prefix);
        string temporary = Path.Combine(folder, $"{prefix}{Guid.NewGuid():N}.tmp");
        InProgress[temporary] = 0;
        try
        {
            FileStream file;
            try
            {
                file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                string message = $"Cannot write '{path}': no file can be created in folder '{folder}' ({e.GetType().Name}). Check its permissions and free space, or choose another folder.";
                throw e is UnauthorizedAccessException ? new UnauthorizedAccessException(message, e) : new IOException(message, e);
            }
            using (file)
            {
                write(file);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            InProgress.TryRemove(temporary, out _);
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    private static bool IsReadOnly(string path) => OperatingSystem.IsWindows()
        ? File.GetAttributes(path).HasFlag(FileAttributes.ReadOnly)
        : (File.GetUnixFileMode(path) & (UnixFileMode.UserWrite | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) == 0;

    /// <summary>A temporary file untouched this long belongs to a writer that died: a live one keeps writing to it.</summary>
    internal static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(2);

    /// <summary>Deletes temporary files of this target left by writers that died (a killed process never reaches its finally).</summary>
    private static void DeleteStale(string folder, string prefix)
    {
        foreach (string stale in Directory.EnumerateFiles(folder, prefix + "*.tmp"))
        {
            if (InProgress.ContainsKey(stale) || DateTime.UtcNow - File.GetLastWriteTimeUtc(stale) < StaleAfter) continue;
            try
            {
                File.Delete(stale);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another process may be writing it right now; it cleans up after itself.
            }
        }
    }
}
