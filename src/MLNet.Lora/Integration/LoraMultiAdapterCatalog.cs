using MLNet.Lora;

namespace Microsoft.ML;

/// <summary>The catalog entry point for scoring with many adapters over one base.</summary>
public static class LoraMultiAdapterCatalog
{
    /// <summary>
    /// A transformer that scores each row with the adapter of <paramref name="set"/> named in its
    /// <paramref name="adapterColumnName"/> column (see <see cref="LoraMultiAdapterTransformer"/> for the output columns).
    /// </summary>
    /// <param name="catalog"><c>mlContext.Transforms</c>.</param>
    /// <param name="set">The adapters and their shared base.</param>
    /// <param name="adapterColumnName">The text column naming each row's adapter.</param>
    /// <param name="textColumnName">The text column to classify.</param>
    /// <param name="fallbackAdapterName">An adapter for rows naming one the set does not have; null (default) makes such a row an error.</param>
    /// <example>
    /// <code>
    /// using var set = new LoraAdapterSet(ml);
    /// set.Add("sentiment", "sentiment.zip");
    /// set.Add("topic", "topic.zip");
    /// var scorer = ml.Transforms.LoraMultiAdapterClassification(set);
    /// var labels = scorer.Transform(requests).GetColumn&lt;string&gt;("PredictedLabel");
    /// </code>
    /// </example>
    public static LoraMultiAdapterTransformer LoraMultiAdapterClassification(this TransformsCatalog catalog, LoraAdapterSet set,
        string adapterColumnName = "Adapter", string textColumnName = DefaultColumnNames.Text, string? fallbackAdapterName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LoraMultiAdapterTransformer(set, adapterColumnName, textColumnName, fallbackAdapterName);
    }
}
