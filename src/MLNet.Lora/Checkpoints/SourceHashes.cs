using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// SHA-256 of source files, remembered for the process while the file's length and write time stay the same, so that
/// loading the same ONNX export again finds its cache entry without hashing it again.
/// </summary>
internal static class SourceHashes
{
    private static readonly ConcurrentDictionary<(string Path, long Length, DateTime WriteTime), string> Files = new();

    /// <summary>Lower-case hex SHA-256 of a file's bytes.</summary>
    public static string OfFile(string path)
    {
        var info = new FileInfo(Path.GetFullPath(path));
        if (!info.Exists) throw new FileNotFoundException($"'{path}' does not exist.", path);
        var key = (info.FullName, info.Length, info.LastWriteTimeUtc);
        if (Files.TryGetValue(key, out string? known)) return known;
        using var stream = CheckpointFiles.OpenRead(info.FullName);
        return Files[key] = OfStream(stream);
    }

    /// <summary>Lower-case hex SHA-256 of a stream's remaining bytes.</summary>
    public static string OfStream(Stream stream) => Convert.ToHexStringLower(SHA256.HashData(stream));

    /// <summary>Lower-case hex SHA-256 of a string's UTF-8 bytes.</summary>
    public static string OfText(string text) => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
}
