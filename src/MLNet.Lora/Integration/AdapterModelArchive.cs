using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Checkpoints;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MLNet.Lora.Integration;

/// <summary>
/// The zip written by <c>SaveWithAdapters</c>. Entries:
/// <c>mlnet-lora.json</c> (the manifest: the chain's parts in order),
/// <c>input-schema.zip</c> (an empty ML.NET chain that carries the input schema),
/// <c>part-N.zip</c> for a run of standard transforms (ML.NET's own format), and for a LoRA transformer
/// <c>part-N/settings.json</c> and <c>part-N/weights.safetensors</c> (only the trained weights).
/// </summary>
internal static class AdapterModelArchive
{
    private const int FormatVersion = 1;
    private const string ManifestEntry = "mlnet-lora.json";
    private const string InputSchemaEntry = "input-schema.zip";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    private sealed record Manifest(int FormatVersion, List<Part> Parts);

    private sealed record Part(string Kind, string Entry, bool AdaptersMerged = false);

    public static void Save(ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string filePath)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        string fullPath = Path.GetFullPath(filePath);
        string folder = Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Cannot save the model to '{filePath}': folder '{folder}' does not exist.");

        // Write beside the target, then rename: a failure never leaves a half-written model behind.
        string temp = Path.Combine(folder, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = File.Create(temp))
            using (var zip = new ZipArchive(file, ZipArchiveMode.Create))
                Write(catalog, zip, Flatten(model).ToList(), inputSchema);
            File.Move(temp, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static void Write(ModelOperationsCatalog catalog, ZipArchive zip, List<ITransformer> chain, DataViewSchema inputSchema)
    {
        WriteMLNet(catalog, zip, InputSchemaEntry, [], inputSchema);
        var parts = new List<Part>();
        var schema = inputSchema;
        var run = new List<ITransformer>();
        var runSchema = schema;
        void FlushRun()
        {
            if (run.Count == 0) return;
            string entry = $"part-{parts.Count}.zip";
            WriteMLNet(catalog, zip, entry, run, runSchema);
            parts.Add(new Part("mlnet", entry));
            run = [];
        }

        foreach (var transformer in chain)
        {
            if (transformer is LoraTextClassificationTransformer lora)
            {
                FlushRun();
                string prefix = $"part-{parts.Count}/";
                WriteEntry(zip, prefix + "settings.json", s => JsonSerializer.Serialize(s, lora.Settings, Json));
                WriteEntry(zip, prefix + "weights.safetensors", s =>
                {
                    using var scope = NewDisposeScope();
                    var weights = lora.TrainedWeights().ToDictionary(w => w.Key, w => w.Value.detach().cpu());
                    Safetensors.SaveStateDict(s, weights, leaveOpen: true);
                });
                parts.Add(new Part("lora", prefix, lora.AdaptersMerged));
            }
            else
            {
                if (run.Count == 0) runSchema = schema;
                run.Add(transformer);
            }
            schema = transformer.GetOutputSchema(schema);
        }
        FlushRun();
        WriteEntry(zip, ManifestEntry, s => JsonSerializer.Serialize(s, new Manifest(FormatVersion, parts), Json));
    }

    public static ITransformer Load(ModelOperationsCatalog catalog, string filePath, out DataViewSchema inputSchema,
        PretrainedEncoder? baseEncoder, string? cacheDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        if (!File.Exists(filePath)) throw new FileNotFoundException($"Model file '{filePath}' does not exist.", filePath);
        var env = MLContextAccess.EnvironmentOf(catalog);
        using var zip = OpenZip(filePath);
        var manifest = ReadEntry(zip, ManifestEntry, filePath, s => JsonSerializer.Deserialize<Manifest>(s, Json))
            ?? throw new InvalidDataException($"'{filePath}' has an empty manifest.");
        if (manifest.FormatVersion != FormatVersion)
            throw new InvalidDataException($"'{filePath}' is format version {manifest.FormatVersion}; this MLNet.Lora reads version {FormatVersion}.");

        inputSchema = ReadEntry(zip, InputSchemaEntry, filePath, s => { catalog.Load(s, out var schema); return schema; });

        var parts = new List<ITransformer>();
        var cache = cacheDirectory is null ? null : new CheckpointCache(cacheDirectory);
        try
        {
            foreach (var part in manifest.Parts)
            {
                if (part.Kind == "mlnet")
                {
                    parts.AddRange(Flatten(ReadEntry(zip, part.Entry, filePath, s => catalog.Load(s, out _))));
                    continue;
                }
                var settings = ReadEntry(zip, part.Entry + "settings.json", filePath, s => JsonSerializer.Deserialize<LoraModelSettings>(s, Json))
                    ?? throw new InvalidDataException($"'{filePath}': {part.Entry}settings.json is empty.");
                var (encoder, tokenizer) = ResolveBase(settings, baseEncoder, cache, filePath);
                var model = LoraTextClassificationTransformer.BuildModel(encoder, settings);
                var device = MLContextAccess.Device(env);
                model.to(device);
                var transformer = new LoraTextClassificationTransformer(env, model, tokenizer, settings, device);
                parts.Add(transformer);
                ReadEntry(zip, part.Entry + "weights.safetensors", filePath, s =>
                {
                    using var scope = NewDisposeScope();
                    transformer.LoadTrainedWeights(Safetensors.LoadStateDict(s, leaveOpen: true), $"{filePath}:{part.Entry}weights.safetensors");
                    return 0;
                });
                if (part.AdaptersMerged) transformer.MergeAdapters();
            }
        }
        catch
        {
            foreach (var p in parts.OfType<IDisposable>()) p.Dispose();
            throw;
        }
        return new TransformerChain<ITransformer>(parts.ToArray());
    }

    /// <summary>The base encoder for <paramref name="settings"/>: a copy of the one given, or one loaded from the recorded source; its SHA-256 must match.</summary>
    private static (Encoders.BertModel Model, Tokenization.BertTextTokenizer Tokenizer) ResolveBase(
        LoraModelSettings settings, PretrainedEncoder? given, CheckpointCache? cache, string filePath)
    {
        var recorded = settings.BaseEncoder;
        if (given is not null)
        {
            CheckSameBase(recorded, given.Identity, filePath);
            return (given.Model.Clone(), given.Tokenizer);
        }
        PretrainedEncoder loaded;
        try
        {
            loaded = PretrainedEncoder.Load(recorded.Source, cache);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidOperationException(
                $"The base encoder '{recorded.Name}' (SHA-256 {recorded.Sha256}) recorded in '{filePath}' could not be loaded from {recorded.Source}: {e.Message} " +
                "Make it available there, or pass it to LoadWithAdapters(..., baseEncoder: PretrainedEncoder.Load(...)).", e);
        }
        try
        {
            CheckSameBase(recorded, loaded.Identity, filePath);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
        return (loaded.Model, loaded.Tokenizer);
    }

    private static void CheckSameBase(EncoderIdentity recorded, EncoderIdentity actual, string filePath)
    {
        if (!string.Equals(recorded.Sha256, actual.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException(
                $"'{filePath}' was trained on base encoder '{recorded.Name}' with weights SHA-256 {recorded.Sha256}, but the base encoder found " +
                $"('{actual.Name}', from {actual.Source}) has SHA-256 {actual.Sha256}. Adapters only work on the exact base they were trained on.");
    }

    internal static IEnumerable<ITransformer> Flatten(ITransformer model) => model switch
    {
        IEnumerable<ITransformer> chain => chain.SelectMany(Flatten),
        _ => [model],
    };

    private static void WriteMLNet(ModelOperationsCatalog catalog, ZipArchive zip, string entry, List<ITransformer> run, DataViewSchema schema) =>
        WriteEntry(zip, entry, s =>
        {
            // ML.NET's writer needs a seekable stream.
            using var buffer = new MemoryStream();
            catalog.Save(new TransformerChain<ITransformer>(run.ToArray()), schema, buffer);
            buffer.Position = 0;
            buffer.CopyTo(s);
        });

    private static void WriteEntry(ZipArchive zip, string name, Action<Stream> write)
    {
        using var stream = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
        write(stream);
    }

    private static ZipArchive OpenZip(string filePath)
    {
        try
        {
            return ZipFile.OpenRead(filePath);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{filePath}' is not a model saved with SaveWithAdapters (not a zip file).", e);
        }
    }

    private static T ReadEntry<T>(ZipArchive zip, string name, string filePath, Func<Stream, T> read)
    {
        var entry = zip.GetEntry(name)
            ?? throw new InvalidDataException($"'{filePath}' is not a model saved with SaveWithAdapters: entry '{name}' is missing.");
        using var buffer = new MemoryStream();
        using (var stream = entry.Open()) stream.CopyTo(buffer);
        buffer.Position = 0;
        return read(buffer);
    }
}
