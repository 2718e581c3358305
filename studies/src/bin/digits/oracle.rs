//! The oracle benchmark (`--oracle`): how good are the value models, judged by what the subsets
//! they pick actually learn?
//!
//! For the MLP (6 tensors) every one of the 63 non-empty subsets is fine-tuned on each task and
//! seed, exactly as the study fine-tunes a selection: the realised front of test accuracy
//! against trainable parameters is the oracle. For the transformer (39 tensors) the reference
//! front is made of the fixed rules, random subsets and every value model's own picks: a lower
//! bound on the true front, so its regrets are lower bounds too.
//!
//! Each value model predicts the loss reduction of every subset from what it measured before
//! training; the benchmark reports
//!
//! - the **rank correlation** (Spearman) over the subsets between the prediction and the
//!   realised reduction of the training-split loss;
//! - the **regret** at each budget: the best realised accuracy among the subsets within the
//!   budget minus the realised accuracy of the subset the value model rates best within it;
//! - the **cost** of the values, in training-step equivalents (one forward and one backward
//!   pass on one batch of 64 images).
//!
//! The value models (`docs/algorithm.md`, sections 6 and 7):
//!
//! - `one-step`: the paper's additive `sum v_k`, `v_k = b_k^2 / 2a_k` along Adam's first step
//!   (exact gradient probe), unreliable groups worth 0;
//! - `one-step-sf`: the same with `|a_k|` ("saddle-free": a negative curvature does not drop
//!   the group), each `v_k` capped at the loss;
//! - `newton`: each group's Newton decrement within its own subspace,
//!   `1/2 G_k^T H_kk^-1 G_k` (`NewtonProbe`, 4 conjugate-gradient steps), summed;
//! - `joint`: `1/2 b_S^T |A_S|^-1 b_S` with per-group rates over the cross-group curvature
//!   (absolute eigenvalues, damped by `1e-3` of the diagonal), capped at the loss;
//! - `joint-shared`: one rate for the whole subset, `(sum b)^2 / (2 sum A)`, capped;
//! - `gradnorm` and `fisher`: the literature's one-backward scores, summed;
//! - `allocation`: `ShortRun`'s first-order loss-change allocation of one short Adam run of
//!   every group together (`-sum_t G_k(t) . dw_k(t)`, Lan et al. 2019), on one fresh batch of
//!   the selection stream per step, summed (the library's default until the trapezoid rule
//!   below replaced it);
//! - `probe-run`: the one-step values re-estimated at the start, middle and end of such a
//!   short run (the paper's probe run), summed over the checkpoints;
//! - `short-runs`: the expensive reference, `ShortRun` with each group trained alone for the
//!   short run, its drop of the run batches' mean loss, summed;
//! - `gradnorm+sf`: a combination, gradient norm plus the saddle-free one-step value, each
//!   divided by its sum over all groups (a value that sees capacity plus one that sees the
//!   small groups' curvature);
//! - `allocation-fit`: the allocation of a run of only the groups that fit the budget, one
//!   run per budget (`Candidates::WithinBudget` in the selector);
//! - `trapezoid`: the allocation by the trapezoid rule, `1/2 (G_k(t) + G_k(t+1)) . dw_k(t)`
//!   (`ShortRunValue::Trapezoid`, the library's default), which charges an overshooting step
//!   its curvature cost;
//! - `trapezoid-held`: the same run, each step credited with the gradient of the mean loss of
//!   4 held-out batches of the training split (`ShortRun::held_out`): the allocation of the
//!   held-out loss change.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use adapeft::Baseline;
use adapeft::importance::Grouping;
use adapeft::importance::{
    Curvature, Direction, Estimator, GradientProbe, NewtonProbe, Scores, ShortRun, ShortRunValue,
    discover,
};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use adapeft_studies::outputs;
use adapeft_studies::progress::Progress;
use adapeft_studies::stats::mean_std;

use crate::data::Split;
use crate::methods::{LR_SUBSET, Method, count_trainable, with_trainable};
use crate::models::{Batch, Classifier, ModelKind, ModelRun, ModelVisitor};
use crate::tasks::Task;
use crate::train::{TaskData, accuracy, pretrain, train};

