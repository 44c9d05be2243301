using MLNet.Lora.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Adapters;

public class LoraInjectorTests
{
    [Fact]
    public void InjectsIntoQueryAndValueOfEveryLayerWithHuggingFaceNames()
    {
        using var encoder = TinyEncoders.Create(layers: 3);
        var adapted = LoraInjector.Inject(encoder.Model, new LoraConfig { Rank = 2 });

        adapted.Keys.Should().BeEquivalentTo(Enumerable.Range(0, 3).SelectMany(i => new[]
        {
            $"encoder.layer.{i}.attention.self.query", $"encoder.layer.{i}.attention.self.value",
        }));
        var names = encoder.Model.named_parameters().Select(p => p.name).ToList();
        names.Should().Contain("encoder.layer.0.attention.self.query.base_layer.weight");
        names.Should().Contain("encoder.layer.2.attention.self.value.lora_A.default.weight");
        names.Should().Contain("encoder.layer.1.attention.self.key.weight", "key is not targeted");
    }

    [Fact]
    public void FreshAdaptersLeaveTheEncoderOutputUnchanged()
    {
        using var encoder = TinyEncoders.Create();
        encoder.Model.eval();
        using var scope = NewDisposeScope();
        var batch = encoder.Tokenizer.EncodeBatch(["the movie was good", "a bad plot"]);
        var before = encoder.Model.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).LastHiddenState;

        LoraInjector.Inject(encoder.Model, new LoraConfig { Rank = 4, TargetModules = LoraTargetModules.All });
        var after = encoder.Model.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).LastHiddenState;
        after.Identical(before).Should().BeTrue();
    }

    [Fact]
    public void OnlyAdapterWeightsStayTrainable()
    {
        using var encoder = TinyEncoders.Create();
        LoraInjector.Inject(encoder.Model, new LoraConfig { Rank = 2, TargetModules = LoraTargetModules.AllAttention });
        LoraInjector.MarkOnlyAdaptersTrainable(encoder.Model);

        var trainable = encoder.Model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        trainable.Should().NotBeEmpty().And.OnlyContain(n => n.Contains(".lora_A.") || n.Contains(".lora_B."));
        trainable.Should().HaveCount(2 * 4 * 2);   // layers x modules x (A, B)
    }

    [Fact]
    public void AdapterStateRoundTripsAndRejectsMismatches()
    {
        using var source = TinyEncoders.Create();
        LoraInjector.Inject(source.Model, new LoraConfig { Rank = 2 });
        foreach (var (_, layer) in LoraInjector.FindLoraLayers(source.Model))
            using (no_grad()) layer.LoraB("default").normal_();

        using var target = TinyEncoders.Create();
        LoraInjector.Inject(target.Model, new LoraConfig { Rank = 2 });
        var state = LoraInjector.AdapterState(source.Model);
        LoraInjector.LoadAdapterState(target.Model, state);
        foreach (var (key, tensor) in LoraInjector.AdapterState(target.Model))
            tensor.Identical(state[key]).Should().BeTrue(key);

        using var other = TinyEncoders.Create();
        LoraInjector.Inject(other.Model, new LoraConfig { Rank = 2, TargetModules = LoraTargetModules.Query });
        var act = () => LoraInjector.LoadAdapterState(other.Model, state);
        act.Should().Throw<InvalidDataException>().WithMessage("*value.lora_A.weight*no matching layer*");
    }

    [Fact]
    public void MergingAllLayersMatchesUnmergedOutputs()
    {
        using var encoder = TinyEncoders.Create();
        encoder.Model.eval();
        LoraInjector.Inject(encoder.Model, new LoraConfig { Rank = 4, TargetModules = LoraTargetModules.All });
        foreach (var (_, layer) in LoraInjector.FindLoraLayers(encoder.Model))
            using (no_grad()) layer.LoraB("default").normal_(0, 0.1);

        using var scope = NewDisposeScope();
        var batch = encoder.Tokenizer.EncodeBatch(["the movie was good", "a bad plot and poor acting"]);
        var unmerged = encoder.Model.forward(batch.InputIds, batch.AttentionMask).LastHiddenState;
        LoraInjector.Merge(encoder.Model);
        var merged = encoder.Model.forward(batch.InputIds, batch.AttentionMask).LastHiddenState;
        (merged - unmerged).abs().max().item<float>().Should().BeLessThan(1e-5f);
        LoraInjector.Unmerge(encoder.Model);
    }
}
