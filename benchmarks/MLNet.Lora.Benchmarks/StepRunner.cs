using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>A model set up as the trainer sets it up, in training mode, with its loop and optimizer: one step at a time.</summary>
internal sealed class StepRunner : IDisposable
{
    private readonly FineTuningLoop loop;

    /// <param name="w">The workload whose encoder the model adapts.</param>
    /// <param name="mode">Which weights train.</param>
    /// <param name="attentionDropout">The trainer's <c>AttentionDropout</c>: null keeps the checkpoint's.</param>
    /// <param name="checkpointing">The trainer's <c>GradientCheckpointing</c>.</param>
    /// <param name="copy">Adapt a copy of the encoder (true) or the loaded one itself, as a Fit that loads its own does.</param>
    /// <param name="controls">Replay and penalties for the model as built (the runner owns them).</param>
    public StepRunner(Workload w, FineTuningMode mode, double? attentionDropout = null, bool checkpointing = false, bool copy = true,
        Func<TextClassificationModel, RetentionControls>? controls = null)
    {
        Model = w.Build(mode, copy: copy, attentionDropout: attentionDropout);
        Model.Encoder.GradientCheckpointing = checkpointing;
        Controls = controls?.Invoke(Model);
        loop = w.Loop(Model, mode, Controls);
        (Optimizer, Trainable) = loop.CreateOptimizer();
        Model.train();
    }

    public TextClassificationModel Model { get; }

    public OptimizerHelper Optimizer { get; }

    public List<Parameter> Trainable { get; }

    public long TrainableCount => Trainable.Sum(p => p.numel());

    public RetentionControls? Controls { get; }

    /// <summary>One optimizer step, exactly as <c>Fit</c> takes it.</summary>
    public void Step(TokenBatch batch, Tensor labels) => loop.TrainStep(batch, labels, Optimizer, Trainable);

    /// <summary>One optimizer step on rows of <paramref name="data"/>, with the runner's replay and penalties, as <c>Fit</c> takes it.</summary>
    public void Step(LabeledTexts data, int[] indices) => loop.TrainStep(data, indices, Optimizer, Trainable);

    public void Dispose()
    {
        Controls?.Dispose();
        Optimizer.Dispose();
        Model.Dispose();
    }
}
