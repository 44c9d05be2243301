using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace MLNet.Lora.Encoders;

/// <summary>
/// Gradient checkpointing of one transformer layer (Chen et al. 2016, "Training deep nets with sublinear memory cost";
/// Hugging Face's <c>gradient_checkpointing</c>): the forward pass keeps only the layer's input, and backward runs the
/// layer again with autograd on and back-propagates through that copy. Dropout draws the same masks the second time
/// because the CPU generator's state is restored first. One extra layer forward per step buys the activation memory of
/// one layer instead of all of them.
/// </summary>
/// <remarks>
/// The function's own inputs are the layer input, the attention mask and an empty anchor tensor that requires grad,
/// so that backward reaches it even when the input does not require grad (the first layer of a frozen encoder). The
/// layer's weights are not inputs: the inner backward accumulates their gradients directly, as PyTorch's reentrant
/// checkpoint does.
/// </remarks>
internal sealed class LayerCheckpoint : SingleTensorFunction<LayerCheckpoint>
{
    public override string Name => nameof(LayerCheckpoint);

    /// <summary>The output of <paramref name="layer"/> for <paramref name="hidden"/>, keeping only <paramref name="hidden"/> for backward.</summary>
    public static Tensor Forward(BertLayer layer, Tensor hidden, Tensor additiveMask, Tensor anchor) => apply(layer, hidden, additiveMask, anchor);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var (layer, hidden, mask) = ((BertLayer)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
        ctx.save_for_backward([hidden, mask]);
        ctx.save_data("layer", layer);
        using (var state = get_rng_state()) ctx.save_data("rng", state.data<byte>().ToArray());   // dropout's keys come from here
        return layer.forward(hidden, mask, outputAttentions: false).Hidden;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
    {
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var layer = (BertLayer)ctx.get_data("layer");
        Tensor resume = get_rng_state();
        set_rng_state(tensor((byte[])ctx.get_data("rng")));
        Tensor input = saved[0].detach().requires_grad_(saved[0].requires_grad);
        try
        {
            using var _ = enable_grad();
            Tensor output = layer.forward(input, saved[1], outputAttentions: false).Hidden;
            torch.autograd.backward([output], [gradOutput]);
        }
        finally
        {
            set_rng_state(resume);
        }
        // autograd takes the returned gradient after this method returns: it must outlive this scope.
        Tensor? inputGrad = input.requires_grad ? input.grad?.DetachFromDisposeScope() : null;
        return [null!, inputGrad!, null!, null!];
    }
}
