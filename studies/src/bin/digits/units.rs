//! The units benchmark (`--units`): groups below the tensor on the digits models, against the
//! per-tensor oracle and the published sparse-tuning baselines at equal budgets (issue 21).
//!
//! For each model, task and seed, at each budget (a fraction of all parameters), five
//! selections from the same knapsack, each trained as the oracle trains a subset (Adam at the
//! subset rate, the same steps, batches and seed), through `Selection::apply` and `Masked`
//! (which zeroes the gradient outside the chosen cells of a partly trained tensor):
//!
//! - `adapeft-tensors`: AdaPEFT with per-tensor groups (the study's `adapeft-run`: the
//!   trapezoid-rule allocation of a 15-step short run);
//! - `adapeft-neurons`: the same short run, every 2-D weight cut into output neurons (its
//!   column in burn's `[d_in, d_out]` layout and the bias entry), the other tensors whole;
//! - `random-neurons`: random scores over the same neurons (S2FT's default choice of
//!   channels, arXiv 2412.06289);
//! - `smt-blocks`: SMT (arXiv 2405.15525): every 2-D weight cut into 8 x 8 blocks (SMT's
//!   256 x 256 on 4,096-wide matrices is the same 1/16 of a side), scored by the mean absolute
//!   gradient of a model warmed up by full fine-tuning; the chosen blocks then train from the
//!   pretrained model (the warm-up is scoring only, so the trained parameters are the budget);
//! - `gps-rows`: GPS-like (arXiv 2312.10136): every 2-D weight cut into input rows, scored by
//!   the empirical Fisher (summed squared per-batch gradients).
//!
//! The oracle is the best test accuracy among the per-tensor subsets within the same budget
//! in the committed oracle benchmark (`docs/digits/oracle-subsets.csv`: every subset of the
//! MLP's six tensors; a reference front of random subsets, rules and value-model picks of the
//! transformer's, so a lower bound there), at the same seeds. It is comparable when the runs
//! train as many steps as the oracle's (300); the quick form says it is not.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use adapeft::importance::{Estimator, Unit, UnitRules, discover};
use adapeft::optim::Masked;
use adapeft::{AdaPeftConfig, AnyEstimator, Baseline, Budget, Scored, Selection};
use burn::optim::AdamConfig;
use burn::tensor::{Device, Tensor};
use indicatif::ProgressBar;

use adapeft_studies::progress::Progress;
use adapeft_studies::stats::{Verdict, interval95, paired};

use crate::data::Split;
use crate::methods::{LR_FULL, LR_SUBSET, Scorer, count_trainable};
use crate::models::{Batch, Classifier, ModelKind, ModelRun, ModelVisitor};
use crate::tasks::Task;
use crate::train::{TaskData, accuracy, pretrain, train, train_with};

/// The oracle's fine-tuning steps: only runs of this length compare with it.
pub const ORACLE_STEPS: usize = 300;

/// What the units benchmark runs.
#[derive(Debug, Clone)]
pub struct UnitsConfig {
    pub seeds: Vec<u64>,
    /// Adam steps of every fine-tuning run.
    pub steps: usize,
    /// Budgets, as fractions of all parameters.
    pub budgets: Vec<f64>,
    /// Batches of 64 images the baselines score on.
    pub selection_batches: usize,
    /// Steps of full fine-tuning before SMT scores its blocks.
    pub warmup_steps: usize,
    /// Side of SMT's square blocks.
    pub block: usize,
    pub tasks: Vec<Task>,
}

impl UnitsConfig {
    pub fn full() -> Self {
        UnitsConfig {
            seeds: vec![0, 1, 2],
            steps: ORACLE_STEPS,
            budgets: vec![0.001, 0.005, 0.01],
            selection_batches: 4,
            warmup_steps: 15,
            block: 8,
            tasks: Task::TARGETS.to_vec(),
        }
    }

    pub fn quick() -> Self {
        UnitsConfig {
            seeds: vec![0],
            steps: 40,
            budgets: vec![0.005, 0.01],
            selection_batches: 2,
            warmup_steps: 4,
            block: 8,
            tasks: Task::TARGETS.to_vec(),
        }
    }
}

/// The selections compared, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitMethod {
    Tensors,
    Neurons,
    Rows,
    Blocks,
    RandomNeurons,
    SmtBlocks,
    GpsRows,
}

