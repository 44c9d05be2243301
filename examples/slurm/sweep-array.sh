#!/usr/bin/env bash
# The sweep as a Slurm array: one task per shard, SLURM_ARRAY_TASK_ID as the shard index, the plan and results on a
# shared file system. Submit with:
#   mlnet-lora sweep plan ... --shards 4 -o "$SHARE/sweep/plan.json"
#   job=$(sbatch --parsable --array=0-3 examples/slurm/sweep-array.sh)
#   sbatch --dependency=afterok:$job --wrap "mlnet-lora sweep merge --plan $SHARE/sweep/plan.json -o $SHARE/sweep/merged"
# A failed task is resubmitted with `sbatch --array=<its index> ...`: its finished trials are skipped.
#SBATCH --job-name=lora-sweep
#SBATCH --cpus-per-task=2
#SBATCH --mem=3G
#SBATCH --time=02:00:00
set -euo pipefail
: "${SHARE:?set SHARE to the shared folder that holds sweep/plan.json}"
# Slurm confines the task to its CPUs with cpusets, not a CFS quota: say how many threads torch gets.
export MLNET_LORA_THREADS="${SLURM_CPUS_PER_TASK:-1}"
exec mlnet-lora sweep run --plan "$SHARE/sweep/plan.json" --index "$SLURM_ARRAY_TASK_ID"
