using MLNet.Lora.Checkpoints;
using MLNet.Lora.Integration;

namespace Microsoft.ML;

/// <summary>
/// Saving and loading pipelines that contain LoRA transformers: ML.NET's serializer for the standard transforms,
/// and for each LoRA transformer only what was trained (adapters and head), its settings and its base encoder's identity.
/// </summary>
public static class LoraModelOperations
{
    /// <summary>
    /// Saves <paramref name="model"/> (a chain or a single transformer) to one zip file, atomically. A LoRA model of rank 8
    /// on query and value over the default encoder takes well under 1% of the base model's size.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="model">The fitted model.</param>
    /// <param name="inputSchema">The schema of the data the model takes (for example <c>trainData.Schema</c>).</param>
    /// <param name="filePath">The zip file to write.</param>
    public static void SaveWithAdapters(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string filePath)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        AdapterModelArchive.Save(catalog, model, inputSchema, filePath);
    }

    /// <summary>
    /// Loads a model saved with <see cref="SaveWithAdapters"/>. Each LoRA transformer's base encoder is resolved from
    /// <paramref name="baseEncoder"/> when given, else from the cache or the source recorded at save time; loading fails
    /// with a clear message when it is missing or its weights' SHA-256 differs from the one recorded.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="filePath">The zip file.</param>
    /// <param name="inputSchema">The schema of the data the model takes.</param>
    /// <param name="baseEncoder">The base encoder, when it cannot be found from the recorded source; its weights are shared, never changed.</param>
    /// <param name="cacheDirectory">Folder of converted encoders; default the per-user cache.</param>
    public static ITransformer LoadWithAdapters(this ModelOperationsCatalog catalog, string filePath, out DataViewSchema inputSchema,
        PretrainedEncoder? baseEncoder = null, string? cacheDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return AdapterModelArchive.Load(catalog, filePath, out inputSchema, baseEncoder, cacheDirectory);
    }
}