impl UnitMethod {
    pub const ALL: [UnitMethod; 7] = [
        UnitMethod::Tensors,
        UnitMethod::Neurons,
        UnitMethod::Rows,
        UnitMethod::Blocks,
        UnitMethod::RandomNeurons,
        UnitMethod::SmtBlocks,
        UnitMethod::GpsRows,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnitMethod::Tensors => "adapeft-tensors",
            UnitMethod::Neurons => "adapeft-neurons",
            UnitMethod::Rows => "adapeft-rows",
            UnitMethod::Blocks => "adapeft-blocks",
            UnitMethod::RandomNeurons => "random-neurons",
            UnitMethod::SmtBlocks => "smt-blocks",
            UnitMethod::GpsRows => "gps-rows",
        }
    }

    /// How the 2-D weights are cut (`None`: per-tensor groups).
    fn unit(self, block: usize) -> Option<Unit> {
        match self {
            UnitMethod::Tensors => None,
            UnitMethod::Neurons | UnitMethod::RandomNeurons => Some(Unit::Outputs),
            UnitMethod::Blocks | UnitMethod::SmtBlocks => Some(Unit::Blocks {
                rows: block,
                cols: block,
            }),
            UnitMethod::Rows | UnitMethod::GpsRows => Some(Unit::Inputs),
        }
    }

    /// Whether this is AdaPEFT (the short run's values) over units below the tensor.
    pub fn is_adapeft_units(self) -> bool {
        matches!(
            self,
            UnitMethod::Neurons | UnitMethod::Rows | UnitMethod::Blocks
        )
    }

    /// The published baseline over the same units as this AdaPEFT method.
    pub fn baseline(self) -> Option<UnitMethod> {
        match self {
            UnitMethod::Neurons => Some(UnitMethod::RandomNeurons),
            UnitMethod::Rows => Some(UnitMethod::GpsRows),
            UnitMethod::Blocks => Some(UnitMethod::SmtBlocks),
            _ => None,
        }
    }

    fn estimator(self, seed: u64) -> AnyEstimator {
        match self {
            UnitMethod::Tensors | UnitMethod::Neurons | UnitMethod::Rows | UnitMethod::Blocks => {
                Scorer::AdaRun.config(seed).estimator
            }
            UnitMethod::RandomNeurons => Baseline::Random { seed }.into(),
            UnitMethod::SmtBlocks => Baseline::MeanAbsGradient.into(),
            UnitMethod::GpsRows => Baseline::Fisher.into(),
        }
    }
}

/// One fine-tuning run of a selection.
#[derive(Debug, Clone)]
pub struct UnitRun {
    pub model: &'static str,
    pub task: Task,
    pub seed: u64,
    pub method: UnitMethod,
    pub budget: f64,
    pub trainable: u64,
    pub total: u64,
    /// Groups chosen, and how many of them are units below the tensor.
    pub chosen: usize,
    pub chosen_units: usize,
    /// The chosen groups' names, in the groups' order.
    pub names: Vec<String>,
    pub accuracy: f64,
    pub select_s: f64,
    pub train_s: f64,
}

#[derive(Debug, Default)]
pub struct UnitsOutcome {
    pub runs: Vec<UnitRun>,
}

