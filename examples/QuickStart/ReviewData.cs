namespace QuickStart;

/// <summary>
/// Writes a small labelled review dataset: short product and film reviews built from templates. The test set uses
/// opinion words the training set never shows, so a good score needs what the pretrained encoder already knows.
/// </summary>
internal static class ReviewData
{
    private static readonly string[] Subjects =
        ["the movie", "this film", "the plot", "the acting", "the soundtrack", "this phone", "the battery", "the service", "our stay", "the food"];

    private static readonly string[] Templates =
        ["{0} was {1}.", "honestly, {0} is {1}.", "i thought {0} was {1}.", "{0} turned out {1}, really.", "overall {0} felt {1}.", "my friends agree: {0} is {1}."];

    private static readonly string[] TrainPositive = ["great", "wonderful", "excellent", "delightful", "superb", "lovely", "fantastic", "brilliant"];
    private static readonly string[] TrainNegative = ["awful", "terrible", "dreadful", "boring", "horrible", "disappointing", "poor", "annoying"];
    private static readonly string[] TestPositive = ["amazing", "enjoyable", "charming", "outstanding", "impressive"];
    private static readonly string[] TestNegative = ["dull", "mediocre", "painful", "frustrating", "unpleasant"];

    public static (string Train, string Test) Write(string folder, int trainRows = 640, int testRows = 200)
    {
        Directory.CreateDirectory(folder);
        string train = Path.Combine(folder, "reviews-train.tsv");
        string test = Path.Combine(folder, "reviews-test.tsv");
        WriteFile(train, trainRows, TrainPositive, TrainNegative, new Random(1));
        WriteFile(test, testRows, TestPositive, TestNegative, new Random(2));
        return (train, test);
    }

    private static void WriteFile(string path, int rows, string[] positive, string[] negative, Random random)
    {
        using var writer = new StreamWriter(path);
        writer.WriteLine("Label\tText");
        for (int i = 0; i < rows; i++)
        {
            bool isPositive = random.Next(2) == 0;
            string word = (isPositive ? positive : negative)[random.Next(isPositive ? positive.Length : negative.Length)];
            string text = string.Format(Templates[random.Next(Templates.Length)], Subjects[random.Next(Subjects.Length)], word);
            writer.WriteLine($"{(isPositive ? "positive" : "negative")}\t{text}");
        }
    }
}
