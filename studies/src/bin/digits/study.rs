//! The study itself: pretrain each model, then for every target task and seed score the groups
//! with every scorer, and fine-tune with every method at matched steps.
//!
//! The protocol, per (model, task, seed):
//!
//! 1. every scorer sees the same `selection_batches` batches of the task's training split
//!    (drawn from seed `1000 + seed`, apart from the training stream) and scores the
//!    pretrained model's per-tensor groups once; each budget is then one exact knapsack over
//!    those scores (`AdaPeftConfig::select_scored`), so the selection time of a budget is the
//!    scoring time plus its knapsack;
//! 2. every method starts from the same pretrained weights and trains for the same number of
//!    Adam steps on the same batch sequence (seed `seed`), with its family's learning rate;
//! 3. test accuracy is measured on the task's test split.

use std::path::Path;
use std::time::Instant;

use adapeft::importance::{Estimator, discover};
use adapeft::{AdaPeftError, Candidates, Data, Scored, Selection};
use burn::tensor::{Device, Tensor};

use adapeft_studies::progress::Progress;

use crate::data::Split;
use crate::methods::{Method, Scorer, SelectBudget, count_trainable, with_lora, with_trainable};
use crate::models::{Batch, Classifier, ModelKind, ModelRun, ModelVisitor};
use crate::tasks::Task;
use crate::train::{TaskData, accuracy, pretrain, train};

/// The budget whose AdaPEFT (the library's default, `ShortRun`) selections the heat map shows.
pub const HEATMAP_BUDGET: f64 = 0.05;

/// What to run.
#[derive(Debug, Clone)]
pub struct StudyConfig {
    /// `--quick`: the reduced study.
    pub quick: bool,
    /// Seeds: each seeds the training batches, the LoRA initialisation, the selection batches,
    /// the random scores and the gradient probe's signs.
    pub seeds: Vec<u64>,
    /// Adam steps of every fine-tuning run.
    pub steps: usize,
    /// Fraction budgets of the selection methods.
    pub budgets: Vec<f64>,
    /// LoRA ranks.
    pub lora_ranks: Vec<usize>,
    /// Batches of 64 training images the scorers see.
    pub selection_batches: usize,
    /// The target tasks.
    pub tasks: Vec<Task>,
}

impl StudyConfig {
    /// The full study: 3 seeds, 300 steps, budgets 0.5%, 1%, 2%, 5% and the knee of the front, LoRA ranks 1-8.
    pub fn full() -> Self {
        StudyConfig {
            quick: false,
            seeds: vec![0, 1, 2],
            steps: 300,
            budgets: vec![0.005, 0.01, 0.02, 0.05],
            lora_ranks: vec![1, 2, 4, 8],
            selection_batches: 4,
            tasks: Task::TARGETS.to_vec(),
        }
    }

    /// The reduced study (`--quick`, under two minutes on two cores): one seed, 60 steps,
    /// budgets 1% and 5% (and the knee), LoRA ranks 1 and 4, every method family, every task and
    /// every output.
    pub fn quick() -> Self {
        StudyConfig {
            quick: true,
            seeds: vec![0],
            steps: 60,
            budgets: vec![0.01, HEATMAP_BUDGET],
            lora_ranks: vec![1, 4],
            selection_batches: 2,
            tasks: Task::TARGETS.to_vec(),
        }
    }

    /// Every method for a model, in report order.
    pub fn methods(&self, kind: ModelKind) -> Vec<Method> {
        let mut methods = vec![Method::Frozen, Method::Full, Method::Head, Method::BitFit];
        if kind.has_norms() {
            methods.push(Method::LayerNorm);
        }
        methods.extend(self.lora_ranks.iter().map(|&rank| Method::Lora { rank }));
        for &f in &self.budgets {
            for scorer in Scorer::ALL {
                methods.push(Method::Selected {
                    scorer,
                    budget: SelectBudget::Fraction(f),
                });
            }
        }
        for scorer in [Scorer::AdaForward, Scorer::AdaGradient, Scorer::AdaRun] {
            methods.push(Method::Selected {
                scorer,
                budget: SelectBudget::Knee,
            });
        }
        methods
    }
}

/// One fine-tuning run.
#[derive(Debug, Clone)]
pub struct Run {
    pub task: Task,
    pub model: ModelKind,
    pub method: Method,
    pub seed: u64,
    /// Parameters that required gradients.
    pub trainable: u64,
    /// Float parameters of the pretrained model (LoRA adapters not counted).
    pub total: u64,
    pub accuracy: f64,
    /// Seconds to score the groups (shared by every budget of a scorer) plus the knapsack.
    pub select_s: f64,
    pub train_s: f64,
    /// The loss reduction the selection predicted (selection methods only).
    pub predicted: Option<f64>,
}

