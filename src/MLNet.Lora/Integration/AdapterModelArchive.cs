using System.IO.Compression;
using System.Security.Cryptography;
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
/// <remarks>
/// Versions: 1, the layout above; 2 adds to the manifest the SHA-256 of every other entry, checked on load, since a zip
/// entry's CRC is not (a flipped bit in the deflated weights otherwise loads as other weights). Every version ever
/// written is read. Every loaded tensor must be finite.
/// </remarks>
internal static class AdapterModelArchive
{
    private const int FormatVersion = 2;
    private const string ManifestEntry = "mlnet-lora.json";
    private const string InputSchemaEntry = "input-schema.zip";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <param name="FormatVersion">The layout's version.</param>
    /// <param name="Parts">The chain's parts, in order.</param>
    /// <param name="Sha256">Version 2 on: SHA-256 (lower-case hex) of every other entry's bytes, by entry name.</param>
    private sealed record Manifest(int FormatVersion, List<Part> Parts, Dictionary<string, string>? Sha256 = null);

    private sealed record Part(string Kind, string Entry, bool AdaptersMerged = false);

    public static void Save(ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string filePath)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        var chain = Flatten(model).ToList();
        // Written beside the target, then renamed: a failure never leaves a half-written model, nor replaces a good one.
        IO.AtomicFile.Write(filePath, file =>
        {
            using var zip = new ZipArchive(file, ZipArchiveMode.Create, leaveOpen: true);
            Write(catalog, zip, chain, inputSchema);
        }, createFolder: false);
    }

    private static void Write(ModelOperationsCatalog catalog, ZipArchive zip, List<ITransformer> chain, DataViewSchema inputSchema)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        void WriteEntry(string name, Action<Stream> write) => hashes[name] = AdapterModelArchive.WriteEntry(zip, name, write);
        void WriteMLNet(string entry, List<ITransformer> run, DataViewSchema schema) => WriteEntry(entry, s =>
        {
            // ML.NET's writer needs a seekable stream.
            using var buffer = new MemoryStream();
            catalog.Save(new TransformerChain<ITransformer>(run.ToArray()), schema, buffer);
            buffer.Position = 0;
            buffer.CopyTo(s);
        });

        WriteMLNet(InputSchemaEntry, [], inputSchema);
        var parts = new List<Part>();
        var schema = inputSchema;
        var run = new List<ITransformer>();
        var runSchema = schema;
        void FlushRun()
        {
            if (run.Count == 0) return;
            string entry = $"part-{parts.Count}.zip";
            WriteMLNet(entry, run, runSchema);
            parts.Add(new Part("mlnet", entry));
            run = [];
        }

        foreach (var transformer in chain)
        {
            if (transformer is LoraTextClassificationTransformer lora)
            {
                FlushRun();
                string prefix = $"part-{parts.Count}/";
                WriteEntry(prefix + "settings.json", s => JsonSerializer.Serialize(s, lora.Settings, Json));
                WriteEntry(prefix + "weights.safetensors", s =>
                {
                    using var lease = lora.Use();
                    using var scope = NewDisposeScope();
                    var weights = lora.TrainedWeights().ToDictionary(w => w.Key, w => w.Value.detach().cpu());
                    // A file that loading would refuse is not written.
                    if (weights.FirstOrDefault(w => !w.Value.isfinite().all().item<bool>()) is { Key: { } diverged })
                        throw new InvalidOperationException($"Cannot save: weight '{diverged}' holds NaN or infinite values, so the model has diverged. Retrain with a lower learning rate (or gradient clipping).");
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
        // Stored, not deflated: the hashes of ML.NET's time-stamped entries change with every save, and a file's size
        // should not.
        AdapterModelArchive.WriteEntry(zip, ManifestEntry, s => JsonSerializer.Serialize(s, new Manifest(FormatVersion, parts, hashes), Json), CompressionLevel.NoCompression);
    }

    public static ITransformer Load(ModelOperationsCatalog catalog, string filePath, out DataViewSchema inputSchema,
        PretrainedEncoder? baseEncoder, string? cacheDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        if (!File.Exists(filePath)) throw new FileNotFoundException($"Model file '{filePath}' does not exist.", filePath);
        var env = MLContextAccess.EnvironmentOf(catalog);
        using var zip = OpenZip(filePath);
        var manifest = new EntryReader(zip, filePath, null).Read(ManifestEntry, s => JsonSerializer.Deserialize<Manifest>(s, Json))
            ?? throw new InvalidDataException($"'{filePath}': entry '{ManifestEntry}' is empty.");
        if (manifest.FormatVersion is < 1 or > FormatVersion)
            throw new InvalidDataException($"'{filePath}' is format version {manifest.FormatVersion}; this MLNet.Lora reads versions 1 to {FormatVersion}. Update MLNet.Lora to read it.");
        if (manifest.FormatVersion >= 2 && manifest.Sha256 is null)
            throw new InvalidDataException($"'{filePath}': entry '{ManifestEntry}' of format version {manifest.FormatVersion} lacks the entries' SHA-256; the file is damaged.");
        var reader = new EntryReader(zip, filePath, manifest.Sha256);

        inputSchema = reader.Read(InputSchemaEntry, s => { catalog.Load(s, out var schema); return schema; });

        var parts = new List<ITransformer>();
        var cache = cacheDirectory is null ? null : new CheckpointCache(cacheDirectory);
        try
        {
            foreach (var part in manifest.Parts)
            {
                if (part.Kind == "mlnet")
                {
                    parts.AddRange(Flatten(reader.Read(part.Entry, s => catalog.Load(s, out _))));
                    continue;
                }
                var settings = reader.Read(part.Entry + "settings.json", s => JsonSerializer.Deserialize<LoraModelSettings>(s, Json))
                    ?? throw new InvalidDataException($"'{filePath}': entry '{part.Entry}settings.json' is empty.");
                var shared = ResolveBase(settings, baseEncoder, cache, filePath);
                // Files written before Pooler pooling refused encoders without a pooler computed [CLS] there.
                if (settings.Pooling == Encoders.PoolingStrategy.Pooler && !shared.Config.AddPoolingLayer) settings = settings with { Pooling = Encoders.PoolingStrategy.Cls };
                var model = LoraTextClassificationTransformer.BuildModel(shared.CreateEncoder(frozen: settings.Mode != Training.FineTuningMode.Full), settings);
                var device = MLContextAccess.Device(env);
                model.to(device);
                var transformer = new LoraTextClassificationTransformer(env, model, shared, settings, device);
                parts.Add(transformer);
                string weightsEntry = part.Entry + "weights.safetensors";
                var weights = reader.Read(weightsEntry, s => Safetensors.LoadStateDict(s, leaveOpen: true));
                using (var scope = NewDisposeScope())
                {
                    scope.Attach(weights.Values);
                    transformer.LoadTrainedWeights(weights, $"'{filePath}', entry '{weightsEntry}'");
                }
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

    /// <summary>
    /// The base encoder for <paramref name="settings"/>: the one already shared in this process when some model uses it
    /// (nothing loaded: a further load adds only its adapters), else the one given, else one loaded from the recorded
    /// source; its SHA-256 must match.
    /// </summary>
    private static SharedBaseEncoder ResolveBase(LoraModelSettings settings, PretrainedEncoder? given, CheckpointCache? cache, string filePath)
    {
        var recorded = settings.BaseEncoder;
        if (given is not null)
        {
            CheckSameBase(recorded, given.Identity, filePath);
            return SharedBaseEncoder.For(given);
        }
        if (SharedBaseEncoder.TryGet(recorded) is { } live) return live;
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
        using (loaded)
        {
            CheckSameBase(recorded, loaded.Identity, filePath);
            return SharedBaseEncoder.For(loaded, loadedToShare: true);
        }
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

    /// <summary>Writes one entry and returns the SHA-256 of its bytes.</summary>
    private static string WriteEntry(ZipArchive zip, string name, Action<Stream> write, CompressionLevel compression = CompressionLevel.Optimal)
    {
        using var buffer = new MemoryStream();
        write(buffer);
        buffer.Position = 0;
        using (var stream = zip.CreateEntry(name, compression).Open()) buffer.CopyTo(stream);
        return Convert.ToHexStringLower(SHA256.HashData(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
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

    /// <summary>
    /// Reads entries, checking each against the manifest's SHA-256 (format 2 on) before anything parses it; every error
    /// names the file and the entry.
    /// </summary>
    private sealed class EntryReader(ZipArchive zip, string filePath, IReadOnlyDictionary<string, string>? sha256)
    {
        public T Read<T>(string name, Func<Stream, T> read)
        {
            var entry = zip.GetEntry(name)
                ?? throw new InvalidDataException($"'{filePath}' is not a complete model saved with SaveWithAdapters: entry '{name}' is missing.");
            using var buffer = new MemoryStream();
            try
            {
                using var stream = entry.Open();
                stream.CopyTo(buffer);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"'{filePath}': entry '{name}' cannot be decompressed; the file is damaged ({e.Message}).", e);
            }
            if (sha256 is not null)
            {
                if (!sha256.TryGetValue(name, out string? expected))
                    throw new InvalidDataException($"'{filePath}': entry '{name}' has no SHA-256 in the manifest; the file is damaged.");
                string actual = Convert.ToHexStringLower(SHA256.HashData(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
                if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException($"'{filePath}': entry '{name}' is damaged: its SHA-256 is {actual}, the manifest recorded {expected}.");
            }
            buffer.Position = 0;
            try
            {
                return read(buffer);
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or FormatException or ArgumentException or InvalidOperationException or NotSupportedException or EndOfStreamException
                                      && !e.Message.StartsWith($"'{filePath}'", StringComparison.Ordinal))
            {
                throw new InvalidDataException($"'{filePath}': entry '{name}' cannot be read: {e.Message}", e);
            }
        }
    }
}
