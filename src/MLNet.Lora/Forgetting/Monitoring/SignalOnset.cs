namespace MLNet.Lora.Forgetting;

/// <summary>The first epoch at which one timeline signal crossed its threshold.</summary>
/// <param name="Signal">"retention", "attention", "representation" or "sharpness".</param>
/// <param name="IsInternal">True for signals inside the model, false for the external retention accuracy.</param>
/// <param name="Threshold">The threshold used.</param>
/// <param name="FirstEpoch">First epoch at or above the threshold; null when it never crossed (or was not measured).</param>
/// <param name="Direction">For sharpness: "sharper" or "flatter" at the onset; otherwise null.</param>
public sealed record SignalOnset(string Signal, bool IsInternal, double Threshold, int? FirstEpoch, string? Direction = null);
