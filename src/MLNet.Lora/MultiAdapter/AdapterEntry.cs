using MLNet.Lora.Integration;
using TorchSharp.Modules;

namespace MLNet.Lora.MultiAdapter;

/// <summary>
/// One adapter of a <see cref="LoraAdapterSet"/>: where it comes from, its settings, and, while loaded, its key in the
/// shared network and its head. The set's lock guards every mutable field.
/// </summary>
internal sealed class AdapterEntry(string name, string? path, string key, LoraModelSettings settings, long bytes)
{
    /// <summary>The user's name for it.</summary>
    public string Name { get; } = name;

    /// <summary>The file or folder it reloads from after eviction; null for a combined adapter (never evicted).</summary>
    public string? Path { get; } = path;

    /// <summary>The adapter's name inside the network's LoRA layers (unique for the set's life, so that a name reused after
    /// <see cref="LoraAdapterSet.Remove"/> never meets the weights of the adapter it replaced).</summary>
    public string Key { get; } = key;

    public LoraModelSettings Settings { get; } = settings;

    /// <summary>Bytes of its factors and head.</summary>
    public long Bytes { get; } = bytes;

    /// <summary>The label value of each class, in the head's order.</summary>
    public string[] Labels { get; } = settings.Classes?.Values ?? Enumerable.Range(1, settings.ClassCount).Select(k => k.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>The head while loaded.</summary>
    public Linear? Head { get; set; }

    public bool Loaded => Head is not null;

    /// <summary>Batches using it now: it cannot be evicted or freed.</summary>
    public int Pins { get; set; }

    /// <summary>Open cursors that may still use it (each holds a snapshot of the set).</summary>
    public int Cursors { get; set; }

    /// <summary>Removed from the set; freed once no cursor or batch uses it.</summary>
    public bool Removed { get; set; }

    /// <summary>The set's clock at its last use, for least-recently-used eviction.</summary>
    public long LastUse { get; set; }
}
