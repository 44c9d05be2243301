using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// The state after a sequence's first task, shared by the methods that train it alike. Every option that limits
/// forgetting starts with the second task, and the seeds of the first task do not depend on the method, so methods of
/// one kind (<see cref="KindOf"/>) reach the same weights, head and first accuracy row: the first that gets there
/// stores them and the others start from a copy, which gives bit-identical results for a fraction of the work.
/// </summary>
internal sealed class FirstStepCache : IDisposable
{
    private readonly Dictionary<int, State> states = [];

    /// <summary>
    /// Methods of one kind train the first task alike and read the untrained tasks alike: full fine-tuning; an adapter
    /// that later tasks continue from (shared, O-LoRA); a fresh adapter per task over the base (per task, merged).
    /// </summary>
    public static int KindOf(SequenceStrategy strategy) => strategy switch
    {
        SequenceStrategy.FullFineTuning => 0,
        SequenceStrategy.SharedAdapter or SequenceStrategy.OrthogonalAdapters => 1,
        _ => 2,
    };

    public State? Find(SequenceStrategy strategy) => states.GetValueOrDefault(KindOf(strategy));

    /// <summary>Stores the state after the first task (the encoder's weights without adapters, the adapter's factors, the head, the first row).</summary>
    public void Add(SequenceStrategy strategy, string method, BertModel encoder, string? adapter, TextClassificationModel first, bool[][] correct,
        long trainedParameters, double trainingSeconds, double seconds)
    {
        if (states.ContainsKey(KindOf(strategy))) return;
        using var noGrad = no_grad();
        BertModel plain;
        using (encoder.ActivateAdapter(null)) plain = LoraInjector.MergeAndUnload(encoder);
        var factors = adapter is null ? null
            : LoraInjector.Adapters(encoder, adapter).ToDictionary(f => f.Path, f => (f.A.detach().clone().DetachFromDisposeScope(), f.B.detach().clone().DetachFromDisposeScope()), StringComparer.Ordinal);
        states[KindOf(strategy)] = new State(method, plain, factors, first.Classifier.weight!.detach().clone().DetachFromDisposeScope(),
            first.Classifier.bias!.detach().clone().DetachFromDisposeScope(), correct.Select(c => c.ToArray()).ToArray(), trainedParameters, trainingSeconds, seconds);
    }

    public void Dispose()
    {
        foreach (var state in states.Values) state.Dispose();
        states.Clear();
    }

    /// <param name="Method">The method that trained it.</param>
    /// <param name="Encoder">The encoder's weights after the first task, adapters excluded.</param>
    /// <param name="Adapter">The first adapter's factors by layer path; null for full fine-tuning.</param>
    /// <param name="HeadWeight">The first task's head.</param>
    /// <param name="HeadBias">The first task's head's bias.</param>
    /// <param name="Correct">The first accuracy row, row by row.</param>
    /// <param name="TrainedParameters">Encoder parameters that trained.</param>
    /// <param name="TrainingSeconds">What the first task's training took.</param>
    /// <param name="Seconds">What the first task took with its measurements, so that a method that reuses it reports its time as if it ran alone.</param>
    internal sealed record State(string Method, BertModel Encoder, Dictionary<string, (Tensor A, Tensor B)>? Adapter, Tensor HeadWeight, Tensor HeadBias,
        bool[][] Correct, long TrainedParameters, double TrainingSeconds, double Seconds) : IDisposable
    {
        public void Dispose()
        {
            Encoder.Dispose();
            if (Adapter is not null) foreach (var (a, b) in Adapter.Values) { a.Dispose(); b.Dispose(); }
            HeadWeight.Dispose();
            HeadBias.Dispose();
        }
    }
}
