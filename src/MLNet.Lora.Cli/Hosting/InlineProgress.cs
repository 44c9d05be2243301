namespace MLNet.Lora.Cli;

/// <summary>Reports on the calling thread (unlike <c>Progress&lt;T&gt;</c>, which posts to the thread pool), so lines arrive in order.</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
