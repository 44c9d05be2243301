using MLNet.Lora.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Adapters;

public class ActivateAdapterTests
{
    [Fact]
    public void AScopeActivatesAnAdapterAndGivesEachLayerItsOwnBack()
    {
        using var encoder = TinyEncoders.Create();
        var model = encoder.Model;
        var config = new LoraConfig { Rank = 2, TargetModules = LoraTargetModules.Query | LoraTargetModules.Value };
        LoraInjector.Inject(model, config, "a");
        LoraInjector.Inject(model, config, "b");
        LoraInjector.SetActiveAdapter(model, "a");
        var layers = LoraInjector.FindLoraLayers(model);

        using (model.ActivateAdapter("b"))
        {
            layers.Should().OnlyContain(l => l.Layer.ActiveAdapter == "b");
            using (model.ActivateAdapter(null)) layers.Should().OnlyContain(l => l.Layer.ActiveAdapter == null);
            layers.Should().OnlyContain(l => l.Layer.ActiveAdapter == "b");
        }
        layers.Should().OnlyContain(l => l.Layer.ActiveAdapter == "a");

        var unknown = () => model.ActivateAdapter("c");
        unknown.Should().Throw<KeyNotFoundException>().WithMessage("*'c'*");
    }
}
