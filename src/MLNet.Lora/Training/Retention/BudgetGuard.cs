using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Training;

/// <summary>
/// Runs a <see cref="ForgettingBudget"/> inside the training loop: checks the retention drop when due, keeps a copy of
/// the best checkpoint within budget (the best validation accuracy at an epoch end when there is validation data, else
/// the latest), says when training must stop, and puts the kept weights back at the end.
/// </summary>
internal sealed class BudgetGuard : IDisposable
{
    private readonly ForgettingBudget budget;
    private readonly IRetentionCheck check;
    private readonly TextClassificationModel model;
    private readonly List<(string Name, Parameter Parameter)> parameters;
    private readonly bool hasValidation;
    private readonly List<ForgettingBudgetCheck> checks = [new(0, 0, 0, true)];
    private Dictionary<string, Tensor> kept;
    private int keptStep;
    private double keptAccuracy = double.NegativeInfinity;
    private int lastCheckedStep;

    public BudgetGuard(ForgettingBudget budget, IRetentionCheck check, TextClassificationModel model, List<(string Name, Parameter Parameter)> parameters, bool hasValidation)
    {
        this.budget = budget;
        this.check = check;
        this.model = model;
        this.parameters = parameters;
        this.hasValidation = hasValidation;
        kept = FineTuningLoop.Snapshot(parameters);   // the start is within any budget
    }

    /// <summary>Whether a check found the drop above the budget.</summary>
    public bool Exceeded { get; private set; }

    public ForgettingBudgetOutcome Outcome => new(budget, checks.ToList(), Exceeded, keptStep);

    /// <summary>Whether a step check is due after <paramref name="step"/> optimizer steps.</summary>
    public bool DueAfter(int step) => budget.EveryNSteps is { } every && step % every == 0;

    /// <summary>Measures the drop now; returns false when it is above the budget (training must stop).</summary>
    public bool Check(int epoch, int step, double? validationAccuracy, Action<string>? log)
    {
        if (step == lastCheckedStep && validationAccuracy is null) return !Exceeded;   // an epoch end right after a step check
        lastCheckedStep = step;
        double drop = check.Drop(model);
        bool within = drop <= budget.MaxDrop;
        checks.Add(new ForgettingBudgetCheck(epoch, step, drop, within));
        log?.Invoke($"Forgetting budget check at epoch {epoch}, step {step}: retention drop {drop:P2} (budget {budget.MaxDrop:P2}){(within ? "" : ": over budget, stopping")}.");
        if (!within)
        {
            Exceeded = true;
            return false;
        }
        // With validation data, an epoch end is kept when its accuracy is the best so far; otherwise the latest check is.
        bool keep = !hasValidation || (validationAccuracy is { } accuracy ? accuracy > keptAccuracy : keptAccuracy == double.NegativeInfinity);
        if (keep)
        {
            FineTuningLoop.DisposeAll(kept);
            kept = FineTuningLoop.Snapshot(parameters);
            keptStep = step;
            if (validationAccuracy is { } a) keptAccuracy = a;
        }
        return true;
    }

    /// <summary>Puts the kept checkpoint's weights back (unless they are the current ones, at <paramref name="finalStep"/>).</summary>
    public void RestoreKept(int finalStep)
    {
        if (keptStep == finalStep && !Exceeded) return;
        FineTuningLoop.Restore(parameters, kept);
    }

    public void Dispose() => FineTuningLoop.DisposeAll(kept);
}
