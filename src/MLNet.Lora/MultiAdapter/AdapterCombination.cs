namespace MLNet.Lora;

/// <summary>How <see cref="LoraAdapterSet.Combine"/> combines adapters, layer by layer (ΔW = scaling·B·A of each part).</summary>
public enum AdapterCombination
{
    /// <summary>Σ weightᵢ·ΔWᵢ, factored again by truncated SVD to the sum of the parts' ranks (or the rank asked for).</summary>
    Linear,

    /// <summary>The parts' factors stacked: A = [A₁; A₂; …], B = [w₁s₁B₁, w₂s₂B₂, …]; exactly Σ weightᵢ·ΔWᵢ, at the sum of the ranks.</summary>
    Concatenate,

    /// <summary>
    /// TIES-merging (Yadav et al. 2023): each ΔWᵢ trimmed to its largest-magnitude entries (the density), weighted, the
    /// sign of each entry elected by the sum, and the entries that agree with it averaged; then factored as <see cref="Linear"/>.
    /// </summary>
    Ties,
}
