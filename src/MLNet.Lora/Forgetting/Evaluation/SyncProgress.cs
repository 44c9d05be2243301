namespace MLNet.Lora.Forgetting;

/// <summary>Reports on the calling thread, in order (unlike <see cref="Progress{T}"/>, which posts asynchronously).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
