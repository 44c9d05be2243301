using Microsoft.ML;
using MLNet.Lora.Forgetting;
using TorchSharp;

namespace MLNet.Lora.Tests.Forgetting;

public class LinearProbeTests
{
    [Fact]
    public void TorchHeadAgreesWithMLNetsScoring()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(11, torch.CPU);
        // Three noisy Gaussian classes in 5 dimensions, shifted and scaled so that standardisation matters.
        var labels = Enumerable.Range(0, 300).Select(i => i % 3).ToArray();
        var centres = torch.tensor(new float[] { 0, 0, 0, 0, 0, 2, -1, 0, 1, 0, -1, 2, 1, 0, 0 }, [3, 5]);
        var x = centres.index_select(0, torch.tensor(labels.Select(l => (long)l).ToArray())) + torch.randn(300, 5, generator: gen) * 1.2f;
        x = x * torch.tensor(new float[] { 1, 10, 0.1f, 5, 1 }) + 3;

        using var probe = LinearProbe.Fit(new MLContext(seed: 1), x[..200], labels[..200], 3, l2Regularization: 1);
        double mlnet = probe.Accuracy(x[200..], labels[200..]);
        var predicted = probe.Logits(x[200..]).argmax(-1).data<long>().ToArray();
        double torchAccuracy = predicted.Zip(labels[200..], (p, l) => p == l ? 1.0 : 0.0).Average();

        mlnet.Should().BeGreaterThan(0.6, "the classes are separable well above chance (1/3)");
        torchAccuracy.Should().Be(mlnet, "the torch head is the same affine map as ML.NET's model");
    }
}
