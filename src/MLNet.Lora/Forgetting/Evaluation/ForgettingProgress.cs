namespace MLNet.Lora.Forgetting;

/// <summary>A progress message from the forgetting tools.</summary>
/// <param name="Stage">What is running: "retention", "drift", "sharpness", "gradients", "similarity", "sequence", "monitor".</param>
/// <param name="Message">A readable line.</param>
public sealed record ForgettingProgress(string Stage, string Message)
{
    /// <inheritdoc/>
    public override string ToString() => $"[{Stage}] {Message}";
}
