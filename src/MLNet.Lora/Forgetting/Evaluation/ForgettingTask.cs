using Microsoft.ML;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// A labelled text task the forgetting tools measure on: a retention task (what the model should still know) or one
/// step of a task sequence. The label column may hold text (class names), a key (from <c>MapValueToKey</c>), or
/// booleans and numbers, which are read as class names.
/// </summary>
/// <param name="Name">Short name used in reports and charts (for instance "sst2").</param>
/// <param name="Train">
/// Training rows. For a retention task with no <paramref name="Test"/> these are all the rows; the evaluator splits
/// them with a seeded shuffle into probe-training and test rows.
/// </param>
/// <param name="Test">Held-out rows with the same columns; required for task sequences, optional for retention tasks.</param>
/// <param name="TextColumnName">The text column (a string scalar).</param>
/// <param name="LabelColumnName">The label column (text, key, boolean or number).</param>
public sealed record ForgettingTask(
    string Name,
    IDataView Train,
    IDataView? Test = null,
    string TextColumnName = "Text",
    string LabelColumnName = "Label");
