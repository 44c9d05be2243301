using Microsoft.ML.OnnxRuntime;
using MLNet.Lora.Deployment;
using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Onnx;

/// <summary>
/// One exported model on ONNX Runtime: its metadata, its tokenizer and one <see cref="InferenceSession"/> that every
/// thread shares (ONNX Runtime's <c>Run</c> is thread-safe). Scores texts in length-sorted batches padded to their longest item.
/// </summary>
internal sealed class OnnxTextClassifier : IDisposable
{
    private const string InputIds = "input_ids", AttentionMask = "attention_mask", TokenTypeIds = "token_type_ids", Probabilities = "probabilities";
    private static readonly string[] InputNames = [InputIds, AttentionMask, TokenTypeIds];
    private static readonly string[] OutputNames = [Probabilities];

    private readonly InferenceSession session;

    private OnnxTextClassifier(string path, InferenceSession session, OnnxModelMetadata metadata, int batchSize)
    {
        ModelPath = path;
        this.session = session;
        Metadata = metadata;
        Tokenizer = metadata.CreateTokenizer();
        BatchSize = batchSize;
    }

    public string ModelPath { get; }

    public OnnxModelMetadata Metadata { get; }

    public BertTextTokenizer Tokenizer { get; }

    public int BatchSize { get; }

    /// <summary>Opens <paramref name="path"/>; throws naming the file when it is missing, not ONNX, or not written by MLNet.Lora.</summary>
    public static OnnxTextClassifier Open(string path, LoraOnnxScoringOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, $"{nameof(LoraOnnxScoringOptions.BatchSize)} must be at least 1.");
        if (options.IntraOpThreads < 0) throw new ArgumentOutOfRangeException(nameof(options), options.IntraOpThreads, $"{nameof(LoraOnnxScoringOptions.IntraOpThreads)} must be 0 (automatic) or more.");
        if (!File.Exists(path))
            throw new FileNotFoundException($"ONNX model '{path}' does not exist. Export one with LoraTextClassificationTransformer.ExportOnnx.", path);

        using var sessionOptions = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = options.IntraOpThreads };
        if (!options.AllowSpinning) sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        InferenceSession session;
        try
        {
            session = new InferenceSession(path, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"'{path}' is not a loadable ONNX model ({e.Message.Trim()}). Pass a file written by ExportOnnx.", e);
        }
        try
        {
            var metadata = OnnxModelMetadata.Read(session.ModelMetadata.CustomMetadataMap, path);
            foreach (string input in InputNames)
            {
                if (!session.InputMetadata.ContainsKey(input))
                    throw new InvalidDataException($"'{path}' has no '{input}' input; it was not written by MLNet.Lora's ExportOnnx or was edited. Re-export the model.");
            }
            if (!session.OutputMetadata.ContainsKey(Probabilities))
                throw new InvalidDataException($"'{path}' has no '{Probabilities}' output; re-export the model.");
            return new OnnxTextClassifier(path, session, metadata, options.BatchSize);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Class probabilities, one row per text; texts are sorted by length and scored <see cref="BatchSize"/> at a time.</summary>
    public float[][] PredictProbabilities(IReadOnlyList<string?> texts, IReadOnlyList<string?>? pairs = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException($"{nameof(pairs)} has {pairs.Count} items but {nameof(texts)} has {texts.Count}.", nameof(pairs));
        var encoded = new EncodedText[texts.Count];
        for (int i = 0; i < encoded.Length; i++) encoded[i] = Tokenizer.Encode(texts[i], pairs?[i], Metadata.MaxLength);
        int[] order = Enumerable.Range(0, encoded.Length).OrderBy(i => encoded[i].Length).ToArray();
        var result = new float[encoded.Length][];
        for (int start = 0; start < order.Length; start += BatchSize)
        {
            int[] indices = order[start..Math.Min(start + BatchSize, order.Length)];
            float[][] rows = Score(indices.Select(i => encoded[i]).ToArray());
            for (int k = 0; k < indices.Length; k++) result[indices[k]] = rows[k];
        }
        return result;
    }

    /// <summary>One run over a batch padded to its longest item.</summary>
    private float[][] Score(EncodedText[] items)
    {
        var padded = PaddedIds.Pad(items, Tokenizer.PadTokenId);
        int batch = padded.Batch;
        long[] shape = [batch, padded.Sequence];
        using var idsValue = OrtValue.CreateTensorValueFromMemory(padded.InputIds, shape);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(padded.AttentionMask, shape);
        using var typesValue = OrtValue.CreateTensorValueFromMemory(padded.TokenTypeIds, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, InputNames, [idsValue, maskValue, typesValue], OutputNames);
        ReadOnlySpan<float> flat = outputs[0].GetTensorDataAsSpan<float>();
        int classes = Metadata.ClassCount;
        if (flat.Length != batch * classes)
            throw new InvalidDataException($"'{ModelPath}' returned {flat.Length} probabilities for {batch} rows of {classes} classes; re-export the model.");
        var rows = new float[batch][];
        for (int r = 0; r < batch; r++) rows[r] = flat.Slice(r * classes, classes).ToArray();
        return rows;
    }

    public void Dispose() => session.Dispose();
}
