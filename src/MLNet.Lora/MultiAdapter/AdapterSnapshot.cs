namespace MLNet.Lora.MultiAdapter;

/// <summary>
/// The adapters of a set when a cursor opened, kept alive (even if removed meanwhile) until the cursor is disposed, so
/// that a cursor scores a consistent set.
/// </summary>
internal sealed class AdapterSnapshot(LoraAdapterSet set, IReadOnlyDictionary<string, AdapterEntry> adapters) : IDisposable
{
    private bool disposed;

    public AdapterEntry? Find(string name) => adapters.GetValueOrDefault(name);

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        set.ReleaseSnapshot(adapters.Values);
    }
}
