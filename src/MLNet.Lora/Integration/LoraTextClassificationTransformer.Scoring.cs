using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Integration;

namespace MLNet.Lora;

public sealed partial class LoraTextClassificationTransformer : IRowScorer
{
    IEnumerable<DataViewSchema.Column> IRowScorer.ScoringColumns(DataViewSchema inputSchema)
    {
        yield return inputSchema[Settings.TextColumnName];
        if (Settings.SecondTextColumnName is { } second) yield return inputSchema[second];
    }

    // Several batches at a time, so that sorting by length packs batches tightly.
    int IRowScorer.ChunkSize => Settings.InferenceBatchSize * 8;

    IScoringChunk IRowScorer.OpenChunk(DataViewRow input, bool forCursor) => new TextChunk(this, input);

    /// <summary>Texts (and pairs) of a chunk of rows, and their class probabilities.</summary>
    private sealed class TextChunk : IScoringChunk
    {
        private readonly LoraTextClassificationTransformer owner;
        private readonly ValueGetter<ReadOnlyMemory<char>> text;
        private readonly ValueGetter<ReadOnlyMemory<char>>? pair;
        private readonly List<string?> texts = [];
        private readonly List<string?>? pairs;
        private float[][] scores = [];

        public TextChunk(LoraTextClassificationTransformer owner, DataViewRow input)
        {
            this.owner = owner;
            text = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[owner.Settings.TextColumnName]);
            if (owner.Settings.SecondTextColumnName is { } second)
            {
                pair = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[second]);
                pairs = [];
            }
        }

        public int Count => texts.Count;

        public void Capture()
        {
            ReadOnlyMemory<char> value = default;
            text(ref value);
            texts.Add(value.ToString());
            if (pair is null) return;
            pair(ref value);
            pairs!.Add(value.ToString());
        }

        public void Clear()
        {
            texts.Clear();
            pairs?.Clear();
        }

        public void Score() => scores = owner.PredictProbabilities(texts, pairs);

        public ValueGetter<TValue> OutputGetter<TValue>(DataViewSchema.Column column, int inputCount, Func<int> row) =>
            ScoredDataView.OutputGetter<TValue>(column, inputCount, () => scores[row()]);

        public void Dispose() { }
    }
}
