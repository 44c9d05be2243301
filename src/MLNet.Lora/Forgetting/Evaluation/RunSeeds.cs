namespace MLNet.Lora.Forgetting;

/// <summary>What a derived seed is for; each purpose gets its own stream so that adding one never shifts another.</summary>
internal enum SeedPurpose
{
    /// <summary>A task's training: head initialisation, shuffling and dropout.</summary>
    Training = 0,

    /// <summary>Which old rows are replayed, and in which order.</summary>
    Rehearsal = 200,

    /// <summary>A task's fresh adapter's initialisation.</summary>
    AdapterInitialisation = 500,
}

/// <summary>
/// The seeds a run derives from the user's one seed s: <c>Derive(s, purpose, task) = 1000·s + purpose + task</c>, with
/// the purposes 0, 200 and 500 apart and tasks numbered from 0 (fewer than 200 tasks, so streams never meet). The
/// formula is kept as it was when seeds were computed in place, so earlier studies reproduce exactly.
/// </summary>
internal static class RunSeeds
{
    public static int Derive(int seed, SeedPurpose purpose, int task = 0)
    {
        if (task is < 0 or >= 200) throw new ArgumentOutOfRangeException(nameof(task), task, "Tasks are numbered 0 to 199.");
        return unchecked(seed * 1000 + (int)purpose + task);
    }
}