pub fn run(
    config: &UnitsConfig,
    split: &Split,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<UnitsOutcome, Box<dyn std::error::Error>> {
    let device = Device::flex().autodiff();
    let mut outcome = UnitsOutcome::default();
    for kind in ModelKind::STUDY {
        kind.visit(UnitsModel {
            config,
            split,
            cache_dir,
            device: &device,
            progress,
            outcome: &mut outcome,
        })?;
    }
    Ok(outcome)
}

type UnitsModel<'a> = ModelRun<'a, UnitsConfig, UnitsOutcome>;

/// A regex that matches exactly the modules whose `weight` is 2-D (every `Linear` here).
fn matrices_rule<M: Classifier>(model: &M) -> String {
    let modules: Vec<String> = discover(model)
        .into_iter()
        .filter(|p| p.shape.len() == 2)
        .filter_map(|p| {
            p.path
                .strip_suffix(".weight")
                .map(|m| m.replace('.', r"\."))
        })
        .collect();
    format!("^({})$", modules.join("|"))
}

fn objective<M: Classifier>(model: &M, batch: &Batch) -> Tensor<1> {
    model.loss(batch)
}

/// [`train`] for a selection: Adam through `Masked`, so a partly trained tensor moves only in
/// its chosen cells (for whole tensors the same steps as plain Adam on the applied model).
fn train_selection<M: Classifier>(
    selection: &Selection,
    base: &M,
    data: &TaskData,
    steps: usize,
    seed: u64,
) -> (M, f64) {
    let model = selection.apply(base.clone());
    // An empty selection (nothing fits the budget) trains nothing: the frozen model, as in
    // the study.
    let steps = if selection.trainable_params() == 0 {
        0
    } else {
        steps
    };
    let mut optim = Masked::new(AdamConfig::new().build(), selection);
    train_with(
        model,
        M::loss,
        data,
        steps,
        seed,
        &ProgressBar::hidden(),
        |model, grads| optim.step(LR_SUBSET, model, grads),
    )
}

impl ModelVisitor for UnitsModel<'_> {
    type Output = Result<(), Box<dyn std::error::Error>>;

    fn visit<M: Classifier>(self, kind: ModelKind, fresh: impl Fn(&Device) -> M) -> Self::Output {
        let UnitsModel {
            config,
            split,
            cache_dir,
            device,
            progress,
            outcome,
        } = self;
        let name = kind.name();
        let base = pretrain(kind, fresh, split, cache_dir, device, progress)?.model;
        let (_, total) = count_trainable(&base);
        let matrices = matrices_rule(&base);
        let cells = (config.tasks.len() * config.seeds.len()) as u64;
        let bar = progress.bar(
            cells * (UnitMethod::ALL.len() * config.budgets.len()) as u64,
            &format!("units {name}"),
        );
        for &task in &config.tasks {
            let data = TaskData::new(split, task, device);
            for &seed in &config.seeds {
                // The study's streams: selection batches, and one fresh batch per short-run
                // step from the same stream.
                let batches = data.batches(config.selection_batches, 1_000 + seed);
                let run_batches = data.batches(
                    Scorer::RUN_STEPS.max(config.selection_batches),
                    1_000 + seed,
                );
                for method in UnitMethod::ALL {
                    let start = Instant::now();
                    let mut adapeft = AdaPeftConfig::new().with_estimator(method.estimator(seed));
                    let rules = match method.unit(config.block) {
                        Some(unit) => Some(UnitRules::new().with(&matrices, unit)?),
                        None => None,
                    };
                    if let Some(rules) = &rules {
                        adapeft = adapeft.with_units(rules.clone());
                    }
                    // SMT scores a model warmed up by full fine-tuning.
                    let scored_model = if method == UnitMethod::SmtBlocks {
                        device.seed(seed);
                        let warm = train(
                            base.clone(),
                            M::loss,
                            &data,
                            config.warmup_steps,
                            LR_FULL,
                            2_000 + seed,
                            &ProgressBar::hidden(),
                        );
                        warm.0
                    } else {
                        base.clone()
                    };
                    let scorer_batches =
                        if method == UnitMethod::Tensors || method.is_adapeft_units() {
                            &run_batches
                        } else {
                            &batches
                        };
                    let mut groups = adapeft.grouping.group(discover(&scored_model))?;
                    if let Some(rules) = &rules {
                        groups = groups.split(rules)?;
                    }
                    let scores = adapeft.estimator.estimate_with(
                        &scored_model,
                        scorer_batches,
                        &groups,
                        &objective::<M>,
                    )?;
                    let scored = Scored::new(groups, scores, scorer_batches.len())?;
                    let scoring = start.elapsed().as_secs_f64();
                    for &budget in &config.budgets {
                        let start = Instant::now();
                        let selection = adapeft.select_scored(&scored, Budget::Fraction(budget))?;
                        let select_s = scoring + start.elapsed().as_secs_f64();
                        device.seed(seed);
                        let (model, train_s) =
                            train_selection(&selection, &base, &data, config.steps, seed);
                        let chosen: Vec<_> =
                            selection.groups().iter().filter(|g| g.chosen).collect();
                        outcome.runs.push(UnitRun {
                            model: name,
                            task,
                            seed,
                            method,
                            budget,
                            trainable: selection.trainable_params(),
                            total,
                            chosen: chosen.len(),
                            chosen_units: chosen
                                .iter()
                                .filter(|g| g.score.name.contains('['))
                                .count(),
                            names: chosen.iter().map(|g| g.score.name.clone()).collect(),
                            accuracy: accuracy(&model, &data),
                            select_s,
                            train_s,
                        });
                        bar.inc(1);
                    }
                }
            }
            progress.log(format!("units {name}: {} done", task.name()));
        }
        bar.finish_and_clear();
        Ok(())
    }
}

