using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Alignment of two gradients, for instance of the new task's loss and of a replay or old-task loss over the same
/// parameters: a negative cosine means a step that lowers one loss raises the other to first order.
/// </summary>
/// <remarks>
/// Reference: T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient Surgery for Multi-Task Learning"
/// (PCGrad), NeurIPS 2020, which calls gradients with negative cosine similarity conflicting.
/// </remarks>
internal static class GradientConflict
{
    /// <summary>
    /// Cosine similarity a·b / (‖a‖ ‖b‖) of the two gradients, each taken as the concatenation of its flattened tensors.
    /// </summary>
    /// <param name="a">First gradient, one tensor per parameter.</param>
    /// <param name="b">Second gradient, the same parameters in the same order (tensor i of each must have the same shape).</param>
    /// <returns>A value in [−1, 1]; 0 when either gradient is entirely zero, where the angle is undefined.</returns>
    /// <remarks>Accumulated in float64 without autograd; the tensors are not modified.</remarks>
    /// <exception cref="ArgumentNullException">A list or one of its tensors is null.</exception>
    /// <exception cref="ArgumentException">The lists are empty or differ in length, or paired shapes differ.</exception>
    public static double Cosine(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count == 0) throw new ArgumentException("Expected at least one tensor.", nameof(a));
        if (b.Count != a.Count) throw new ArgumentException($"a has {a.Count} tensors, b has {b.Count}; they must cover the same parameters.", nameof(b));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor? sums = null; // [a·b, a·a, b·b], kept on the device so that only one transfer happens
        for (int i = 0; i < a.Count; i++)
        {
            var ai = a[i] ?? throw new ArgumentNullException(nameof(a), $"Tensor {i} is null.");
            var bi = b[i] ?? throw new ArgumentNullException(nameof(b), $"Tensor {i} is null.");
            if (!ai.shape.SequenceEqual(bi.shape))
                throw new ArgumentException($"Tensor {i}: shape [{string.Join(", ", ai.shape)}] in a but [{string.Join(", ", bi.shape)}] in b.", nameof(b));
            var af = ai.detach().to(ScalarType.Float64).flatten();
            var bf = bi.detach().to(ScalarType.Float64, ai.device).flatten();
            var terms = torch.stack([af.dot(bf), af.dot(af), bf.dot(bf)]);
            sums = sums is null ? terms : sums + terms.to(sums.device);
        }
        var values = sums!.cpu().data<double>().ToArray();
        double dot = values[0], normA2 = values[1], normB2 = values[2];
        if (normA2 == 0 || normB2 == 0) return 0;
        return Math.Clamp(dot / (Math.Sqrt(normA2) * Math.Sqrt(normB2)), -1.0, 1.0);
    }
}
