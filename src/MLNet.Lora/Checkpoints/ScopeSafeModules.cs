using MLNet.Lora.Encoders;
using static TorchSharp.torch;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// Builds models whose weights outlive the dispose scope active on this thread, if any. TorchSharp registers some
/// parameters (the embeddings') in the current scope when a module is built inside one, so that ending the scope
/// would dispose them and silently drop them from the model.
/// </summary>
internal static class ScopeSafeModules
{
    /// <summary>A randomly initialised <see cref="BertModel"/> owned by the caller alone.</summary>
    public static BertModel NewBertModel(BertConfig config)
    {
        var scope = CurrentDisposeScope;
        var model = new BertModel(config);
        if (scope is not null)
        {
            scope.Detach(model.parameters());
            scope.Detach(model.buffers());
        }
        return model;
    }
}
