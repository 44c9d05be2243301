namespace MLNet.Lora.Forgetting;

/// <summary>Gradient-conflict statistics of one module kind, as reported by <see cref="GradientConflictTally"/>.</summary>
/// <param name="ModuleKind">The module kind the cosines were recorded under (for instance "query", "value", "ffn").</param>
/// <param name="Count">Number of recorded cosines.</param>
/// <param name="MeanCosine">Mean of the recorded cosines, in [−1, 1].</param>
/// <param name="ConflictRate">Share of recorded cosines that are strictly negative, in [0, 1].</param>
public sealed record GradientConflictSummary(string ModuleKind, int Count, double MeanCosine, double ConflictRate);