/// What the oracle benchmark runs.
#[derive(Debug, Clone)]
pub struct OracleConfig {
    pub seeds: Vec<u64>,
    /// Adam steps of every fine-tuning run (as the study).
    pub steps: usize,
    /// Steps of the short runs behind `allocation`, `probe-run` and `short-runs`.
    pub short_steps: usize,
    /// Fraction budgets at which regrets are reported.
    pub budgets: Vec<f64>,
    /// Batches of 64 images the values are measured on (as the study).
    pub selection_batches: usize,
    /// Random subsets of the transformer's tensors in its reference front, per task and seed.
    pub transformer_subsets: usize,
    /// Seeds of the transformer (its runs cost ten times the MLP's); 0 skips it.
    pub transformer_seeds: usize,
    /// Neighbours trained per distinct best subset in the transformer's local search (one
    /// round: from the subset with the largest realised loss reduction within each budget, add,
    /// drop or swap one tensor); 0 skips it.
    pub local_search: usize,
    pub tasks: Vec<Task>,
}

impl OracleConfig {
    pub fn full() -> Self {
        OracleConfig {
            seeds: vec![0, 1, 2],
            steps: 300,
            short_steps: 15,
            budgets: vec![0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            selection_batches: 4,
            transformer_subsets: 60,
            transformer_seeds: 3,
            local_search: 4,
            tasks: Task::TARGETS.to_vec(),
        }
    }

    pub fn quick() -> Self {
        OracleConfig {
            seeds: vec![0],
            steps: 40,
            short_steps: 4,
            budgets: vec![0.01, 0.05, 0.2],
            selection_batches: 2,
            transformer_subsets: 6,
            transformer_seeds: 1,
            local_search: 1,
            tasks: Task::TARGETS.to_vec(),
        }
    }
}

/// The value models, in report order.
pub const VALUE_MODELS: [&str; 14] = [
    "one-step",
    "one-step-sf",
    "newton",
    "joint",
    "joint-shared",
    "gradnorm",
    "fisher",
    "allocation",
    "probe-run",
    "short-runs",
    "gradnorm+sf",
    "allocation-fit",
    "trapezoid",
    "trapezoid-held",
];

/// How one value model predicts a subset's loss reduction.
enum Predictor {
    /// The sum of per-group values.
    Additive(Vec<f64>),
    /// Additive values measured once per budget (`(cap, values)`), and once without a budget
    /// (`all`, what the rank correlation sees).
    PerBudget {
        all: Vec<f64>,
        at: Vec<(u64, Vec<f64>)>,
    },
    /// The joint quadratic model over the cross-group curvature.
    Joint {
        b: Vec<f64>,
        a: Curvature,
        loss: f64,
        shared_rate: bool,
    },
}

impl Predictor {
    fn predict(&self, subset: &[usize]) -> f64 {
        self.predict_at(subset, None)
    }

    /// The prediction when choosing within `cap` parameters (`None`: no budget).
    fn predict_at(&self, subset: &[usize], cap: Option<u64>) -> f64 {
        let sum = |v: &[f64]| subset.iter().map(|&k| v[k]).sum();
        match self {
            Predictor::Additive(v) => sum(v),
            Predictor::PerBudget { all, at } => {
                match cap.and_then(|c| at.iter().find(|x| x.0 == c)) {
                    Some((_, v)) => sum(v),
                    None => sum(all),
                }
            }
            Predictor::Joint {
                b,
                a,
                loss,
                shared_rate,
            } => {
                let value = if *shared_rate {
                    let sb: f64 = subset.iter().map(|&i| b[i]).sum();
                    let sa: f64 = a.restrict(subset).iter().sum();
                    if sa > 0.0 {
                        sb * sb / (2.0 * sa)
                    } else {
                        *loss
                    }
                } else {
                    a.joint_value(b, subset)
                };
                value.clamp(0.0, *loss)
            }
        }
    }
}

/// Spearman's rank correlation (average ranks for ties).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0;
            for &t in &idx[i..=j] {
                r[t] = avg;
            }
            i = j + 1;
        }
        r
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    if vx == 0.0 || vy == 0.0 {
        0.0
    } else {
        cov / (vx * vy).sqrt()
    }
}

/// One subset fine-tuned on one (model, task, seed).
#[derive(Debug, Clone)]
pub struct SubsetRun {
    pub model: ModelKind,
    pub task: Task,
    pub seed: u64,
    /// Group indices (per-tensor groups, the model's visiting order).
    pub subset: Vec<usize>,
    pub params: u64,
    pub accuracy: f64,
    /// Training-split loss before minus after.
    pub reduction: f64,
    /// Each value model's prediction, in [`VALUE_MODELS`] order.
    pub predicted: Vec<f64>,
}

/// The values of one (model, task, seed) and what they cost.
struct Values {
    predictors: Vec<Predictor>,
    /// Training-step equivalents per value model.
    cost: Vec<f64>,
}

/// One row of the regret table.
#[derive(Debug, Clone)]
pub struct Regret {
    pub model: ModelKind,
    pub task: Task,
    pub seed: u64,
    pub budget: f64,
    pub value_model: &'static str,
    pub oracle: f64,
    pub picked: f64,
    pub picked_params: u64,
}

