using System.CommandLine;
using System.Globalization;
using Microsoft.ML;
using MLNet.Lora.Cli.Data;
using MLNet.Lora.Sweeps;

namespace MLNet.Lora.Cli.Commands;

/// <summary>
/// <c>sweep plan | run | merge | promote</c>: a LoRA sweep split into shards that independent processes run (one per
/// Kubernetes Indexed Job pod or Slurm array task), with one result file per trial and a merge into the same result an
/// in-process sweep gives. See docs/scale-out.md.
/// </summary>
internal static class SweepCommand
{
    public static Command Create(CliConsole console, Option<int?> threads) => new("sweep", "Sweep LoRA settings over shards that separate processes run.")
    {
        Plan(console),
        Run(console, threads),
        Merge(console, threads),
        Promote(console),
    };

    private static Command Plan(CliConsole console)
    {
        var data = new DataOptionSet(labelRequired: true);
        var validation = CommonOptions.ValidationDataset(required: true);
        var trainer = new TrainerOptionSet(sweptByTheCaller: true);
        var ranks = CommonOptions.List("--ranks", "LoRA ranks to try", s => int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture), "2,4,8,16");
        var alphas = CommonOptions.List("--alphas", "Alpha settings: a number, or a multiple of the rank like 2r", AlphaSetting.Parse, "2r");
        var modules = CommonOptions.List("--target-module-sets", "Sets of adapted layers, each joined by |", LoraTrialSettings.ParseModules, "Query|Value,All");
        var rates = CommonOptions.List("--learning-rates", "Peak learning rates", s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture), "2e-3,1e-3");
        var strategy = new Option<SweepStrategy>("--strategy") { Description = "Grid or SuccessiveHalving.", DefaultValueFactory = _ => SweepStrategy.Grid };
        var metric = new Option<SweepMetric>("--metric") { Description = "Accuracy or MacroF1: ranks trials and picks the best.", DefaultValueFactory = _ => SweepMetric.Accuracy };
        var minEpochs = CommonOptions.PositiveInt("--halving-min-epochs", "Successive halving: epochs of the first round (default 1).");
        var maxEpochs = CommonOptions.PositiveInt("--halving-max-epochs", "Successive halving: the most epochs a survivor trains (default --epochs).");
        var keep = new Option<double?>("--halving-keep-fraction") { Description = "Successive halving: share of a round that goes on (default 0.5)." };
        var factor = new Option<double?>("--halving-epoch-factor") { Description = "Successive halving: epochs grow by this factor per round (default 2)." };
        var shards = CommonOptions.PositiveInt("--shards", "Processes the trials are dealt to (a Kubernetes Indexed Job's completions).");
        var noSize = new Option<bool>("--skip-file-size") { Description = "Do not save each trial to a temporary file to measure its size." };
        var output = CommonOptions.Output("The plan file to write (JSON).");
        var command = new Command("plan", "Write a sweep plan: search space, strategy, data, trainer options, seed, and each trial's shard.")
        {
            validation, ranks, alphas, modules, rates, strategy, metric, minEpochs, maxEpochs, keep, factor, shards, noSize, output,
        };
        data.AddTo(command);
        trainer.AddTo(command);
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads: null, ct =>
        {
            var dataset = parse.GetValue(data.Dataset)!;
            var valid = parse.GetValue(validation)!;
            foreach (var file in new[] { dataset, valid })
                if (!file.Exists) throw new CliException($"The data file '{file.FullName}' does not exist.");
            var baseOptions = trainer.Bind(parse, data.Columns(parse));
            var space = new LoraSearchSpace();
            if (parse.GetValue(ranks) is { } r) space = new LoraSearchSpace { Ranks = r, Alphas = space.Alphas, TargetModuleSets = space.TargetModuleSets, LearningRates = space.LearningRates };
            if (parse.GetValue(alphas) is { } a) space = new LoraSearchSpace { Ranks = space.Ranks, Alphas = a, TargetModuleSets = space.TargetModuleSets, LearningRates = space.LearningRates };
            if (parse.GetValue(modules) is { } m) space = new LoraSearchSpace { Ranks = space.Ranks, Alphas = space.Alphas, TargetModuleSets = m, LearningRates = space.LearningRates };
            if (parse.GetValue(rates) is { } l) space = new LoraSearchSpace { Ranks = space.Ranks, Alphas = space.Alphas, TargetModuleSets = space.TargetModuleSets, LearningRates = l };
            var options = new LoraSweepOptions
            {
                SearchSpace = space,
                BaseOptions = baseOptions,
                Strategy = parse.GetValue(strategy),
                Metric = parse.GetValue(metric),
                HalvingMaxEpochs = parse.GetValue(maxEpochs),
                MeasureAdapterFileSize = !parse.GetValue(noSize),
            };
            if (parse.GetValue(minEpochs) is { } min) options.HalvingMinEpochs = min;
            if (parse.GetValue(keep) is { } k) options.HalvingKeepFraction = k;
            if (parse.GetValue(factor) is { } f) options.HalvingEpochFactor = f;
            string path = parse.GetValue(output)!;
            var plan = LoraSweepPlan.Create(options, parse.GetValue(shards) ?? 1, new LoraSweepDataFiles(
                RelativeToPlan(path, dataset.FullName), RelativeToPlan(path, valid.FullName), parse.GetValue(data.HasHeader), parse.GetValue(data.Separator)));
            plan.Save(path);
            console.Line($"Wrote '{path}': {plan}.");
            console.Line($"Rounds: {string.Join(", ", plan.Rounds.Select(x => $"{x.Count} trials × {x.Epochs} epochs"))}.");
            foreach (var group in plan.Trials.GroupBy(t => t.Shard))
                console.Line($"  shard {group.Key}: {string.Join("; ", group.Select(t => $"#{t.Number} {t.Settings}"))}");
            return Task.FromResult(0);
        }, token));
        return command;
    }

    private static Command Run(CliConsole console, Option<int?> threads)
    {
        var planOption = PlanOption();
        var index = new Option<int?>("--index") { Description = $"The shard to run (0-based); default {ShardSpec.IndexVariable}, which a Kubernetes Indexed Job sets in each pod." };
        var results = ResultsOption();
        var command = new Command("run", "Run one shard's trials, writing one result file per trial; finished trials are skipped (a retried shard resumes).")
        {
            planOption, index, results,
        };
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads, ct =>
        {
            string planPath = parse.GetValue(planOption)!.FullName;
            var plan = LoraSweepPlan.Load(planPath);
            string? indexVariable = Environment.GetEnvironmentVariable(ShardSpec.IndexVariable);
            int shard = parse.GetValue(index)
                ?? (plan.Shards == 1 && string.IsNullOrWhiteSpace(indexVariable) ? 0   // one shard: nothing to choose
                : string.IsNullOrWhiteSpace(indexVariable)
                    ? throw new CliException($"The plan has {plan.Shards} shards: give --index, or set {ShardSpec.IndexVariable} (as a Kubernetes Indexed Job does).")
                    : ShardSpec.Resolve(null, plan.Shards, indexVariable).Index);
            if (shard < 0 || shard >= plan.Shards) throw new CliException($"--index {shard} is outside the plan's shards 0 to {plan.Shards - 1}.");
            var files = plan.Data ?? throw new CliException($"The plan '{planPath}' records no data files; write it with `mlnet-lora sweep plan`.");
            var options = plan.CreateOptions().BaseOptions;
            var columns = new TextColumns(options.TextColumnName, options.LabelColumnName, options.SecondTextColumnName);
            var ml = new MLContext(plan.Seed);
            var train = TextDataset.Read(Resolve(planPath, files.Dataset), files.HasHeader, columns, files.Separator);
            var valid = TextDataset.Read(Resolve(planPath, files.ValidationDataset), files.HasHeader, columns, files.Separator);
            LabelCheck.AllKnown(valid, train.Rows.Select(r => r.Label!).Distinct().ToList());
            string folder = parse.GetValue(results) ?? DefaultResults(planPath);
            var summary = ShardedSweep.RunShard(ml, plan, shard, train.ToDataView(ml), valid.ToDataView(ml), folder,
                new InlineProgress<LoraSweepProgress>(p => { if (p.Training is null || p.Training.IsEpochEnd) console.Note(p.ToString()); }), ct);
            console.Line(summary.ToString());
            return Task.FromResult(0);
        }, token));
        return command;
    }

    private static Command Merge(CliConsole console, Option<int?> threads)
    {
        var planOption = PlanOption();
        var results = ResultsOption();
        var output = CommonOptions.Output("Folder for sweep.csv, sweep.png and best-model.zip.");
        var command = new Command("merge", "Gather every shard's results: table, CSV, chart, Pareto front and the best model.") { planOption, results, output };
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads, ct =>
        {
            string planPath = parse.GetValue(planOption)!.FullName;
            var plan = LoraSweepPlan.Load(planPath);
            var ml = new MLContext(plan.Seed);
            string folder = parse.GetValue(output)!;
            Directory.CreateDirectory(folder);
            using var result = ShardedSweep.Merge(ml, plan, parse.GetValue(results) ?? DefaultResults(planPath));
            console.Line(result.ToString());
            console.Line($"Best: {result.BestTrial}");
            console.Line($"Pareto front: {string.Join("; ", result.ParetoFront.Select(t => $"#{t.Number} {t.Settings}"))}");
            result.SaveCsv(Path.Combine(folder, "sweep.csv"));
            result.SaveChart(Path.Combine(folder, "sweep.png"));
            string best = Path.Combine(parse.GetValue(results) ?? DefaultResults(planPath), $"trial-{result.BestTrial.Number:D4}.zip");
            // Atomically: the scoring job reads this very file.
            MLNet.Lora.IO.AtomicFile.Write(Path.Combine(folder, "best-model.zip"), target =>
            {
                using var source = File.OpenRead(best);
                source.CopyTo(target);
            }, createFolder: true);
            console.Line($"Wrote sweep.csv, sweep.png and best-model.zip to '{folder}'.");
            return Task.FromResult(0);
        }, token));
        return command;
    }

    private static Command Promote(CliConsole console)
    {
        var planOption = PlanOption();
        var results = ResultsOption();
        var output = CommonOptions.Output("The next round's plan file to write.");
        var command = new Command("promote", "Successive halving: write the next round's plan from this round's results.") { planOption, results, output };
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads: null, ct =>
        {
            string planPath = parse.GetValue(planOption)!.FullName;
            var plan = LoraSweepPlan.Load(planPath);
            var next = ShardedSweep.Promote(plan, parse.GetValue(results) ?? DefaultResults(planPath));
            string path = parse.GetValue(output)!;
            next.Save(path);
            console.Line($"Wrote '{path}': {next}: {string.Join("; ", next.Trials.Select(t => $"#{t.Number} {t.Settings} ({t.Epochs} epochs, shard {t.Shard})"))}.");
            return Task.FromResult(0);
        }, token));
        return command;
    }

    private static Option<FileInfo> PlanOption() => new("--plan", "-p") { Description = "The plan file (from `sweep plan` or `sweep promote`).", Required = true };

    private static Option<string?> ResultsOption() => new("--results") { Description = "The shared results folder (default: 'results' beside the plan)." };

    private static string DefaultResults(string planPath) => Path.Combine(Path.GetDirectoryName(planPath)!, "results");

    /// <summary>Data under the plan's folder is recorded relative to it, so the folder can be mounted anywhere (a shared volume in each pod).</summary>
    private static string RelativeToPlan(string planPath, string dataPath)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(planPath))!;
        string relative = Path.GetRelativePath(folder, dataPath);
        return relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? dataPath : relative;
    }

    /// <summary>A relative data path in a plan is relative to the plan's folder (the shared volume's layout, wherever it is mounted).</summary>
    private static string Resolve(string planPath, string path) => Path.IsPathRooted(path) ? path : Path.Combine(Path.GetDirectoryName(planPath)!, path);
}
