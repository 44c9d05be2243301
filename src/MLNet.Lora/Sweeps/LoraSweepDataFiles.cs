namespace MLNet.Lora.Sweeps;

/// <summary>
/// Where the shards of a planned sweep read their data, recorded in the plan so that every process reads the same
/// files. The library's <see cref="ShardedSweep.RunShard"/> takes data views; the <c>mlnet-lora</c> tool reads these files.
/// </summary>
/// <param name="Dataset">The training data (TSV or CSV with a header).</param>
/// <param name="ValidationDataset">The validation data that scores each trial (same columns).</param>
/// <param name="HasHeader">Whether the files' first line names the columns.</param>
/// <param name="Separator">The column separator, or null to infer it from the file name (<c>.csv</c>: comma, else tab).</param>
public sealed record LoraSweepDataFiles(string Dataset, string ValidationDataset, bool HasHeader = true, char? Separator = null);
