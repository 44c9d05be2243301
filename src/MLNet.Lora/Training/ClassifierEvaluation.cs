using MLNet.Lora.Tokenization;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Training;

/// <summary>The one way a classification model's accuracy is measured: batched, length-sorted, eval mode, no autograd.</summary>
internal static class ClassifierEvaluation
{
    /// <summary>Accuracy, mean cross-entropy, and per row whether its prediction was right, of <paramref name="model"/> on <paramref name="data"/>.</summary>
    public static (double Accuracy, double Loss, bool[] Correct) Measure(TextClassificationModel model, LabeledTexts data, int padTokenId, Device device, int batchSize)
    {
        bool wasTraining = model.training;
        model.eval();
        using var noGrad = no_grad();
        var correct = new bool[data.Count];
        double totalLoss = 0;
        try
        {
            foreach (var indices in LengthGroupedBatches.Create(data.Items.Select(i => i.Length).ToArray(), batchSize, new Random(0)))
            {
                using var scope = NewDisposeScope();
                var items = indices.Select(i => data.Items[i]).ToArray();
                var labels = tensor(indices.Select(i => (long)data.Labels[i]).ToArray(), device: device);
                Tensor logits = model.forward(TokenBatch.Collate(items, padTokenId, device));
                totalLoss += F.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).item<float>();
                var right = logits.argmax(-1).eq(labels).cpu().data<bool>().ToArray();
                for (int k = 0; k < indices.Length; k++) correct[indices[k]] = right[k];
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return (correct.Count(c => c) / (double)data.Count, totalLoss / data.Count, correct);
    }
}
