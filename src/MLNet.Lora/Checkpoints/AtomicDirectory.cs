namespace MLNet.Lora.Checkpoints;

/// <summary>
/// Publishes a folder atomically: its content is written into a temporary folder beside the target (same volume), then
/// renamed into place, so that readers see either no folder or a complete one, even if the writer dies half-way.
/// </summary>
internal static class AtomicDirectory
{
    /// <summary>
    /// Writes a new folder at <paramref name="target"/> with <paramref name="write"/> (given the temporary folder).
    /// Returns false, discarding this writer's copy, when the target appeared meanwhile (another process won the race).
    /// </summary>
    public static bool TryCreate(string target, Action<string> write)
    {
        target = Normalize(target);
        string temporary = WriteBeside(target, write);
        try
        {
            if (Directory.Exists(target)) return false;
            try
            {
                Directory.Move(temporary, target);
                return true;
            }
            catch (IOException) when (Directory.Exists(target))
            {
                return false;
            }
        }
        finally
        {
            DeleteQuietly(temporary);
        }
    }

    /// <summary>
    /// Writes <paramref name="target"/> with <paramref name="write"/>, replacing an existing folder when
    /// <paramref name="overwrite"/> (moved aside, then deleted once the new one is in place).
    /// </summary>
    /// <exception cref="IOException">The target exists, is not empty, and <paramref name="overwrite"/> is false.</exception>
    public static void Replace(string target, bool overwrite, Action<string> write)
    {
        target = Normalize(target);
        if (File.Exists(target)) throw new IOException($"'{target}' is a file, not a folder.");
        if (!overwrite && Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
            throw new IOException($"Folder '{target}' already exists and is not empty; pass overwrite: true to replace it.");

        string temporary = WriteBeside(target, write);
        string? old = null;
        try
        {
            if (Directory.Exists(target))
            {
                old = SiblingName(target, "old");
                Directory.Move(target, old);
            }
            Directory.Move(temporary, target);
        }
        catch
        {
            // Put the previous folder back if the new one could not take its place.
            if (old is not null && !Directory.Exists(target) && Directory.Exists(old)) Directory.Move(old, target);
            throw;
        }
        finally
        {
            DeleteQuietly(temporary);
            if (old is not null && Directory.Exists(target)) DeleteQuietly(old);
        }
    }

    private static string Normalize(string target) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));

    private static string WriteBeside(string target, Action<string> write)
    {
        string parent = Path.GetDirectoryName(Path.GetFullPath(target))
            ?? throw new ArgumentException($"'{target}' has no parent folder.", nameof(target));
        Directory.CreateDirectory(parent);
        string temporary = SiblingName(target, "tmp");
        Directory.CreateDirectory(temporary);
        try
        {
            write(temporary);
            return temporary;
        }
        catch
        {
            DeleteQuietly(temporary);
            throw;
        }
    }

    /// <summary>A hidden sibling name such as <c>.name.tmp-0f3c...</c>.</summary>
    private static string SiblingName(string target, string kind)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{kind}-{Guid.NewGuid():N}");
    }

    private static void DeleteQuietly(string folder)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A leftover hidden temporary folder is harmless; failing the load for it would not be.
        }
    }
}
