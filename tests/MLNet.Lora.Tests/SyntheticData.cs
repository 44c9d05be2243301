namespace MLNet.Lora.Tests;

/// <summary>A row of a text classification task.</summary>
public sealed class TextRow
{
    public string Text { get; set; } = "";
    public string Label { get; set; } = "";
}

/// <summary>A row of a text-pair task.</summary>
public sealed class PairRow
{
    public string Text { get; set; } = "";
    public string Second { get; set; } = "";
    public string Label { get; set; } = "";
}

public sealed class TextPrediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = [];
}

/// <summary>Small generated tasks over <see cref="TinyEncoders.Words"/>: separable by which words appear.</summary>
internal static class SyntheticData
{
    private static readonly string[] Positive = ["good", "great", "excellent", "wonderful", "fine"];
    private static readonly string[] Negative = ["bad", "awful", "terrible", "boring", "poor"];
    private static readonly string[] Subjects = ["movie", "film", "plot", "story", "acting"];
    private static readonly string[] Adverbs = ["very", "really", "quite"];

    /// <summary>"the film was really great" → positive; "the plot is quite awful" → negative.</summary>
    public static List<TextRow> Sentiment(int count, int seed)
    {
        var random = new Random(seed);
        var rows = new List<TextRow>(count);
        for (int i = 0; i < count; i++)
        {
            bool positive = random.Next(2) == 0;
            var words = positive ? Positive : Negative;
            string text = $"the {Pick(random, Subjects)} {(random.Next(2) == 0 ? "was" : "is")} {Pick(random, Adverbs)} {Pick(random, words)}";
            rows.Add(new TextRow { Text = text, Label = positive ? "positive" : "negative" });
        }
        return rows;
    }

    /// <summary>Three topics by vocabulary: animals, colours, markets.</summary>
    public static List<TextRow> Topics(int count, int seed)
    {
        string[][] topics = [["cat", "dog", "bird"], ["red", "blue", "green"], ["market", "stock", "price"]];
        string[] names = ["animals", "colours", "markets"];
        var random = new Random(seed);
        var rows = new List<TextRow>(count);
        for (int i = 0; i < count; i++)
        {
            int t = random.Next(3);
            rows.Add(new TextRow { Text = $"the {Pick(random, topics[t])} and a {Pick(random, topics[t])}", Label = names[t] });
        }
        return rows;
    }

    private static string Pick(Random random, string[] items) => items[random.Next(items.Length)];
}