/// Everything the benchmark measured.
#[derive(Debug, Default)]
pub struct OracleOutcome {
    pub runs: Vec<SubsetRun>,
    pub regrets: Vec<Regret>,
    /// `(model, task, seed, value model, training-step equivalents)`.
    pub costs: Vec<(ModelKind, Task, u64, &'static str, f64)>,
    /// `(model, task, seed, fixed rule, accuracy, params)`: fixed rules that are subsets.
    pub rules: Vec<(ModelKind, Task, u64, String, f64, u64)>,
    pub group_names: HashMap<&'static str, Vec<String>>,
}

/// The mean cross-entropy over the task's whole training split.
fn train_loss<M: Classifier>(model: &M, data: &TaskData) -> f64 {
    model.loss(&data.train_batch()).into_scalar::<f64>()
}

/// The probe run's checkpoints: one short run of every group together (burn's Adam at the
/// subset rate, one fresh batch of the selection stream per step), the models at its start,
/// middle and end.
fn probe_run_checkpoints<M: Classifier>(
    base: &M,
    data: &TaskData,
    steps: usize,
    seed: u64,
) -> Vec<M> {
    let mut model = with_trainable(base.clone(), |_| true);
    let mut optim = AdamConfig::new().init();
    let mut sampler = crate::train::Sampler::new(data.n_train(), seed);
    let mut checkpoints = vec![model.clone()];
    for step in 0..steps {
        let batch = data.batch(&sampler.next_batch(crate::train::BATCH_SIZE));
        let grads = GradientsParams::from_grads(model.loss(&batch).backward(), &model);
        model = optim.step(LR_SUBSET, model, grads);
        if step + 1 == steps / 2 {
            checkpoints.push(model.clone());
        }
    }
    checkpoints.push(model);
    checkpoints
}

/// An estimation's cost in training-step equivalents: its backward passes (each comes with a
/// forward pass), plus its other forward passes at a third of a step each.
fn steps_of(scores: &Scores) -> f64 {
    let c = scores.cost;
    c.backward_passes as f64 + (c.forward_passes - c.backward_passes) as f64 / 3.0
}

fn exact_probe() -> GradientProbe {
    GradientProbe {
        direction: Direction::adam(),
        ..GradientProbe::exact()
    }
}

fn objective<M: Classifier>(model: &M, batch: &Batch) -> Tensor<1> {
    model.loss(batch)
}

/// Every value model's predictor for one (model, task, seed).
fn measure_values<M: Classifier>(
    base: &M,
    data: &TaskData,
    batches: &[Batch],
    config: &OracleConfig,
    seed: u64,
    caps: &[u64],
) -> Result<Values, Box<dyn std::error::Error>> {
    let groups = Grouping::PerTensor.group(discover(base))?;
    let k = groups.len();
    let nb = batches.len() as f64;
    let one_step = exact_probe().estimate_with(base, batches, &groups, &objective::<M>)?;
    let loss = one_step
        .loss
        .expect("the gradient probe evaluates the loss");
    let a = one_step
        .curvature()
        .expect("the exact probe returns the curvature")
        .clone();
    let b: Vec<f64> = one_step.groups.iter().map(|s| s.b).collect();
    let probe_cost = nb * (1.0 + 2.0 * k as f64);
    let paper: Vec<f64> = one_step.groups.iter().map(|s| s.value).collect();
    let saddle_free: Vec<f64> = one_step
        .groups
        .iter()
        .map(|s| {
            if s.b > 0.0 && s.a != 0.0 {
                (s.b * s.b / (2.0 * s.a.abs())).min(loss)
            } else {
                0.0
            }
        })
        .collect();
    let newton = NewtonProbe::new().estimate_with(base, batches, &groups, &objective::<M>)?;
    let gradnorm = Baseline::GradientNorm.estimate_with(base, batches, &groups, &objective::<M>)?;
    let fisher = Baseline::Fisher.estimate_with(base, batches, &groups, &objective::<M>)?;
    let values = |s: &Scores| {
        s.groups
            .iter()
            .map(|g| g.value.max(0.0))
            .collect::<Vec<_>>()
    };

    // The library's ShortRun over one fresh batch of the selection stream per step (the
    // selection batches are the first of them): the loss-change allocation of one run of every
    // group, and each group's own run.
    let run_batches = data.batches(config.short_steps.max(batches.len()), 1_000 + seed);
    let short_run = ShortRun {
        steps: config.short_steps,
        learning_rate: LR_SUBSET,
        value: ShortRunValue::Allocation,
        ..Default::default()
    };
    let allocation = short_run.estimate_with(base, &run_batches, &groups, &objective::<M>)?;
    let alone = ShortRun {
        value: ShortRunValue::Alone,
        ..short_run.clone()
    }
    .estimate_with(base, &run_batches, &groups, &objective::<M>)?;
    // The same run's allocation by the trapezoid rule.
    let trapezoid = ShortRun {
        value: ShortRunValue::Trapezoid,
        ..short_run.clone()
    }
    .estimate_with(base, &run_batches, &groups, &objective::<M>)?;
    // The same run credited on 4 held-out batches (other rows of the training split).
    let mut with_held = run_batches.clone();
    with_held.extend(data.batches(4, 2_000 + seed));
    let trapezoid_held = ShortRun {
        value: ShortRunValue::Trapezoid,
        held_out: 4,
        ..short_run.clone()
    }
    .estimate_with(base, &with_held, &groups, &objective::<M>)?;
    // The allocation of a run of only the groups that fit the budget, once per budget (one run
    // per distinct set of candidates).
    let mut fit_at: Vec<(u64, Vec<f64>)> = Vec::new();
    let mut fit_cost = 0.0;
    let mut runs: Vec<(Vec<usize>, Vec<f64>)> = Vec::new();
    for &cap in caps {
        let keep: Vec<usize> = (0..k)
            .filter(|&i| groups.groups()[i].numel <= cap)
            .collect();
        if keep.is_empty() {
            fit_at.push((cap, vec![0.0; k]));
            continue;
        }
        if let Some((_, v)) = runs.iter().find(|(s, _)| *s == keep) {
            fit_at.push((cap, v.clone()));
            continue;
        }
        let restricted = groups.subset(&keep);
        let s = short_run.estimate_with(base, &run_batches, &restricted, &objective::<M>)?;
        fit_cost += steps_of(&s);
        let mut v = vec![0.0; k];
        for (&i, g) in keep.iter().zip(&s.groups) {
            v[i] = g.value.max(0.0);
        }
        runs.push((keep, v.clone()));
        fit_at.push((cap, v));
    }
    // The probe run: the one-step values at its checkpoints, summed.
    let checkpoints = probe_run_checkpoints(base, data, config.short_steps, 1_000 + seed);
    let mut probe_run = vec![0.0; k];
    for m in &checkpoints {
        let s = exact_probe().estimate_with(m, batches, &groups, &objective::<M>)?;
        for (acc, g) in probe_run.iter_mut().zip(&s.groups) {
            *acc += g.value;
        }
    }
    let short = config.short_steps as f64;
    let scaled = |v: &[f64]| {
        let total: f64 = v.iter().sum();
        v.iter()
            .map(|x| if total > 0.0 { x / total } else { 0.0 })
            .collect::<Vec<f64>>()
    };
    let combined: Vec<f64> = scaled(&values(&gradnorm))
        .iter()
        .zip(scaled(&saddle_free))
        .map(|(g, s)| g + s)
        .collect();
    Ok(Values {
        predictors: vec![
            Predictor::Additive(paper),
            Predictor::Additive(saddle_free),
            Predictor::Additive(values(&newton)),
            Predictor::Joint {
                b: b.clone(),
                a: a.clone(),
                loss,
                shared_rate: false,
            },
            Predictor::Joint {
                b,
                a,
                loss,
                shared_rate: true,
            },
            Predictor::Additive(values(&gradnorm)),
            Predictor::Additive(values(&fisher)),
            Predictor::Additive(values(&allocation)),
            Predictor::Additive(probe_run),
            Predictor::Additive(values(&alone)),
            Predictor::Additive(combined),
            Predictor::PerBudget {
                all: values(&allocation),
                at: fit_at,
            },
            Predictor::Additive(values(&trapezoid)),
            Predictor::Additive(values(&trapezoid_held)),
        ],
        cost: vec![
            probe_cost,
            probe_cost,
            steps_of(&newton),
            probe_cost,
            probe_cost,
            nb,
            nb,
            steps_of(&allocation),
            short + checkpoints.len() as f64 * probe_cost,
            steps_of(&alone),
            probe_cost + nb,
            fit_cost,
            steps_of(&trapezoid),
            steps_of(&trapezoid_held),
        ],
    })
}

/// All non-empty subsets of `k` groups (for small `k`), or the fixed rules plus random ones.
fn candidate_subsets(
    k: usize,
    rules: &[Vec<usize>],
    random: usize,
    rng: &mut StdRng,
) -> Vec<Vec<usize>> {
    if k <= 10 {
        return (1u32..(1 << k))
            .map(|mask| (0..k).filter(|&i| mask & (1 << i) != 0).collect())
            .collect();
    }
    let mut out: Vec<Vec<usize>> = rules.iter().filter(|r| !r.is_empty()).cloned().collect();
    while out.len() < rules.len() + random {
        // Inclusion probabilities spread over two decades, so that every budget gets subsets.
        let p = 10f64.powf(rng.random_range(-1.7..-0.3));
        let s: Vec<usize> = (0..k).filter(|_| rng.random::<f64>() < p).collect();
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Runs the benchmark on both models.
pub fn run(
    config: &OracleConfig,
    split: &Split,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<OracleOutcome, Box<dyn std::error::Error>> {
    let device = Device::flex().autodiff();
    let mut outcome = OracleOutcome::default();
    for kind in ModelKind::STUDY {
        if matches!(kind, ModelKind::Transformer { .. }) && config.transformer_seeds == 0 {
            continue;
        }
        kind.visit(OracleModel {
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

/// The benchmark on one model: pretrain it, then every task, seed and subset.
type OracleModel<'a> = ModelRun<'a, OracleConfig, OracleOutcome>;

impl ModelVisitor for OracleModel<'_> {
    type Output = Result<(), Box<dyn std::error::Error>>;

    fn visit<M: Classifier>(self, kind: ModelKind, fresh: impl Fn(&Device) -> M) -> Self::Output {
        let OracleModel {
            config,
            split,
            cache_dir,
            device,
            progress,
            outcome,
        } = self;
        let name = kind.name();
        let base = pretrain(kind, fresh, split, cache_dir, device, progress)?.model;
        let params = discover(&base);
        let sizes: Vec<u64> = params.iter().map(|p| p.numel).collect();
        let paths: Vec<String> = params.iter().map(|p| p.path.clone()).collect();
        let total: u64 = sizes.iter().sum();
        let k = paths.len();
        outcome.group_names.insert(name, paths.clone());
        let rule_subsets: Vec<(String, Vec<usize>)> =
            [Method::Head, Method::BitFit, Method::LayerNorm]
                .into_iter()
                .filter(|m| *m != Method::LayerNorm || kind.has_norms())
                .map(|m| {
                    let rule = m.rule().expect("a fixed rule");
                    (m.to_string(), (0..k).filter(|&i| rule(&paths[i])).collect())
                })
                .collect();
        let seeds: Vec<u64> = if k <= 10 {
            config.seeds.clone()
        } else {
            config
                .seeds
                .iter()
                .copied()
                .take(config.transformer_seeds)
                .collect()
        };

        for &task in &config.tasks {
            let data = TaskData::new(split, task, device);
            for &seed in &seeds {
                let start = Instant::now();
                let batches = data.batches(config.selection_batches, 1_000 + seed);
                let budgets: Vec<u64> = config
                    .budgets
                    .iter()
                    .map(|f| (f * total as f64).floor() as u64)
                    .collect();
                let values = measure_values(&base, &data, &batches, config, seed, &budgets)?;
                let mut rng = StdRng::seed_from_u64(77 + seed);
                let rules: Vec<Vec<usize>> = rule_subsets.iter().map(|(_, s)| s.clone()).collect();
                let mut subsets =
                    candidate_subsets(k, &rules, config.transformer_subsets, &mut rng);
                // Every value model's own pick at every budget is trained too.
                let size = |s: &[usize]| s.iter().map(|&i| sizes[i]).sum::<u64>();
                let mut picks = Vec::new();
                for p in &values.predictors {
                    for &cap in &budgets {
                        if let Some(s) = best_within(k, &sizes, cap, |s| p.predict_at(s, Some(cap)))
                        {
                            picks.push(s);
                        }
                    }
                }
                for s in picks {
                    if !subsets.contains(&s) {
                        subsets.push(s);
                    }
                }
                let before = train_loss(&base, &data);
                let bar = progress.bar(
                    (subsets.len() * config.steps) as u64,
                    &format!("{name} {} s{seed}", task.name()),
                );
                let run_subset = |subset: Vec<usize>| {
                    let chosen: Vec<&str> = subset.iter().map(|&i| paths[i].as_str()).collect();
                    device.seed(seed);
                    let model = with_trainable(base.clone(), |p| chosen.contains(&p));
                    debug_assert_eq!(count_trainable(&model).0, size(&subset));
                    let (model, _) =
                        train(model, M::loss, &data, config.steps, LR_SUBSET, seed, &bar);
                    let predicted = values
                        .predictors
                        .iter()
                        .map(|p| p.predict(&subset))
                        .collect();
                    SubsetRun {
                        model: kind,
                        task,
                        seed,
                        params: size(&subset),
                        accuracy: accuracy(&model, &data),
                        reduction: before - train_loss(&model, &data),
                        subset,
                        predicted,
                    }
                };
                let mut cell: Vec<SubsetRun> = subsets.into_iter().map(&run_subset).collect();
                // The transformer's local search on realised loss, one round: neighbours of the
                // subset with the largest realised reduction within each budget, each within the
                // smallest budget its start fits.
                if k > 10 && config.local_search > 0 {
                    let mut extra: Vec<Vec<usize>> = Vec::new();
                    for &cap in &budgets {
                        let Some(start) = cell
                            .iter()
                            .filter(|r| r.params <= cap)
                            .max_by(|x, y| x.reduction.total_cmp(&y.reduction))
                        else {
                            continue;
                        };
                        for n in neighbours(&start.subset, k, config.local_search, &mut rng) {
                            if size(&n) <= cap
                                && !cell.iter().any(|r| r.subset == n)
                                && !extra.contains(&n)
                            {
                                extra.push(n);
                            }
                        }
                    }
                    bar.inc_length((extra.len() * config.steps) as u64);
                    cell.extend(extra.into_iter().map(&run_subset));
                }
                bar.finish_and_clear();
                for (rule, s) in &rule_subsets {
                    if let Some(r) = cell.iter().find(|r| &r.subset == s) {
                        outcome
                            .rules
                            .push((kind, task, seed, rule.clone(), r.accuracy, r.params));
                    }
                }
                for (m, vm) in VALUE_MODELS.iter().enumerate() {
                    outcome.costs.push((kind, task, seed, vm, values.cost[m]));
                    for (&f, &cap) in config.budgets.iter().zip(&budgets) {
                        let oracle = cell
                            .iter()
                            .filter(|r| r.params <= cap)
                            .map(|r| r.accuracy)
                            .fold(0.0, f64::max);
                        // The value model's pick among the trained subsets within the budget
                        // (for the MLP all of them; for the transformer its own pick is among them).
                        let at =
                            |r: &SubsetRun| values.predictors[m].predict_at(&r.subset, Some(cap));
                        let pick = cell
                            .iter()
                            .filter(|r| r.params <= cap)
                            .max_by(|x, y| at(x).total_cmp(&at(y)).then(y.params.cmp(&x.params)));
                        let (picked, picked_params) = pick
                            .filter(|r| at(r) > 0.0)
                            .map(|r| (r.accuracy, r.params))
                            .unwrap_or((0.0, 0));
                        outcome.regrets.push(Regret {
                            model: kind,
                            task,
                            seed,
                            budget: f,
                            value_model: vm,
                            oracle,
                            picked,
                            picked_params,
                        });
                    }
                }
                progress.log(format!(
                    "{name} / {} / seed {seed}: {} subsets in {:.1} s",
                    task.name(),
                    cell.len(),
                    start.elapsed().as_secs_f64()
                ));
                outcome.runs.extend(cell);
            }
        }
        Ok(())
    }
}

/// Up to `count` random neighbours of `subset` among `k` groups: one group added, one dropped,
/// or one swapped for another (the local search's moves).
fn neighbours(subset: &[usize], k: usize, count: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    let outside: Vec<usize> = (0..k).filter(|i| !subset.contains(i)).collect();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for _ in 0..count * 8 {
        if out.len() == count {
            break;
        }
        let mut s = subset.to_vec();
        match rng.random_range(0..3) {
            0 if !outside.is_empty() => s.push(outside[rng.random_range(0..outside.len())]),
            1 if s.len() > 1 => {
                s.remove(rng.random_range(0..s.len()));
            }
            2 if !outside.is_empty() => {
                let at = rng.random_range(0..s.len());
                s[at] = outside[rng.random_range(0..outside.len())];
            }
            _ => continue,
        }
        s.sort_unstable();
        if s != subset && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The subset with the largest `value` within `cap` parameters: exhaustive for up to 16
/// groups, otherwise greedy by marginal value per parameter (every value model's own pick).
fn best_within(
    k: usize,
    sizes: &[u64],
    cap: u64,
    value: impl Fn(&[usize]) -> f64,
) -> Option<Vec<usize>> {
    let size = |s: &[usize]| s.iter().map(|&i| sizes[i]).sum::<u64>();
    if k <= 16 {
        return (1u32..(1 << k))
            .map(|mask| (0..k).filter(|&i| mask & (1 << i) != 0).collect::<Vec<_>>())
            .filter(|s| size(s) <= cap)
            .map(|s| (value(&s), s))
            .filter(|(v, _)| *v > 0.0)
            .max_by(|x, y| x.0.total_cmp(&y.0).then(size(&y.1).cmp(&size(&x.1))))
            .map(|(_, s)| s);
    }
    let mut chosen: Vec<usize> = Vec::new();
    let mut current = 0.0;
    loop {
        let used = size(&chosen);
        let best = (0..k)
            .filter(|i| !chosen.contains(i) && used + sizes[*i] <= cap)
            .map(|i| {
                let mut s = chosen.clone();
                s.push(i);
                s.sort_unstable();
                let gain = value(&s) - current;
                (gain / sizes[i].max(1) as f64, gain, s)
            })
            .filter(|(_, gain, _)| *gain > 0.0)
            .max_by(|x, y| x.0.total_cmp(&y.0));
        match best {
            Some((_, gain, s)) => {
                current += gain;
                chosen = s;
            }
            None => break,
        }
    }
    (!chosen.is_empty()).then_some(chosen)
}

/// The report: rank correlations, regrets and costs, in Markdown.
pub fn markdown(config: &OracleConfig, outcome: &OracleOutcome, command: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# adapeft digits study: the oracle benchmark\n");
    let _ = writeln!(md, "Command: `{command}`\n");
    let _ = writeln!(
        md,
        "{} Adam steps per fine-tuning run at the subset rate; short runs of {} steps; {} selection batch(es) of 64; MLP seeds {:?} (all 63 subsets), transformer {} seed(s) ({} random subsets + fixed rules + every value model's picks).\n",
        config.steps,
        config.short_steps,
        config.selection_batches,
        config.seeds,
        config.transformer_seeds,
        config.transformer_subsets
    );
    for kind in ModelKind::STUDY {
        let runs: Vec<&SubsetRun> = outcome.runs.iter().filter(|r| r.model == kind).collect();
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {}\n", kind.name());
        let _ = writeln!(
            md,
            "Spearman rank correlation between each value model's prediction and the realised reduction of the training loss, over the trained subsets (mean ± std over seeds):\n"
        );
        let _ = write!(md, "| value model |");
        for t in &config.tasks {
            let _ = write!(md, " {} |", t.name());
        }
        let _ = writeln!(md, " cost (step equivalents) |");
        let _ = write!(md, "|---|");
        for _ in &config.tasks {
            let _ = write!(md, "---:|");
        }
        let _ = writeln!(md, "---:|");
        for (m, vm) in VALUE_MODELS.iter().enumerate() {
            let _ = write!(md, "| {vm} |");
            for &t in &config.tasks {
                let mut per_seed = Vec::new();
                for seed in seeds_of(&runs, t) {
                    let cell: Vec<&&SubsetRun> = runs
                        .iter()
                        .filter(|r| r.task == t && r.seed == seed)
                        .collect();
                    let x: Vec<f64> = cell.iter().map(|r| r.predicted[m]).collect();
                    let y: Vec<f64> = cell.iter().map(|r| r.reduction).collect();
                    per_seed.push(spearman(&x, &y));
                }
                let (mean, std) = mean_std(&per_seed);
                let _ = write!(md, " {mean:.2} ± {std:.2} |");
            }
            let costs: Vec<f64> = outcome
                .costs
                .iter()
                .filter(|c| c.0 == kind && c.3 == *vm)
                .map(|c| c.4)
                .collect();
            let _ = writeln!(md, " {:.0} |", mean_std(&costs).0);
        }
        let _ = writeln!(
            md,
            "\nRegret (best realised test accuracy within the budget minus that of the value model's pick; mean over seeds; 0 is perfect):\n"
        );
        let _ = write!(md, "| task | budget | oracle |");
        for vm in VALUE_MODELS {
            let _ = write!(md, " {vm} |");
        }
        let _ = writeln!(md);
        let _ = write!(md, "|---|---:|---:|");
        for _ in VALUE_MODELS {
            let _ = write!(md, "---:|");
        }
        let _ = writeln!(md);
        let mut totals = vec![Vec::new(); VALUE_MODELS.len()];
        for &t in &config.tasks {
            for &f in &config.budgets {
                let rows: Vec<&Regret> = outcome
                    .regrets
                    .iter()
                    .filter(|r| r.model == kind && r.task == t && r.budget == f)
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let oracle: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.value_model == VALUE_MODELS[0])
                    .map(|r| r.oracle)
                    .collect();
                let _ = write!(
                    md,
                    "| {} | {}% | {:.3} |",
                    t.name(),
                    100.0 * f,
                    mean_std(&oracle).0
                );
                for (m, vm) in VALUE_MODELS.iter().enumerate() {
                    let regret: Vec<f64> = rows
                        .iter()
                        .filter(|r| r.value_model == *vm)
                        .map(|r| r.oracle - r.picked)
                        .collect();
                    let mean = mean_std(&regret).0;
                    totals[m].push(mean);
                    let _ = write!(md, " {mean:.3} |");
                }
                let _ = writeln!(md);
            }
        }
        let _ = write!(md, "| **mean** | | |");
        for t in &totals {
            let _ = write!(md, " **{:.3}** |", mean_std(t).0);
        }
        let _ = writeln!(md, "\n");
        let rules: Vec<String> = outcome
            .rules
            .iter()
            .filter(|r| r.0 == kind && r.2 == config.seeds[0])
            .map(|r| format!("{} / {}: {:.3} ({} params)", r.1.name(), r.3, r.4, r.5))
            .collect();
        if !rules.is_empty() {
            let _ = writeln!(
                md,
                "Fixed rules that are subsets (seed {}): {}\n",
                config.seeds[0],
                rules.join("; ")
            );
        }
    }
    md
}

/// What must hold of a finished benchmark: every number finite, every regret non-negative
/// (the oracle is the best of the trained subsets, and every pick is among them).
pub fn validate(outcome: &OracleOutcome) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.runs.is_empty() {
        problems.push("no subset was trained".to_string());
    }
    for r in &outcome.runs {
        if !r.accuracy.is_finite() || !r.reduction.is_finite() {
            problems.push(format!(
                "{} / {}: non-finite result",
                r.model.name(),
                r.task.name()
            ));
        }
        if r.predicted.iter().any(|p| !p.is_finite()) {
            problems.push(format!(
                "{} / {}: non-finite prediction",
                r.model.name(),
                r.task.name()
            ));
        }
    }
    for g in &outcome.regrets {
        if g.picked > g.oracle {
            problems.push(format!(
                "{} / {} / {}: a pick beats the oracle",
                g.model.name(),
                g.task.name(),
                g.value_model
            ));
        }
    }
    problems.dedup();
    problems
}

fn seeds_of(runs: &[&SubsetRun], task: Task) -> Vec<u64> {
    let mut s: Vec<u64> = runs
        .iter()
        .filter(|r| r.task == task)
        .map(|r| r.seed)
        .collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// Every regret, one CSV row each, with the pick's size.
pub fn write_regret_csv(
    path: &Path,
    outcome: &OracleOutcome,
) -> Result<(), Box<dyn std::error::Error>> {
    let header = [
        "model",
        "task",
        "seed",
        "budget",
        "value_model",
        "oracle_accuracy",
        "picked_accuracy",
        "picked_params",
    ];
    let rows = outcome.regrets.iter().map(|r| {
        [
            r.model.name().to_string(),
            r.task.name().to_string(),
            r.seed.to_string(),
            r.budget.to_string(),
            r.value_model.to_string(),
            format!("{:.4}", r.oracle),
            format!("{:.4}", r.picked),
            r.picked_params.to_string(),
        ]
    });
    outputs::write_csv(path, header, rows)
}

/// Every subset run, one CSV row each (subset as `+`-joined tensor paths).
pub fn write_csv(path: &Path, outcome: &OracleOutcome) -> Result<(), Box<dyn std::error::Error>> {
    let mut header = vec![
        "model".to_string(),
        "task".into(),
        "seed".into(),
        "subset".into(),
        "params".into(),
        "accuracy".into(),
        "realised_reduction".into(),
    ];
    header.extend(VALUE_MODELS.iter().map(|v| format!("predicted_{v}")));
    let rows = outcome.runs.iter().map(|r| {
        let names = &outcome.group_names[r.model.name()];
        let subset: Vec<&str> = r.subset.iter().map(|&i| names[i].as_str()).collect();
        let mut row = vec![
            r.model.name().to_string(),
            r.task.name().to_string(),
            r.seed.to_string(),
            subset.join("+"),
            r.params.to_string(),
            format!("{:.4}", r.accuracy),
            format!("{:.6}", r.reduction),
        ];
        row.extend(r.predicted.iter().map(|p| format!("{p:.6e}")));
        row
    });
    outputs::write_csv(path, header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_matches_hand_computed_values() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ranks (1, 2, 3, 4) against (2, 1, 4, 3): 1 - 6 * 4 / (4 * 15) = 0.6.
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[2.0, 1.0, 4.0, 3.0]) - 0.6).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn best_within_is_exhaustive_for_few_groups() {
        let sizes = [5, 4, 3];
        let v = [10.0, 7.0, 6.0];
        let pick = best_within(3, &sizes, 7, |s| s.iter().map(|&i| v[i]).sum()).unwrap();
        assert_eq!(pick, vec![1, 2]);
        assert!(best_within(3, &sizes, 2, |s| s.iter().map(|&i| v[i]).sum()).is_none());
    }
}