/// AdaPEFT's predicted Pareto front for one (task, model, scorer), first seed.
#[derive(Debug, Clone)]
pub struct Front {
    pub task: Task,
    pub model: ModelKind,
    pub scorer: Scorer,
    /// (trainable parameters, predicted loss reduction), increasing.
    pub points: Vec<(u64, f64)>,
    /// The selections actually trained: (budget label, trainable, predicted reduction).
    pub chosen: Vec<(String, u64, f64)>,
}

/// Which groups the heat-map selection chose, for one (task, model).
#[derive(Debug, Clone)]
pub struct HeatColumn {
    pub task: Task,
    pub model: ModelKind,
    /// (group name, parameters, number of seeds that chose it).
    pub groups: Vec<(String, u64, usize)>,
    pub seeds: usize,
}

/// How a model's pretraining went.
#[derive(Debug, Clone)]
pub struct PretrainInfo {
    pub model: ModelKind,
    pub cached: bool,
    pub source_accuracy: f64,
    pub seconds: f64,
    pub total_params: u64,
    pub tensors: usize,
}

/// Everything the study measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub runs: Vec<Run>,
    pub fronts: Vec<Front>,
    pub heat: Vec<HeatColumn>,
    pub pretraining: Vec<PretrainInfo>,
    /// Selections at the heat-map budget, first seed: (file stem, JSON).
    pub selections: Vec<(String, String)>,
}

fn objective<M: Classifier>(model: &M, batch: &Batch) -> Tensor<1> {
    model.loss(batch)
}

