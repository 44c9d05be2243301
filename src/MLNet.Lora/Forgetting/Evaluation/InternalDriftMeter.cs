using MLNet.Lora.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>Runs a reference and a candidate side by side on the same inputs and measures how far their insides differ.</summary>
internal static class InternalDriftMeter
{
    public static InternalComparison Compare(ComparedModel reference, ComparedModel candidate, string task, IReadOnlyList<string> texts,
        int maxSequenceLength, int batchSize, double headThreshold, CancellationToken cancellationToken)
    {
        var items = Encode(reference, candidate, task, texts, maxSequenceLength);
        int hiddenStates = reference.Encoder.Config.NumHiddenLayers + 1;
        if (candidate.Encoder.Config.NumHiddenLayers + 1 != hiddenStates || candidate.Encoder.Config.NumAttentionHeads != reference.Encoder.Config.NumAttentionHeads)
            throw new ArgumentException($"'{reference.Name}' and '{candidate.Name}' have different shapes (layers or heads); drift needs the same architecture.", nameof(candidate));
        int layers = hiddenStates - 1, heads = reference.Encoder.Config.NumAttentionHeads;

        var refStates = Enumerable.Range(0, hiddenStates).Select(_ => new List<Tensor>()).ToArray();
        var candStates = Enumerable.Range(0, hiddenStates).Select(_ => new List<Tensor>()).ToArray();
        var jsSum = new double[layers][];
        for (int l = 0; l < layers; l++) jsSum[l] = new double[heads];
        double rows = 0;

        using var outer = NewDisposeScope();
        using (var refScope = new MeasurementScope(reference.Encoder, unmerge: false))
        using (var candScope = new MeasurementScope(candidate.Encoder, unmerge: false))
        using (no_grad())
        {
            var refDevice = EncoderFeatures.DeviceOf(reference.Encoder);
            var candDevice = EncoderFeatures.DeviceOf(candidate.Encoder);
            foreach (var indices in EncoderFeatures.Batches(items, batchSize))
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var batchItems = indices.Select(i => items[i]).ToArray();
                var refBatch = TokenBatch.Collate(batchItems, reference.Tokenizer.PadTokenId, refDevice);
                var candBatch = TokenBatch.Collate(batchItems, candidate.Tokenizer.PadTokenId, candDevice);
                var a = reference.Encoder.forward(refBatch.InputIds, refBatch.AttentionMask, refBatch.TokenTypeIds, outputHiddenStates: true, outputAttentions: true);
                var b = candidate.Encoder.forward(candBatch.InputIds, candBatch.AttentionMask, candBatch.TokenTypeIds, outputHiddenStates: true, outputAttentions: true);
                for (int s = 0; s < hiddenStates; s++)
                {
                    refStates[s].Add(Encoders.Pooling.MeanOverTokens(a.HiddenStates![s], refBatch.AttentionMask).to(float64).cpu().MoveToOuterDisposeScope());
                    candStates[s].Add(Encoders.Pooling.MeanOverTokens(b.HiddenStates![s], candBatch.AttentionMask).to(float64).cpu().MoveToOuterDisposeScope());
                }
                // MeanPerHead averages over this batch's real rows; weighting by them gives the mean over all real rows.
                double batchRows = refBatch.AttentionMask.sum().item<long>();
                var mask = refBatch.AttentionMask.cpu();
                for (int l = 0; l < layers; l++)
                {
                    var perHead = AttentionDivergence.MeanPerHead(a.Attentions![l].cpu(), b.Attentions![l].cpu(), mask);
                    for (int h = 0; h < heads; h++) jsSum[l][h] += perHead[h] * batchRows;
                }
                rows += batchRows;
            }
        }

        var drift = new double[hiddenStates];
        for (int s = 0; s < hiddenStates; s++)
        {
            using var scope = NewDisposeScope();
            drift[s] = RepresentationSimilarity.RepresentationDrift(cat(refStates[s], 0), cat(candStates[s], 0));
        }
        var attention = jsSum.Select(perHead => perHead.Select(v => v / rows).ToArray()).ToArray();
        return new InternalComparison
        {
            Task = task,
            Reference = reference.Name,
            Candidate = candidate.Name,
            Examples = items.Count,
            RepresentationDrift = drift,
            AttentionDrift = attention,
            MeanAttentionDriftPerLayer = attention.Select(h => h.Average()).ToArray(),
            HeadThreshold = headThreshold,
            ShareOfHeadsAbove = AttentionDivergence.ShareAbove(attention.SelectMany(h => h).ToArray(), headThreshold),
        };
    }

    /// <summary>Encodes the texts once; attention maps can only be compared token by token when both tokenizers agree.</summary>
    private static IReadOnlyList<EncodedText> Encode(ComparedModel reference, ComparedModel candidate, string task, IReadOnlyList<string> texts, int maxSequenceLength)
    {
        if (texts.Count < 2)
            throw new ArgumentException(
                $"Task '{task}' leaves {texts.Count} example(s) for measuring drift; drift compares representations across at least 2. " +
                "Give the task more labelled rows (a few dozen at least) or a Test set of its own.", nameof(texts));
        var items = texts.Select(t => reference.Tokenizer.Encode(t, null, maxSequenceLength)).ToArray();
        if (!ReferenceEquals(reference.Tokenizer, candidate.Tokenizer))
        {
            for (int i = 0; i < texts.Count; i++)
            {
                if (!candidate.Tokenizer.Encode(texts[i], null, maxSequenceLength).InputIds.AsSpan().SequenceEqual(items[i].InputIds))
                    throw new ArgumentException(
                        $"'{reference.Name}' and '{candidate.Name}' tokenize \"{texts[i]}\" differently; their attention maps and hidden states cannot be compared token by token.",
                        nameof(candidate));
            }
        }
        return items;
    }
}
