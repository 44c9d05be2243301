using Microsoft.ML.Data;

namespace MLNet.Lora.Sweeps;

/// <summary>Scores ML.NET's multiclass metrics do not give directly.</summary>
public static class ClassificationScores
{
    /// <summary>Macro-F1 from ML.NET's confusion matrix (rows actual classes, columns predicted).</summary>
    public static double MacroF1(ConfusionMatrix confusionMatrix)
    {
        ArgumentNullException.ThrowIfNull(confusionMatrix);
        return MacroF1(confusionMatrix.Counts);
    }

    /// <summary>
    /// Macro-F1 of a confusion matrix whose rows are actual classes and columns predicted classes: the mean over classes
    /// of 2·precision·recall / (precision + recall). Classes that neither occur nor are predicted are left out (as
    /// scikit-learn does by default); a class that occurs or is predicted but is never right scores 0.
    /// </summary>
    public static double MacroF1(IReadOnlyList<IReadOnlyList<double>> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        int classes = counts.Count;
        for (int i = 0; i < classes; i++)
            if (counts[i].Count != classes)
                throw new ArgumentException($"The confusion matrix must be square: row {i} has {counts[i].Count} columns, not {classes}.", nameof(counts));
        double sum = 0;
        int present = 0;
        for (int c = 0; c < classes; c++)
        {
            double truePositives = counts[c][c];
            double actual = counts[c].Sum();
            double predicted = Enumerable.Range(0, classes).Sum(r => counts[r][c]);
            if (actual == 0 && predicted == 0) continue;
            present++;
            // F1 = 2TP / (2TP + FP + FN) = 2TP / (actual + predicted): defined whenever the class occurs or is predicted.
            sum += 2 * truePositives / (actual + predicted);
        }
        return present == 0 ? double.NaN : sum / present;
    }
}
