using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Adapters;

/// <summary>The one adapter state, found by structure, serves training, merging and the saved keys.</summary>
public class AdapterStateTests
{
    private static TextClassificationModel Model(LoraConfig config)
    {
        var encoder = TinyEncoders.Create();
        LoraInjector.Inject(encoder.Model, config);
        using (no_grad())
            foreach (var factors in LoraInjector.Adapters(encoder.Model)) factors.B.normal_(0, 0.2);   // a trained-looking adapter
        return new TextClassificationModel(encoder.Model, 3, PoolingStrategy.Mean);
    }

    [Fact]
    public void AdaptersAreEveryAdaptedLayersFactorsInModuleOrder()
    {
        using var model = Model(new LoraConfig { Rank = 2, TargetModules = LoraTargetModules.Query | LoraTargetModules.Output });
        var adapters = LoraInjector.Adapters(model.Encoder);
        adapters.Select(f => f.Path).Should().Equal(
            "encoder.layer.0.attention.self.query", "encoder.layer.0.output.dense", "encoder.layer.1.attention.self.query", "encoder.layer.1.output.dense");
        adapters.Should().OnlyContain(f => ReferenceEquals(f.A, f.Layer.LoraA("default")) && ReferenceEquals(f.B, f.Layer.LoraB("default")));
        LoraInjector.Adapters(model.Encoder, "other").Should().BeEmpty();
    }

    [Fact]
    public void LoraPlusAndWeightDecayGroupsFollowStructure()
    {
        using var model = Model(new LoraConfig { Rank = 2 });
        FineTuningLoop.PrepareParameters(model, FineTuningMode.Lora);
        var settings = new FineTuningSettings { LearningRate = 1e-3, LoraPlusLearningRateRatio = 16, WeightDecay = 0.01 };
        var loop = new FineTuningLoop(model, TinyEncoders.Tokenizer(), settings, CPU);
        var (optimizer, _) = loop.CreateOptimizer();
        using var _ = optimizer;
        var groups = optimizer.ParamGroups.Cast<AdamW.ParamGroup>().ToList();
        var factors = LoraInjector.Adapters(model.Encoder);

        groups.Should().HaveCount(3);
        groups[0].Parameters.Should().BeEquivalentTo(factors.Select(f => f.A).Append(model.Classifier.weight!), o => o.WithStrictOrdering().ComparingByValue<Parameter>());
        (groups[0].LearningRate, groups[0].Options.weight_decay).Should().Be((1e-3, 0.01));
        groups[1].Parameters.Should().ContainSingle().Which.Should().BeSameAs(model.Classifier.bias, "vectors get no decay");
        groups[1].Options.weight_decay.Should().Be(0);
        groups[2].Parameters.Should().HaveCount(factors.Count).And.OnlyContain(p => factors.Any(f => ReferenceEquals(f.B, p)));
        groups[2].LearningRate.Should().BeApproximately(16e-3, 1e-15);
    }

    [Fact]
    public void MergeAndUnloadGivesAPlainEncoderThatComputesTheSame()
    {
        using var model = Model(new LoraConfig { Rank = 4, Alpha = 8, TargetModules = LoraTargetModules.All });
        model.eval();
        using var merged = LoraInjector.MergeAndUnload(model.Encoder);
        merged.named_modules().Should().NotContain(m => m.module is LoraLinear);
        merged.named_parameters().Select(p => p.name).Should().NotContain(n => n.Contains("base_layer"));

        using var scope = NewDisposeScope();
        using var __ = no_grad();
        var batch = TinyEncoders.Tokenizer().EncodeBatch(["the movie was very good", "a bad plot"]);
        var adapted = model.Encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        var plain = merged.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        plain.LastHiddenState.MaxAbsDiff(adapted.LastHiddenState).Should().BeLessThan(1e-5);
        plain.PooledOutput!.MaxAbsDiff(adapted.PooledOutput!).Should().BeLessThan(1e-5);
        LoraInjector.SetActiveAdapter(model.Encoder, null);
        var bare = model.Encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        bare.LastHiddenState.MaxAbsDiff(plain.LastHiddenState).Should().BeGreaterThan(1e-3, "the adapter matters, and the source is left as it was");
    }

    [Theory]
    [InlineData(FineTuningMode.Lora)]
    [InlineData(FineTuningMode.HeadOnly)]
    [InlineData(FineTuningMode.Full)]
    public void TrainedWeightsAreWhatTheModeTrains(FineTuningMode mode)
    {
        using var model = Model(new LoraConfig { Rank = 2 });
        FineTuningLoop.PrepareParameters(model, mode);
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var trained = model.TrainedWeights(mode);
        trained.Keys.Should().BeEquivalentTo(trainable.Select(p => p.name));
        trained.Values.Should().OnlyContain(t => trainable.Any(p => ReferenceEquals(p.parameter, t)));
    }
}
