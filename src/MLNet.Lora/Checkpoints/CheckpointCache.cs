using System.Text.Json;
using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// Where converted encoders are kept, so that only the first load of an ONNX export (or of the embedded default)
/// converts it; later loads read the converted weights directly.
/// </summary>
/// <remarks>
/// <para>
/// The root is, in order: the constructor's <c>root</c>; the <c>MLNET_LORA_CACHE</c> environment variable; the per-user
/// <c>LocalApplicationData/MLNet.Lora/encoders</c> folder (the temporary folder where the system has none).
/// </para>
/// <para>
/// Each entry is a folder named <c>&lt;SHA-256 of the source model bytes&gt;-&lt;12 hex digits&gt;</c>, the suffix hashing
/// the other conversion inputs (the vocabulary's SHA-256, lower-casing, the head-count override and the converter's
/// format version), so that the same ONNX file with another <c>vocab.txt</c> gets its own entry. An entry is a Hugging
/// Face model folder plus the encoder's identity: <c>config.json</c>, <c>model.safetensors</c>, <c>vocab.txt</c>,
/// <c>tokenizer_config.json</c> and <c>identity.json</c>. Entries are written into a hidden temporary folder beside
/// their final place, then renamed into place, so that a reader never sees a partial entry; when two processes convert
/// the same source at once, the first rename wins and the other process discards its copy.
/// </para>
/// <para>
/// An entry that exists but cannot be read (a deleted file, a damaged <c>model.safetensors</c>) is reported, not
/// silently replaced: the load throws <see cref="InvalidDataException"/> naming the entry's folder, which can be
/// deleted to convert again. A root that cannot be created throws <see cref="IOException"/> naming it.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// var cache = new CheckpointCache("/data/encoders");
/// using var encoder = PretrainedEncoder.LoadDefault(cache);   // converts once, then reads the cache
/// Console.WriteLine($"{cache.Conversions} conversions, {cache.Hits} cache hits");
/// </code>
/// </example>
public sealed class CheckpointCache
{
    /// <summary>The environment variable that overrides the default root.</summary>
    public const string EnvironmentVariable = "MLNET_LORA_CACHE";

    /// <summary>Name of the identity file in each entry.</summary>
    public const string IdentityFile = "identity.json";

    // Bump when the conversion's output changes, so that old entries are not reused.
    private const string FormatVersion = "1";

    private int conversions;
    private int hits;

    /// <summary>A cache in <paramref name="root"/>, or in <see cref="DefaultRoot"/> when null.</summary>
    public CheckpointCache(string? root = null)
    {
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(string.IsNullOrWhiteSpace(root) ? DefaultRoot : root));
    }

    /// <summary>
    /// The root a cache uses when none is given: <c>MLNET_LORA_CACHE</c> when set, else
    /// <c>LocalApplicationData/MLNet.Lora/encoders</c>. Read at each call.
    /// </summary>
    public static string DefaultRoot
    {
        get
        {
            string? variable = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (!string.IsNullOrWhiteSpace(variable)) return Path.GetFullPath(variable);
            string local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
            if (string.IsNullOrEmpty(local)) local = Path.GetTempPath();
            return Path.Combine(local, "MLNet.Lora", "encoders");
        }
    }

    /// <summary>The folder holding the entries.</summary>
    public string Root { get; }

    /// <summary>How many loads through this instance converted a source (and wrote an entry).</summary>
    public int Conversions => Volatile.Read(ref conversions);

    /// <summary>How many loads through this instance were served from an existing entry.</summary>
    public int Hits => Volatile.Read(ref hits);

    /// <summary>The entry folder for a key made by <see cref="EntryKey"/>.</summary>
    internal string EntryPath(string key) => Path.Combine(Root, key);

    /// <summary>An entry's key: the source's SHA-256 and a short hash of the other conversion inputs.</summary>
    internal static string EntryKey(string sourceSha256, string settings) =>
        $"{sourceSha256}-{SourceHashes.OfText($"format={FormatVersion};{settings}")[..12]}";

    /// <summary>
    /// Loads the entry <paramref name="key"/>, or runs <paramref name="convert"/> and stores its result there. The
    /// encoder's identity records <paramref name="source"/>; its weight hash is computed once, at conversion.
    /// </summary>
    internal PretrainedEncoder GetOrConvert(string key, EncoderSource source, Func<ConvertedEncoder> convert)
    {
        string entry = EntryPath(key);
        if (Directory.Exists(entry))
        {
            var cached = ReadEntry(entry, source);
            Interlocked.Increment(ref hits);
            return cached;
        }

        EnsureRoot();
        ConvertedEncoder converted = convert();
        try
        {
            var identity = new EncoderIdentity(converted.Name, PretrainedEncoder.ComputeWeightsSha256(converted.Model), source);
            try
            {
                AtomicDirectory.TryCreate(entry, folder =>
                {
                    HuggingFaceFolder.Write(folder, converted.Model, converted.Vocabulary, converted.LowerCase, converted.Name);
                    CheckpointFiles.WriteText(Path.Combine(folder, IdentityFile), JsonSerializer.Serialize(identity, IdentityJson));
                });
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException(
                    $"Cannot write the encoder cache entry '{entry}': {e.Message} Free some space, or pass a CheckpointCache " +
                    $"with a writable folder, or set {EnvironmentVariable}.", e);
            }
            Interlocked.Increment(ref conversions);
            var tokenizer = WordPieceVocabulary.CreateTokenizer(converted.Vocabulary, converted.LowerCase);
            return new PretrainedEncoder(converted.Model, tokenizer, identity, converted.Vocabulary);
        }
        catch
        {
            converted.Model.Dispose();
            throw;
        }
    }

    private static readonly JsonSerializerOptions IdentityJson = new() { WriteIndented = true };

    private void EnsureRoot()
    {
        try
        {
            Directory.CreateDirectory(Root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new IOException(
                $"The encoder cache folder '{Root}' cannot be created: {e.Message} Pass a CheckpointCache with a writable folder, " +
                $"or set {EnvironmentVariable}.", e);
        }
    }

    private static PretrainedEncoder ReadEntry(string entry, EncoderSource source)
    {
        try
        {
            string identityPath = Path.Combine(entry, IdentityFile);
            if (!File.Exists(identityPath)) throw new FileNotFoundException($"'{identityPath}' is missing.", identityPath);
            var stored = JsonSerializer.Deserialize<EncoderIdentity>(File.ReadAllText(identityPath))
                ?? throw new InvalidDataException($"'{identityPath}' holds no identity.");
            if (string.IsNullOrEmpty(stored.Name) || stored.Sha256 is not { Length: 64 })
                throw new InvalidDataException($"'{identityPath}' lacks the encoder's name or weight hash.");

            var contents = HuggingFaceFolder.Read(entry);
            try
            {
                var tokenizer = WordPieceVocabulary.CreateTokenizer(contents.Vocabulary, contents.LowerCase);
                // The entry may have been made from another copy of the same bytes: record where this load came from.
                return new PretrainedEncoder(contents.Model, tokenizer, stored with { Source = source }, contents.Vocabulary);
            }
            catch
            {
                contents.Model.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or JsonException or ArgumentException)
        {
            throw new InvalidDataException(
                $"The cached encoder in '{entry}' cannot be read: {e.Message} Delete that folder to convert {source} again.", e);
        }
    }
}

/// <summary>A freshly converted encoder, before it is cached: the model (owned by whoever receives this), its vocabulary, casing and name.</summary>
internal sealed record ConvertedEncoder(BertModel Model, string[] Vocabulary, bool LowerCase, string Name);
