using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace MLNet.Lora.Cli;

/// <summary>
/// A model file as the commands use it: the LoRA transformer inside, the label mapping in front of it (when the model
/// was saved with one, as <c>train</c> and sweeps save it), and the class names.
/// </summary>
internal sealed class SavedModel : IDisposable
{
    private SavedModel(string path, ITransformer model, LoraTextClassificationTransformer lora, ITransformer? labelMapper, DataViewSchema inputSchema)
    {
        Path = path;
        Model = model;
        Lora = lora;
        LabelMapper = labelMapper;
        InputSchema = inputSchema;
    }

    public string Path { get; }

    public ITransformer Model { get; }

    public LoraTextClassificationTransformer Lora { get; }

    /// <summary>The <c>MapValueToKey</c> of the label in front of the LoRA transformer, or null.</summary>
    public ITransformer? LabelMapper { get; }

    public DataViewSchema InputSchema { get; }

    /// <summary>The class names in key order (the label values the model was trained on).</summary>
    public IReadOnlyList<string> Classes => Lora.Settings.Classes?.Values
        ?? Enumerable.Range(1, Lora.Settings.ClassCount).Select(k => $"class{k}").ToArray();

    public static SavedModel Load(MLContext ml, string path)
    {
        if (!File.Exists(path)) throw new CliException($"The model file '{path}' (--model) does not exist.");
        var model = ml.Model.LoadWithAdapters(path, out var schema);
        var parts = model is IEnumerable<ITransformer> chain ? chain.ToList() : [model];
        int index = parts.FindIndex(p => p is LoraTextClassificationTransformer);
        if (index < 0)
            throw new CliException($"'{path}' holds no LoRA text classifier ({string.Join(", ", parts.Select(p => p.GetType().Name))}).");
        var mapper = index > 0 && parts[index - 1] is ValueToKeyMappingTransformer ? parts[index - 1] : null;
        return new SavedModel(path, model, (LoraTextClassificationTransformer)parts[index], mapper, schema);
    }

    public void Dispose() => Lora.Dispose();
}
