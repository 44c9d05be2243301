namespace MLNet.Lora.Sweeps;

/// <summary>One trial of a <see cref="LoraSweepPlan"/>: what trains, for how long, and which shard runs it.</summary>
/// <param name="Number">The trial's number in the whole sweep (1-based, every round counted), as the in-process sweep numbers it.</param>
/// <param name="Rung">The successive-halving round (0 in a grid).</param>
/// <param name="Epochs">Epochs to train.</param>
/// <param name="Shard">The shard (0-based) that runs it: the trials of a round are dealt to the shards in turn.</param>
/// <param name="Settings">The LoRA settings.</param>
public sealed record PlannedTrial(int Number, int Rung, int Epochs, int Shard, LoraTrialSettings Settings);
