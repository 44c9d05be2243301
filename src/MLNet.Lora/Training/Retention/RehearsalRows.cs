using TorchSharp.Modules;

namespace MLNet.Lora.Training;

/// <summary>
/// Earlier tasks' rows for experience replay, each task with the head that reads it out. Every training batch of the new
/// task gets <see cref="CountFor"/> of them: the tasks take turns, and each task's rows come in a seeded shuffled order
/// that starts over (reshuffled) when used up, so every old row is replayed before any repeats.
/// </summary>
internal sealed class RehearsalRows
{
    private readonly IReadOnlyList<RehearsalTask> tasks;
    private readonly double ratio;
    private readonly Random random;
    private readonly int[][] orders;
    private readonly int[] next;
    private int turn;

    /// <param name="tasks">The old tasks, at least one, each with at least one row.</param>
    /// <param name="ratio">Old rows per new row, positive.</param>
    /// <param name="seed">Seed of the row orders.</param>
    public RehearsalRows(IReadOnlyList<RehearsalTask> tasks, double ratio, int seed)
    {
        if (tasks.Count == 0) throw new ArgumentException("Rehearsal needs at least one earlier task.", nameof(tasks));
        if (!(ratio > 0) || !double.IsFinite(ratio)) throw new ArgumentOutOfRangeException(nameof(ratio), ratio, "The rehearsal ratio must be a positive number.");
        this.tasks = tasks;
        this.ratio = ratio;
        random = new Random(seed);
        orders = tasks.Select(t => Shuffled(t.Rows.Count)).ToArray();
        next = new int[tasks.Count];
    }

    public IReadOnlyList<RehearsalTask> Tasks => tasks;

    /// <summary>Old rows added to a batch of <paramref name="batchSize"/> new rows: round(ratio · size), at least one.</summary>
    public int CountFor(int batchSize) => Math.Max(1, (int)Math.Round(ratio * batchSize));

    /// <summary>The next <paramref name="count"/> old rows as (task index, row index).</summary>
    public (int Task, int Row)[] Draw(int count)
    {
        var drawn = new (int, int)[count];
        for (int k = 0; k < count; k++)
        {
            int t = turn++ % tasks.Count;
            if (next[t] == orders[t].Length)
            {
                orders[t] = Shuffled(orders[t].Length);
                next[t] = 0;
            }
            drawn[k] = (t, orders[t][next[t]++]);
        }
        return drawn;
    }

    private int[] Shuffled(int count)
    {
        var order = Enumerable.Range(0, count).ToArray();
        random.Shuffle(order);
        return order;
    }
}

/// <summary>One earlier task to replay: its encoded rows and the head its rows are read out by (trained along).</summary>
internal sealed record RehearsalTask(string Name, LabeledTexts Rows, Linear Head);
