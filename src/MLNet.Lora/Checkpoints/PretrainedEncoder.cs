using System.Security.Cryptography;
using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// A loaded pretrained encoder: the model, its tokenizer and its identity. The factories in this class load one
/// from the embedded default, a Hugging Face folder or an ONNX export. Whoever loads it owns it and disposes it.
/// </summary>
/// <example>
/// <code>
/// using var encoder = PretrainedEncoder.LoadDefault();
/// Console.WriteLine(encoder.Identity.Name);   // all-MiniLM-L6-v2
/// </code>
/// </example>
public sealed partial class PretrainedEncoder : IDisposable
{
    /// <summary>Wraps an encoder already in memory.</summary>
    public PretrainedEncoder(BertModel model, BertTextTokenizer tokenizer, EncoderIdentity identity)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Identity = identity ?? throw new ArgumentNullException(nameof(identity));
    }

    /// <summary>The encoder network.</summary>
    public BertModel Model { get; }

    /// <summary>The matching tokenizer.</summary>
    public BertTextTokenizer Tokenizer { get; }

    /// <summary>Name, weight hash and source.</summary>
    public EncoderIdentity Identity { get; }

    /// <summary>The encoder's configuration.</summary>
    public BertConfig Config => Model.Config;

    /// <summary>Number of parameters (weights) of the encoder.</summary>
    public long ParameterCount => Model.parameters().Sum(p => p.numel());

    /// <summary>
    /// SHA-256 of the weights: each parameter's name and shape, then its float32 bytes, in name order.
    /// It identifies the weights whatever file format they came from.
    /// </summary>
    public static string ComputeWeightsSha256(nn.Module model)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, parameter) in model.named_parameters().OrderBy(p => p.name, StringComparer.Ordinal))
        {
            using var scope = NewDisposeScope();
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{name}:{string.Join(',', parameter.shape)};"));
            Tensor cpu = parameter.detach().to(float32).cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Disposes the model.</summary>
    public void Dispose() => Model.Dispose();
}
