using Microsoft.ML;

namespace MLNet.Lora.Sweeps;

/// <summary>A trial's result together with its fitted model (which the caller owns and disposes).</summary>
public sealed class FittedTrial : IDisposable
{
    internal FittedTrial(LoraSweepTrial trial, ITransformer? model, LoraTextClassificationTransformer? lora)
    {
        Trial = trial;
        Model = model;
        LoraTransformer = lora;
    }

    /// <summary>Settings and scores.</summary>
    public LoraSweepTrial Trial { get; internal set; }

    /// <summary>
    /// The fitted chain: the label's key mapping when the sweep added one, the LoRA transformer, and the predicted label
    /// mapped back to the label's values. Null when the trial failed. Save it with <c>mlContext.Model.SaveWithAdapters</c>.
    /// </summary>
    public ITransformer? Model { get; }

    /// <summary>The LoRA transformer inside <see cref="Model"/>; null when the trial failed.</summary>
    public LoraTextClassificationTransformer? LoraTransformer { get; }

    /// <summary>Disposes the model's network.</summary>
    public void Dispose() => LoraTransformer?.Dispose();
}