/// The oracle's best test accuracy within `floor(budget * total)` parameters, per
/// (model, task, seed), from the oracle benchmark's subsets file.
pub struct Oracle {
    rows: Vec<(String, String, u64, u64, f64)>,
    /// Where the rows come from, as the report names it.
    pub origin: String,
}

impl Oracle {
    /// Reads `oracle-subsets.csv` (`model,task,seed,subset,params,accuracy,...`).
    pub fn read(path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the oracle's subsets {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// [`Oracle::read`] of the file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let bad = || format!("{origin}:{}: not an oracle subset row: {line:?}", i + 1);
            if f.len() < 6 {
                return Err(bad().into());
            }
            rows.push((
                f[0].to_string(),
                f[1].to_string(),
                f[2].parse().map_err(|_| bad())?,
                f[4].parse().map_err(|_| bad())?,
                f[5].parse().map_err(|_| bad())?,
            ));
        }
        Ok(Oracle {
            rows,
            origin: origin.to_string(),
        })
    }

    /// The best accuracy within `cap` parameters, `None` when the oracle did not run that
    /// model, task and seed.
    pub fn best(&self, model: &str, task: &str, seed: u64, cap: u64) -> Option<f64> {
        let mut seen = false;
        let mut best = 0.0f64;
        for (m, t, s, params, acc) in &self.rows {
            if m == model && t == task && *s == seed {
                seen = true;
                if *params <= cap {
                    best = best.max(*acc);
                }
            }
        }
        // The empty subset (nothing trained) is always within the budget; the oracle does
        // not train it, and a run that trains nothing scores the frozen model.
        seen.then_some(best)
    }
}

fn budget_label(b: f64) -> String {
    format!("{}%", 100.0 * b)
}

fn cell(x: &[f64]) -> String {
    let (m, h) = interval95(x);
    if h.is_nan() {
        format!("{m:.3}")
    } else {
        format!("{m:.3} ± {h:.3}")
    }
}

