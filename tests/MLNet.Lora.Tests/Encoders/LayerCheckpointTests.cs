using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Encoders;

public class LayerCheckpointTests
{
    private sealed record Pass(Tensor Output, Dictionary<string, Tensor> Gradients, float NextDraw);

    /// <summary>One training forward and backward of a 3-layer tiny encoder with every dropout on (and large enough for the fast masks).</summary>
    private static Pass Run(bool checkpoint, bool lora)
    {
        torch.random.manual_seed(3);
        using var model = new BertModel(TinyEncoders.Config(layers: 3));
        if (lora)
        {
            LoraInjector.Inject(model, new LoraConfig { Rank = 2, Dropout = 0.1 });
            LoraInjector.MarkOnlyAdaptersTrainable(model);
            using var _ = no_grad();
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.Contains(".lora_B."))) p.normal_(0, 0.1);   // B ≠ 0: A gets gradients too
        }
        model.GradientCheckpointing = checkpoint;
        model.train();

        var generator = new Generator(5);
        var ids = randint(5, 49, [4, 40], generator: generator);
        var mask = ones(4, 40, dtype: int64);
        mask.narrow(0, 3, 1).narrow(1, 25, 15).fill_(0);   // one padded row
        var weights = randn([4, 40, 32], generator: generator);

        torch.random.manual_seed(11);
        var output = model.forward(ids, mask).LastHiddenState;
        (output * weights).sum().backward();
        float next = rand(1).item<float>();   // where the generator stands after backward
        var gradients = model.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone().DetachFromDisposeScope());
        return new Pass(output.detach().clone(), gradients, next);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void CheckpointedLayersGiveTheSameOutputsAndGradients(bool lora)
    {
        using var scope = NewDisposeScope();
        var plain = Run(checkpoint: false, lora);
        var checkpointed = Run(checkpoint: true, lora);

        checkpointed.Output.allclose(plain.Output, rtol: 1e-5, atol: 1e-6).Should().BeTrue();
        plain.Gradients.Should().NotBeEmpty();
        checkpointed.Gradients.Keys.Should().BeEquivalentTo(plain.Gradients.Keys);
        foreach (var (name, expected) in plain.Gradients)
            checkpointed.Gradients[name].allclose(expected, rtol: 1e-4, atol: 1e-6).Should().BeTrue($"{name}: the recompute replays the same dropout masks");
        if (lora)
            plain.Gradients["encoder.layer.0.attention.self.query.lora_A.default.weight"].abs().sum().item<float>()
                .Should().BePositive("the first layer's input needs no grad, yet its adapters must still get theirs");
        checkpointed.NextDraw.Should().Be(plain.NextDraw, "backward puts the generator back where the forward left it");
        foreach (var g in plain.Gradients.Values.Concat(checkpointed.Gradients.Values)) g.Dispose();
    }

    [Fact]
    public void CheckpointingIsOnlyATrainingMatter()
    {
        using var scope = NewDisposeScope();
        torch.random.manual_seed(2);
        using var model = new BertModel(TinyEncoders.Config());
        var ids = randint(5, 49, [2, 9]);
        var mask = ones(2, 9, dtype: int64);
        model.eval();
        var reference = model.forward(ids, mask).LastHiddenState;
        model.GradientCheckpointing = true;
        model.forward(ids, mask).LastHiddenState.allclose(reference, rtol: 0, atol: 0).Should().BeTrue("evaluation never checkpoints");
        using (no_grad())
        {
            model.train();
            model.forward(ids, mask).LastHiddenState.requires_grad.Should().BeFalse("without autograd there is nothing to recompute");
        }
    }
}
