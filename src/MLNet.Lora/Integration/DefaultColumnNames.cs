namespace MLNet.Lora;

/// <summary>The column names MLNet.Lora uses when none are given: ML.NET's own defaults (which ML.NET keeps internal), plus <see cref="Text"/>.</summary>
public static class DefaultColumnNames
{
    /// <summary>The label column: <c>Label</c>.</summary>
    public const string Label = "Label";

    /// <summary>The text column: <c>Text</c>.</summary>
    public const string Text = "Text";

    /// <summary>The class-probabilities column: <c>Score</c>.</summary>
    public const string Score = "Score";

    /// <summary>The predicted-label column: <c>PredictedLabel</c>.</summary>
    public const string PredictedLabel = "PredictedLabel";
}