/// The report: per model, task and budget, every method's mean test accuracy with its 95%
/// interval over seeds, the oracle's, and each unit method against the oracle and against
/// `adapeft-neurons`, decided by the paired intervals.
pub fn markdown(
    config: &UnitsConfig,
    outcome: &UnitsOutcome,
    oracle: Option<&Oracle>,
    command: &str,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# adapeft digits study: units below the tensor\n");
    let _ = writeln!(md, "Command: `{command}`\n");
    let _ = writeln!(
        md,
        "{} Adam steps per run at the subset rate ({LR_SUBSET}); seeds {:?}; SMT's warm-up: {} steps of full fine-tuning at {LR_FULL}, blocks of {b} x {b}. \
         Test accuracy, mean ± 95% interval over seeds (no interval for one seed). \
         `oracle`: the best per-tensor subset within the budget in the oracle benchmark's runs (`{}`), at the same seeds.\n",
        config.steps,
        config.seeds,
        config.warmup_steps,
        oracle.map_or("none", |o| o.origin.as_str()),
        b = config.block
    );
    let comparable = config.steps == ORACLE_STEPS;
    if !comparable {
        let _ = writeln!(
            md,
            "The oracle trained {ORACLE_STEPS} steps and these runs {}: not comparable, so its column is left out.\n",
            config.steps
        );
    }
    let mut verdicts = Vec::new();
    let mut models: Vec<&str> = outcome.runs.iter().map(|r| r.model).collect();
    models.dedup();
    for model in models {
        let _ = writeln!(md, "## {model}\n");
        let mut header = "| task | budget | params cap |".to_string();
        for m in UnitMethod::ALL {
            header += &format!(" {} |", m.name());
        }
        if comparable {
            header += " oracle |";
        }
        let _ = writeln!(md, "{header}");
        let _ = writeln!(
            md,
            "|---|---:|---:|{}",
            "---:|".repeat(UnitMethod::ALL.len() + comparable as usize)
        );
        for &task in &config.tasks {
            for &budget in &config.budgets {
                let of = |method: UnitMethod| -> Vec<&UnitRun> {
                    outcome
                        .runs
                        .iter()
                        .filter(|r| {
                            r.model == model
                                && r.task == task
                                && r.budget == budget
                                && r.method == method
                        })
                        .collect()
                };
                let Some(first) = of(UnitMethod::Tensors).first().copied() else {
                    continue;
                };
                let cap = (budget * first.total as f64).floor() as u64;
                let mut row = format!("| {} | {} | {cap} |", task.name(), budget_label(budget));
                let mut accs: HashMap<UnitMethod, (Vec<u64>, Vec<f64>)> = HashMap::new();
                for m in UnitMethod::ALL {
                    let runs = of(m);
                    let acc: Vec<f64> = runs.iter().map(|r| r.accuracy).collect();
                    let seeds = runs.iter().map(|r| r.seed).collect();
                    let params = runs.iter().map(|r| r.trainable).max().unwrap_or(0);
                    row += &format!(" {} ({params}) |", cell(&acc));
                    accs.insert(m, (seeds, acc));
                }
                // The oracle's best per seed, where it ran that seed (the transformer's
                // benchmark ran fewer seeds): (position among the runs, accuracy).
                let seeds = &accs[&UnitMethod::Tensors].0;
                let oracle_best: Vec<(usize, f64)> = match oracle {
                    Some(oracle) if comparable => seeds
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &s)| {
                            oracle.best(model, task.name(), s, cap).map(|b| (i, b))
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let oracle_seeds: Vec<u64> = oracle_best.iter().map(|&(i, _)| seeds[i]).collect();
                let partial = if oracle_seeds.len() < seeds.len() {
                    format!(" (seeds {oracle_seeds:?} only)")
                } else {
                    String::new()
                };
                let best: Vec<f64> = oracle_best.iter().map(|&(_, b)| b).collect();
                if comparable {
                    if best.is_empty() {
                        row += " n/a |";
                    } else {
                        row += &format!(" {}{partial} |", cell(&best));
                    }
                }
                let here = format!("{model} / {} / {}", task.name(), budget_label(budget));
                for m in UnitMethod::ALL.into_iter().filter(|m| m.is_adapeft_units()) {
                    let (_, ours) = &accs[&m];
                    // (the comparison's key, its label in the line, ours, theirs), paired.
                    let mut against: Vec<(String, String, Vec<f64>, Vec<f64>)> = Vec::new();
                    if !best.is_empty() {
                        let key = "the oracle's best per-tensor subset".to_string();
                        against.push((
                            key.clone(),
                            key + &partial,
                            oracle_best.iter().map(|&(i, _)| ours[i]).collect(),
                            best.clone(),
                        ));
                    }
                    for other in [m.baseline(), Some(UnitMethod::Tensors)]
                        .into_iter()
                        .flatten()
                    {
                        let name = other.name().to_string();
                        against.push((name.clone(), name, ours.clone(), accs[&other].1.clone()));
                    }
                    for (key, label, ours, theirs) in against {
                        if theirs.len() == ours.len() {
                            let (d, h, v) = paired(&ours, &theirs);
                            verdicts.push((
                                format!("{} against {key}", m.name()),
                                v,
                                format!(
                                    "{here}: {} {} {label} ({d:+.3} ± {h:.3})",
                                    m.name(),
                                    v.verb()
                                ),
                            ));
                        }
                    }
                }
                let _ = writeln!(md, "{row}");
            }
        }
        let _ = writeln!(
            md,
            "\nIn parentheses: the largest trainable-parameter count among the seeds' selections.\n"
        );
    }
    let _ = writeln!(
        md,
        "## Verdicts\n\nPaired over seeds: a win or a loss only when the 95% interval of the mean difference excludes 0 (with one seed, every difference is a tie). Counted over models, tasks and budgets:\n"
    );
    let _ = writeln!(
        md,
        "| comparison | wins | ties | losses |\n|---|---:|---:|---:|"
    );
    let mut keys: Vec<&String> = Vec::new();
    for (key, _, _) in &verdicts {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for key in keys {
        let count = |want: Verdict| {
            verdicts
                .iter()
                .filter(|(k, v, _)| k == key && *v == want)
                .count()
        };
        let _ = writeln!(
            md,
            "| {key} | {} | {} | {} |",
            count(Verdict::Win),
            count(Verdict::Tie),
            count(Verdict::Loss)
        );
    }
    let _ = writeln!(md, "\nEvery comparison:\n");
    for (_, _, line) in &verdicts {
        let _ = writeln!(md, "- {line}");
    }
    md
}

/// Writes every run as a CSV row.
pub fn write_csv(path: &Path, outcome: &UnitsOutcome) -> Result<(), Box<dyn std::error::Error>> {
    adapeft_studies::outputs::write_csv(
        path,
        [
            "model",
            "task",
            "seed",
            "method",
            "budget",
            "trainable_params",
            "total_params",
            "chosen_groups",
            "chosen_units",
            "accuracy",
            "select_s",
            "train_s",
            "chosen",
        ],
        outcome.runs.iter().map(|r| {
            [
                r.model.to_string(),
                r.task.name().to_string(),
                r.seed.to_string(),
                r.method.name().to_string(),
                r.budget.to_string(),
                r.trainable.to_string(),
                r.total.to_string(),
                r.chosen.to_string(),
                r.chosen_units.to_string(),
                format!("{:.4}", r.accuracy),
                format!("{:.4}", r.select_s),
                format!("{:.4}", r.train_s),
                r.names.join("+"),
            ]
        }),
    )
}

/// Problems with an outcome: a method, budget, task, model or seed without its run, a
/// selection over its budget, a number that is not finite.
pub fn validate(config: &UnitsConfig, outcome: &UnitsOutcome) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = ModelKind::STUDY.len()
        * config.tasks.len()
        * config.seeds.len()
        * UnitMethod::ALL.len()
        * config.budgets.len();
    if outcome.runs.len() != expected {
        problems.push(format!("{} runs, expected {expected}", outcome.runs.len()));
    }
    for r in &outcome.runs {
        let cap = (r.budget * r.total as f64).floor() as u64;
        if r.trainable > cap {
            problems.push(format!(
                "{} / {} / {} at {}: {} trainable parameters over the cap {cap}",
                r.model,
                r.task.name(),
                r.method.name(),
                r.budget,
                r.trainable
            ));
        }
        if !(r.accuracy.is_finite() && r.select_s.is_finite() && r.train_s.is_finite()) {
            problems.push(format!(
                "{} / {} / {}: a number is not finite",
                r.model,
                r.task.name(),
                r.method.name()
            ));
        }
        let units_expected = r.method != UnitMethod::Tensors;
        if !units_expected && r.chosen_units > 0 {
            problems.push(format!(
                "{} / {}: per-tensor groups chose units",
                r.model,
                r.task.name()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Mlp;
    use adapeft::importance::Grouping;

    const CSV: &str = "model,task,seed,subset,params,accuracy,realised_reduction
mlp,inverted,0,head.bias,10,0.0084,0.1
mlp,inverted,0,input.bias,128,0.1811,0.2
mlp,inverted,0,input.bias+head.bias,138,0.2786,0.3
mlp,inverted,1,input.bias,128,0.5000,0.2
mlp,rotated,0,input.bias,128,0.9000,0.2
";

    /// The best accuracy among the rows of the same model, task and seed within the cap,
    /// checked by hand; none for a seed the oracle did not run; 0 (the frozen model's
    /// floor) when nothing fits.
    #[test]
    fn the_oracle_takes_the_best_subset_within_the_cap() {
        let oracle = Oracle::parse(CSV, "test.csv").unwrap();
        assert_eq!(oracle.best("mlp", "inverted", 0, 137), Some(0.1811));
        assert_eq!(oracle.best("mlp", "inverted", 0, 138), Some(0.2786));
        assert_eq!(oracle.best("mlp", "inverted", 0, 9), Some(0.0));
        assert_eq!(oracle.best("mlp", "inverted", 1, 1_000), Some(0.5));
        assert_eq!(oracle.best("mlp", "inverted", 2, 1_000), None);
        assert_eq!(oracle.best("transformer", "inverted", 0, 1_000), None);
    }

    #[test]
    fn a_bad_oracle_row_is_an_error_naming_its_line() {
        let bad = format!("{CSV}mlp,inverted,0,head.weight,many,0.9,0.1\n");
        let e = Oracle::parse(&bad, "oracle.csv").err().unwrap().to_string();
        assert!(e.starts_with("oracle.csv:7:"), "{e}");
    }

    /// The rule that cuts the 2-D weights matches exactly the MLP's three linear layers.
    #[test]
    fn the_matrices_rule_matches_every_linear_layer_and_nothing_else() {
        let model = Mlp::new(16, &Device::flex());
        let rule = matrices_rule(&model);
        assert_eq!(rule, r"^(input|hidden|head)$");
        let rules = UnitRules::new().with(&rule, Unit::Outputs).unwrap();
        let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
        let split = groups.split(&rules).unwrap();
        // 16 + 16 + 10 output neurons, each with its bias entry: no whole tensor is left.
        assert_eq!(split.len(), 16 + 16 + 10);
        assert!(split.groups().iter().all(|g| g.name.contains(".out[")));
    }
}
