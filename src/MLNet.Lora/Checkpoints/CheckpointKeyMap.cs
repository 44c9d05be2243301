using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// The tensors a model expects, by name and shape (read from a freshly built model's parameters and buffers), and a
/// defensive copy of a checkpoint's tensors into that model. Every expected tensor must be in the checkpoint with the
/// expected shape; the errors name the tensor and the file. Tensors the model does not use (a task head, a
/// <c>position_ids</c> buffer) are ignored.
/// </summary>
/// <remarks>
/// A checkpoint key matches an expected name when it is the same name, the name with a <c>bert.</c> prefix (as saved
/// by Hugging Face's task models such as <c>BertForMaskedLM</c>), or, for LayerNorm, the old <c>gamma</c>/<c>beta</c>
/// spelling of <c>weight</c>/<c>bias</c>.
/// </remarks>
/// <example>
/// <code>
/// using var model = new BertModel(config);
/// CheckpointKeyMap.For(model).CopyInto(model, tensors, "model.safetensors");
/// </code>
/// </example>
internal sealed class CheckpointKeyMap
{
    private static readonly string[] Prefixes = ["", "bert."];

    private readonly List<KeyValuePair<string, long[]>> expected;

    private CheckpointKeyMap(List<KeyValuePair<string, long[]>> expected) => this.expected = expected;

    /// <summary>The expected tensors, in the model's order: name and shape.</summary>
    public IReadOnlyList<KeyValuePair<string, long[]>> Expected => expected;

    /// <summary>Reads the expected names and shapes from <paramref name="model"/>'s parameters and buffers.</summary>
    public static CheckpointKeyMap For(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var names = new List<KeyValuePair<string, long[]>>();
        foreach (var (name, parameter) in model.named_parameters()) names.Add(new(name, parameter.shape));
        foreach (var (name, buffer) in model.named_buffers()) names.Add(new(name, buffer.shape));
        return new CheckpointKeyMap(names);
    }

    /// <summary>
    /// The key under which <paramref name="keys"/> holds the expected tensor <paramref name="name"/>, or null.
    /// </summary>
    public static string? FindKey(IReadOnlyCollection<string> keys, string name)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var set = keys as ISet<string> ?? new HashSet<string>(keys, StringComparer.Ordinal);
        foreach (string candidate in Spellings(name))
        {
            foreach (string prefix in Prefixes)
            {
                if (set.Contains(prefix + candidate)) return prefix + candidate;
            }
        }
        return null;
    }

    /// <summary>
    /// Checks that <paramref name="tensors"/> holds every expected tensor with the expected shape, then copies them into
    /// <paramref name="model"/> (converted to the parameter's dtype, without recording gradients). Nothing is copied
    /// when a check fails.
    /// </summary>
    /// <param name="model">The model to fill; it must have the names and shapes this map was built from.</param>
    /// <param name="tensors">The checkpoint's tensors by name.</param>
    /// <param name="file">The checkpoint's file, named in errors.</param>
    /// <exception cref="InvalidDataException">A tensor is missing, has another shape or is not floating point.</exception>
    public void CopyInto(nn.Module model, IReadOnlyDictionary<string, Tensor> tensors, string file)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tensors);
        var sources = Resolve(tensors, file);

        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, parameter) in model.named_parameters()) targets[name] = parameter;
        foreach (var (name, buffer) in model.named_buffers()) targets[name] = buffer;

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, shape) in expected)
        {
            if (!targets.TryGetValue(name, out Tensor? target) || !target.shape.SequenceEqual(shape))
                throw new ArgumentException($"The model does not have {name} with shape {Format(shape)}; build the key map from this model.", nameof(model));
            // copy_ converts float16/float64 checkpoints to the parameter's dtype and device in place.
            target.copy_(sources[name]);
        }
    }

    /// <summary>Finds each expected tensor in <paramref name="tensors"/>; throws naming the first missing or mis-shaped one.</summary>
    private Dictionary<string, Tensor> Resolve(IReadOnlyDictionary<string, Tensor> tensors, string file)
    {
        var keys = new HashSet<string>(tensors.Keys, StringComparer.Ordinal);
        var found = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var (name, _) in expected)
        {
            if (FindKey(keys, name) is { } key) found[name] = tensors[key];
            else missing.Add(name);
        }
        if (missing.Count > 0)
        {
            string more = missing.Count == 1 ? "" : $" (and {missing.Count - 1} more: {string.Join(", ", missing.Skip(1).Take(5))}{(missing.Count > 6 ? ", ..." : "")})";
            throw new InvalidDataException(
                $"{missing[0]} is missing from '{file}'{more}. The file must hold every weight of a BERT-family encoder " +
                "of the configured shape (names as in Hugging Face's BertModel, optionally prefixed with 'bert.').");
        }
        foreach (var (name, shape) in expected)
        {
            Tensor source = found[name];
            if (!source.shape.SequenceEqual(shape))
                throw new InvalidDataException(
                    $"{name} has shape {Format(source.shape)} in '{file}' but the model expects {Format(shape)}. " +
                    "The weights do not match the configuration (hidden_size, vocab_size, intermediate_size, ...).");
            if (!source.is_floating_point())
                throw new InvalidDataException($"{name} has element type {source.dtype} in '{file}' but the model expects floating-point weights.");
        }
        return found;
    }

    /// <summary>The spellings of a name in checkpoints: itself, then LayerNorm's old gamma/beta.</summary>
    private static IEnumerable<string> Spellings(string name)
    {
        yield return name;
        if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) yield return name[..^"weight".Length] + "gamma";
        if (name.EndsWith("LayerNorm.bias", StringComparison.Ordinal)) yield return name[..^"bias".Length] + "beta";
    }

    /// <summary>Formats a shape as <c>[384, 384]</c>.</summary>
    internal static string Format(long[] shape) => $"[{string.Join(", ", shape)}]";
}