/// Runs the study for every model.
pub fn run(
    config: &StudyConfig,
    split: &Split,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let device = Device::flex().autodiff();
    let mut outcome = Outcome::default();
    for kind in ModelKind::STUDY {
        kind.visit(StudyModel {
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

/// The study of one model: pretrain it, then every task, seed, scorer and method.
type StudyModel<'a> = ModelRun<'a, StudyConfig, Outcome>;

/// Scores the groups of `model` with `scorer` once and selects at every budget the method
/// list asks for. Returns `(method, selection, selection seconds)`.
fn select_all<M: Classifier>(
    model: &M,
    batches: &[Batch],
    scorer: Scorer,
    seed: u64,
    budgets: &[SelectBudget],
) -> Result<Vec<(Method, Selection, f64)>, AdaPeftError> {
    let config = scorer.config(seed);
    if config.candidates == Candidates::WithinBudget {
        // The scores depend on the budget: one estimation per budget (`Knee` scores all).
        return budgets
            .iter()
            .map(|&budget| {
                let start = Instant::now();
                let selection = config.select_with(
                    model,
                    Data::Batches(batches),
                    budget.budget(),
                    &objective::<M>,
                )?;
                let method = Method::Selected { scorer, budget };
                Ok((method, selection, start.elapsed().as_secs_f64()))
            })
            .collect();
    }
    let start = Instant::now();
    let groups = config.grouping.group(discover(model))?;
    let scores = config
        .estimator
        .estimate_with(model, batches, &groups, &objective::<M>)?;
    let scoring = start.elapsed().as_secs_f64();
    let scored = Scored::new(groups, scores, batches.len())?;
    budgets
        .iter()
        .map(|&budget| {
            let start = Instant::now();
            let selection = config.select_scored(&scored, budget.budget())?;
            let method = Method::Selected { scorer, budget };
            Ok((method, selection, scoring + start.elapsed().as_secs_f64()))
        })
        .collect()
}

impl ModelVisitor for StudyModel<'_> {
    type Output = Result<(), Box<dyn std::error::Error>>;

    fn visit<M: Classifier>(self, kind: ModelKind, fresh: impl Fn(&Device) -> M) -> Self::Output {
        let StudyModel {
            config,
            split,
            cache_dir,
            device,
            progress,
            outcome,
        } = self;
        let name = kind.name();
        let pretrained = pretrain(kind, fresh, split, cache_dir, device, progress)?;
        let base = pretrained.model;
        let (_, total) = count_trainable(&base);
        let tensors = adapeft::importance::discover(&base).len();
        progress.log(format!(
        "{name}: {total} parameters in {tensors} tensors; pretrained {} in {:.1} s, source-task test accuracy {:.3}",
        if pretrained.cached {
            "(read from the cache)"
        } else {
            "(trained and cached)"
        },
        pretrained.seconds,
        pretrained.source_accuracy
    ));
        outcome.pretraining.push(PretrainInfo {
            model: kind,
            cached: pretrained.cached,
            source_accuracy: pretrained.source_accuracy,
            seconds: pretrained.seconds,
            total_params: total,
            tensors,
        });

        let methods = config.methods(kind);
        let runs_per_seed: u64 = methods
            .iter()
            .map(|m| {
                if *m == Method::Frozen {
                    0
                } else {
                    config.steps as u64
                }
            })
            .sum();
        let cells = (config.tasks.len() * config.seeds.len()) as u64;
        let select_bar = progress.bar(cells * Scorer::ALL.len() as u64, &format!("select {name}"));
        let train_bar = progress.bar(cells * runs_per_seed, &format!("fine-tune {name}"));

        for &task in &config.tasks {
            let data = TaskData::new(split, task, device);
            let mut heat: Vec<(String, u64, usize)> = Vec::new();
            for (seed_index, &seed) in config.seeds.iter().enumerate() {
                let first_seed = seed_index == 0;
                // Selection batches: drawn from the task's training split, apart from the
                // training stream of the same seed.
                let batches = data.batches(config.selection_batches, 1_000 + seed);
                // The short run takes one fresh batch per step from the same stream (the
                // selection batches are its first ones).
                let run_batches = data.batches(
                    Scorer::RUN_STEPS.max(config.selection_batches),
                    1_000 + seed,
                );
                let mut selections = Vec::new();
                for scorer in Scorer::ALL {
                    let budgets: Vec<SelectBudget> = methods
                        .iter()
                        .filter_map(|m| match *m {
                            Method::Selected { scorer: s, budget } if s == scorer => Some(budget),
                            _ => None,
                        })
                        .collect();
                    let scorer_batches = if scorer == Scorer::AdaRun {
                        &run_batches
                    } else {
                        &batches
                    };
                    let chosen = select_all(&base, scorer_batches, scorer, seed, &budgets)?;
                    if first_seed && scorer.is_adapeft() {
                        let front = chosen[0].1.front();
                        outcome.fronts.push(Front {
                            task,
                            model: kind,
                            scorer,
                            points: front
                                .weights()
                                .iter()
                                .copied()
                                .zip(front.values().iter().copied())
                                .collect(),
                            chosen: chosen
                                .iter()
                                .map(|(m, s, _)| {
                                    (
                                        m.budget_label(),
                                        s.trainable_params(),
                                        s.predicted_reduction(),
                                    )
                                })
                                .collect(),
                        });
                    }
                    if scorer == Scorer::AdaRun {
                        let at = SelectBudget::Fraction(HEATMAP_BUDGET);
                        if let Some((_, sel, _)) = chosen.iter().find(
                        |(m, _, _)| matches!(m, Method::Selected { budget, .. } if *budget == at),
                    ) {
                        if heat.is_empty() {
                            heat = sel
                                .groups()
                                .iter()
                                .map(|g| (g.score.name.clone(), g.score.params, 0))
                                .collect();
                        }
                        for (cell, g) in heat.iter_mut().zip(sel.groups()) {
                            cell.2 += usize::from(g.chosen);
                        }
                        if first_seed {
                            outcome.selections.push((
                                format!(
                                    "{}-{}-adapeft-run-{}pct",
                                    name,
                                    task.name(),
                                    100.0 * HEATMAP_BUDGET
                                ),
                                sel.to_json(),
                            ));
                        }
                    }
                    }
                    selections.extend(chosen);
                    select_bar.inc(1);
                }

                for &method in &methods {
                    device.seed(seed);
                    let (model, select_s, predicted) = match method {
                        Method::Lora { rank } => (with_lora(base.clone(), rank), 0.0, None),
                        Method::Selected { .. } => {
                            let (_, selection, secs) = selections
                                .iter()
                                .find(|(m, _, _)| *m == method)
                                .expect("every selection method was selected above");
                            (
                                selection.apply(base.clone()),
                                *secs,
                                Some(selection.predicted_reduction()),
                            )
                        }
                        fixed => {
                            let rule = fixed.rule().expect("fixed rules have a path rule");
                            (with_trainable(base.clone(), rule), 0.0, None)
                        }
                    };
                    let (trainable, _) = count_trainable(&model);
                    // A selection can be empty (every group unreliable, or none fits the budget):
                    // then nothing trains, as for the frozen model.
                    let steps = if method == Method::Frozen || trainable == 0 {
                        if method != Method::Frozen {
                            progress.log(format!(
                                "note: {name} / {} / {method} (seed {seed}) trains nothing",
                                task.name()
                            ));
                            train_bar.inc(config.steps as u64);
                        }
                        0
                    } else {
                        config.steps
                    };
                    let (model, train_s) = train(
                        model,
                        M::loss,
                        &data,
                        steps,
                        method.learning_rate(),
                        seed,
                        &train_bar,
                    );
                    let acc = accuracy(&model, &data);
                    outcome.runs.push(Run {
                        task,
                        model: kind,
                        method,
                        seed,
                        trainable,
                        total,
                        accuracy: acc,
                        select_s,
                        train_s,
                        predicted,
                    });
                }
            }
            outcome.heat.push(HeatColumn {
                task,
                model: kind,
                groups: heat,
                seeds: config.seeds.len(),
            });
            progress.log(format!("{name}: {} done", task.name()));
        }
        select_bar.finish_and_clear();
        train_bar.finish_and_clear();
        Ok(())
    }
}
