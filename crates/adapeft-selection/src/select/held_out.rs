//! Held-out batches ([`HeldOut`]): the selection's recommended learning rate and the size
//! [`Budget::Auto`] takes, both from what short runs actually do on batches the estimator
//! never saw.

use std::collections::HashSet;

use adapeft_importance::{
    Cost, EstimateError, Grouping, Groups, LossFn, RunOptimizer, ShortRun, Trial, Trials, discover,
    held_out_trials,
};
use burn::module::Module;
use serde::{Deserialize, Serialize};

use super::{AdaPeftConfig, SelectError};
use crate::budget::Budget;
use crate::selection::Selection;

/// The last `batches` of the batches a selection is given are held out: the estimator never
/// sees them, and they judge short runs of the chosen subset at a few learning rates. Given
/// to [`AdaPeftConfig::with_held_out`]; what they said is
/// [`Selection::validation`](crate::Selection::validation).
///
/// - **A recommended learning rate**: the chosen subset (with the always-trained groups at
///   their own rate) is trained from the model's weights for `steps` steps at each of
///   `rates`; by default ([`RateRule::StepBelow`]) the rate tried just below the one whose
///   run ends with the lowest held-out loss is
///   [`Selection::recommended_learning_rate`](crate::Selection::recommended_learning_rate)
///   (none when no run lowered it). Short trials favour high rates, see [`RateRule`].
/// - **[`Budget::Auto`]**: the subsets the knapsack chooses at each of `auto_fractions` of the
///   model's parameters are tried the same way; `Auto` takes the smallest whose best held-out
///   loss reduction is at least `auto_tolerance` of the best any of them reached, and never
///   one whose runs all raised the held-out loss (then only the always-trained groups train,
///   or nothing). `Auto` needs held-out batches.
///
/// Cost: `steps` backward passes per rate and per subset tried, plus a forward pass of each
/// held-out batch per trial. For the defaults (5 rates of 15 steps) the recommended rate
/// costs 75 training steps, a quarter of a 300-step fine-tuning run; `Auto` tries up to 5
/// sizes, up to 375 steps. Fewer rates or steps cost proportionally less.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// How many of the batches given, at the end, are held out.
    pub batches: usize,
    /// The learning rates tried (default `1e-4, 3e-4, 1e-3, 3e-3, 1e-2`).
    pub rates: Vec<f64>,
    /// Steps of each trial run (default 15).
    pub steps: usize,
    /// The optimizer of the trial runs (default Adam with burn's defaults): use the one you
    /// fine-tune with.
    pub optimizer: RunOptimizer,
    /// The sizes `Auto` tries, as fractions of the model's parameters, besides the
    /// always-trained groups (default `0.001, 0.003, 0.01, 0.03, 0.1`).
    pub auto_fractions: Vec<f64>,
    /// `Auto` takes the smallest size whose held-out reduction is at least this fraction of
    /// the best one (default `0.9`).
    pub auto_tolerance: f64,
    /// Which tried rate is recommended (default [`RateRule::StepBelow`]; settings written
    /// before the rule existed read as [`RateRule::LowestLoss`], what they ran with).
    #[serde(default = "RateRule::before_rules")]
    pub rate_rule: RateRule,
}

/// Which of the rates tried on the held-out batches a selection recommends ([`HeldOut`]).
///
/// The trials are short (15 steps by default) and a training run is long: a rate that
/// lowers the held-out loss fastest in 15 steps is often too high for 200 (the short-horizon
/// bias of rate search). Measured on the MiniLM study (`docs/results.md`, the 18 AdaPEFT
/// selections of both tasks whose first seed was trained at every rate of `3e-4, 1e-3,
/// 3e-3` and judged on the validation split): the lowest-loss trial's rate was above the
/// rate validation picked in 12 and below it in 1; the rate one step below it averaged
/// 0.594 validation accuracy against 0.580 (nouns 0.720 against 0.691), and 0.598 for the
/// best of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RateRule {
    /// The rate whose run ended with the lowest held-out loss.
    LowestLoss,
    /// The next lower rate tried below [`RateRule::LowestLoss`]'s, when its run lowered
    /// the held-out loss too; [`RateRule::LowestLoss`]'s rate when it is the lowest tried or
    /// the rate below it did not lower the loss. The default.
    StepBelow,
}

impl RateRule {
    /// The rule of settings written before there was a choice.
    fn before_rules() -> Self {
        RateRule::LowestLoss
    }

    /// The recommended trial of `trials` (the lowest-loss one, or the step below it), if a
    /// run lowered the held-out loss.
    pub fn pick(self, trials: &Trials) -> Option<Trial> {
        let best = trials.best()?;
        match self {
            RateRule::LowestLoss => Some(best),
            RateRule::StepBelow => Some(
                trials
                    .trials
                    .iter()
                    .filter(|t| t.learning_rate < best.learning_rate)
                    .max_by(|a, b| a.learning_rate.total_cmp(&b.learning_rate))
                    .filter(|t| t.lowered())
                    .copied()
                    .unwrap_or(best),
            ),
        }
    }
}

impl std::fmt::Display for RateRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RateRule::LowestLoss => "the lowest held-out loss",
            RateRule::StepBelow => "one step below the lowest held-out loss",
        })
    }
}

impl HeldOut {
    /// The last `batches` batches held out, with the default rates, steps and sizes.
    pub fn last(batches: usize) -> Self {
        HeldOut {
            batches,
            rates: vec![1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
            steps: 15,
            optimizer: RunOptimizer::adam(),
            auto_fractions: vec![0.001, 0.003, 0.01, 0.03, 0.1],
            auto_tolerance: 0.9,
            rate_rule: RateRule::StepBelow,
        }
    }

    /// Sets which tried rate is recommended.
    pub fn with_rate_rule(mut self, rule: RateRule) -> Self {
        self.rate_rule = rule;
        self
    }

    /// Sets the rates tried.
    pub fn with_rates(mut self, rates: &[f64]) -> Self {
        self.rates = rates.to_vec();
        self
    }

    /// Sets the steps of each trial run.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// Sets the trial runs' optimizer.
    pub fn with_optimizer(mut self, optimizer: RunOptimizer) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// Sets the sizes `Auto` tries (fractions of the model's parameters).
    pub fn with_auto_fractions(mut self, fractions: &[f64]) -> Self {
        self.auto_fractions = fractions.to_vec();
        self
    }

    /// Sets `Auto`'s tolerance.
    pub fn with_auto_tolerance(mut self, tolerance: f64) -> Self {
        self.auto_tolerance = tolerance;
        self
    }

    /// Checks the settings against `given` batches (and, for `auto`, the sizes).
    fn validate(&self, given: usize, auto: bool) -> Result<(), SelectError> {
        let bad = |name: &'static str, value: String, reason: &'static str| {
            Err(SelectError::HeldOut {
                name,
                value,
                reason,
            })
        };
        if self.batches == 0 {
            return bad("batches", "0".into(), "hold out at least one batch");
        }
        if self.batches >= given {
            return bad(
                "batches",
                format!("{} of {given}", self.batches),
                "at least one batch must be left for the estimator",
            );
        }
        if self.rates.is_empty() {
            return bad("rates", "[]".into(), "try at least one rate");
        }
        if let Some(r) = self.rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return bad("rates", r.to_string(), "rates must be finite and positive");
        }
        if self.steps == 0 {
            return bad("steps", "0".into(), "a trial needs at least one step");
        }
        if let RunOptimizer::Adam {
            beta_1,
            beta_2,
            epsilon,
        } = self.optimizer
        {
            if let Some(b) = [beta_1, beta_2]
                .into_iter()
                .find(|b| !(0.0..1.0).contains(b))
            {
                return bad("optimizer", b.to_string(), "Adam's betas must be in [0, 1)");
            }
            if !(epsilon.is_finite() && epsilon > 0.0) {
                return bad(
                    "optimizer",
                    epsilon.to_string(),
                    "Adam's epsilon must be finite and positive",
                );
            }
        }
        if auto && self.auto_fractions.is_empty() {
            return bad(
                "auto_fractions",
                "[]".into(),
                "Budget::Auto needs a size to try",
            );
        }
        if let Some(f) = self
            .auto_fractions
            .iter()
            .find(|f| !(f.is_finite() && **f > 0.0 && **f <= 1.0))
        {
            return bad(
                "auto_fractions",
                f.to_string(),
                "fractions must be in (0, 1]",
            );
        }
        if !(self.auto_tolerance > 0.0 && self.auto_tolerance <= 1.0) {
            return bad(
                "auto_tolerance",
                self.auto_tolerance.to_string(),
                "must be in (0, 1]",
            );
        }
        Ok(())
    }

    fn run(&self) -> ShortRun {
        ShortRun::new()
            .with_steps(self.steps)
            .with_optimizer(self.optimizer)
    }
}

/// What the held-out batches said of a selection ([`HeldOut`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// How many batches were held out (the estimator saw the others).
    pub held_out_batches: usize,
    /// Steps of each trial run.
    pub steps: usize,
    /// The chosen subset's trials, one per rate (empty when nothing trains).
    pub trials: Vec<Trial>,
    /// The rate to train the subset at, by [`HeldOut::rate_rule`] (`None` when no run
    /// lowered the held-out loss, or nothing trains).
    pub learning_rate: Option<f64>,
    /// The sizes [`Budget::Auto`] tried, smallest first (empty for other budgets).
    pub auto: Vec<AutoCandidate>,
    /// What all the trials cost (not included in [`Selection::cost`], the estimator's).
    pub cost: Cost,
}

/// One size [`Budget::Auto`] tried.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AutoCandidate {
    /// Trainable parameters of the subset (always-trained groups included).
    pub params: u64,
    /// Its recommended rate, by [`HeldOut::rate_rule`] (`None`: no run lowered the held-out
    /// loss).
    pub learning_rate: Option<f64>,
    /// The held-out loss reduction of its best run (`None` when none lowered it).
    pub reduction: Option<f64>,
    /// Whether `Auto` took it.
    pub taken: bool,
}

impl AdaPeftConfig {
    /// The batches for the estimator and the held-out ones (none without [`HeldOut`]), the
    /// held-out ones checked by the model before anything runs ([`LossFn::check`], with
    /// their index among all the batches given).
    pub(super) fn split_held_out<'b, M, B, F>(
        &self,
        model: &M,
        batches: &'b [B],
        budget: Budget,
        loss: &F,
    ) -> Result<(&'b [B], &'b [B]), SelectError>
    where
        F: LossFn<M, B>,
    {
        let Some(h) = &self.held_out else {
            return Ok((batches, &[]));
        };
        h.validate(batches.len(), budget == Budget::Auto)?;
        let (train, held) = batches.split_at(batches.len() - h.batches);
        for (i, batch) in held.iter().enumerate() {
            loss.check(model, batch)
                .map_err(|reason| EstimateError::InvalidBatch {
                    batch: train.len() + i,
                    reason,
                })?;
        }
        Ok((train, held))
    }

    /// The trials of `selection`'s chosen subset on `model` (adapters attached as
    /// [`Selection::apply`] does), or `None` when nothing trains.
    fn trials<M, B, F>(
        &self,
        model: &M,
        (train, held): (&[B], &[B]),
        selection: &Selection,
        loss: &F,
    ) -> Result<Option<Tried>, SelectError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let h = self
            .held_out
            .as_ref()
            .expect("trials need held-out batches");
        if selection.is_empty() {
            return Ok(None);
        }
        let applied = selection.apply(model.clone());
        let chosen: HashSet<String> = selection.chosen_paths().into_iter().collect();
        let always: HashSet<String> = selection
            .chosen()
            .filter(|g| g.always)
            .flat_map(|g| g.trained_paths())
            .collect();
        let mut groups: Groups = Grouping::PerTensor.group(discover(&applied))?;
        groups.retain(|g, params| g.members.iter().all(|&m| chosen.contains(&params[m].path)));
        let own_rate = self.always.as_ref().and_then(|a| a.learning_rate());
        let mut rates: &[f64] = &h.rates;
        let mut rated = true;
        let own: [f64; 1];
        if let Some(rate) = own_rate {
            let at_own: Vec<usize> = (0..groups.len())
                .filter(|&g| {
                    let members = &groups.groups()[g].members;
                    members
                        .iter()
                        .all(|&m| always.contains(&groups.params()[m].path))
                })
                .collect();
            // Only groups at their own rate: every trial would be the same run, and no rate
            // of the grid is the one it ran at. One trial, no recommendation.
            if at_own.len() == groups.len() {
                own = [rate];
                rates = &own;
                rated = false;
            }
            groups = at_own
                .into_iter()
                .fold(groups, |groups, g| groups.with_learning_rate(g, rate));
        }
        let trials = held_out_trials(&applied, train, held, &groups, &h.run(), rates, loss)?;
        Ok(Some(Tried { trials, rated }))
    }

    /// Attaches the held-out verdict on `selection`'s subset: its trials and recommended
    /// rate (nothing without [`HeldOut`]).
    pub(super) fn validate_selection<M, B, F>(
        &self,
        model: &M,
        data: (&[B], &[B]),
        selection: Selection,
        loss: &F,
    ) -> Result<Selection, SelectError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let Some(h) = &self.held_out else {
            return Ok(selection);
        };
        let tried = self.trials(model, data, &selection, loss)?;
        let cost = tried.as_ref().map(|t| t.trials.cost).unwrap_or_default();
        Ok(selection.with_validation(validation(h, tried, Vec::new(), cost)))
    }

    /// [`Budget::Auto`]: the subsets `select_at(capacity)` chooses at each of the held-out
    /// settings' sizes, tried on the held-out batches; the smallest within the tolerance of
    /// the best held-out reduction, never one whose runs all raised the held-out loss.
    pub(super) fn select_auto<M, B, F>(
        &self,
        model: &M,
        data: (&[B], &[B]),
        (total, always): (u64, u64),
        select_at: impl Fn(u64) -> Result<Selection, SelectError>,
        loss: &F,
    ) -> Result<Selection, SelectError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let Some(h) = &self.held_out else {
            return Err(SelectError::AutoNeedsHeldOut);
        };
        // What trains in a selection: each chosen group with its LoRA rank, if any (the same
        // weights at another rank are another candidate).
        let trains = |s: &Selection| -> Vec<(String, Option<usize>)> {
            s.chosen()
                .map(|g| (g.score.name.clone(), g.lora.map(|o| o.rank)))
                .collect()
        };
        let mut tried: Vec<(Selection, Option<Tried>)> = Vec::new();
        let mut caps: Vec<u64> = h
            .auto_fractions
            .iter()
            .map(|f| always + (f * total as f64).floor() as u64)
            .collect();
        caps.sort_unstable();
        caps.dedup();
        for cap in caps {
            let selection = select_at(cap)?;
            let what = trains(&selection);
            if tried.iter().any(|(s, _)| trains(s) == what) {
                continue;
            }
            let t = self.trials(model, data, &selection, loss)?;
            tried.push((selection, t));
        }
        let reduction = |t: &Option<Tried>| t.as_ref().and_then(Tried::reduction);
        let best = tried
            .iter()
            .filter_map(|(_, t)| reduction(t))
            .fold(f64::NEG_INFINITY, f64::max);
        let taken = if best > 0.0 {
            tried
                .iter()
                .position(|(_, t)| reduction(t).is_some_and(|r| r >= h.auto_tolerance * best))
        } else {
            None
        };
        let candidates: Vec<AutoCandidate> = tried
            .iter()
            .enumerate()
            .map(|(i, (s, t))| AutoCandidate {
                params: s.trainable_params(),
                learning_rate: t.as_ref().and_then(|t| t.rate(h.rate_rule)),
                reduction: reduction(t),
                taken: taken == Some(i),
            })
            .collect();
        let mut cost = Cost::default();
        for t in tried.iter().filter_map(|(_, t)| t.as_ref()) {
            cost += t.trials.cost;
        }
        let (selection, tried) = match taken {
            Some(i) => tried.swap_remove(i),
            // No size lowered the held-out loss: only what must train (tried already when
            // it was one of the sizes).
            None => {
                let selection = select_at(always)?;
                let what = trains(&selection);
                match tried.iter().position(|(s, _)| trains(s) == what) {
                    Some(i) => tried.swap_remove(i),
                    None => {
                        let t = self.trials(model, data, &selection, loss)?;
                        if let Some(t) = &t {
                            cost += t.trials.cost;
                        }
                        (selection, t)
                    }
                }
            }
        };
        let params = selection.trainable_params();
        Ok(selection
            .with_budget(Budget::Auto, params)
            .with_validation(validation(h, tried, candidates, cost)))
    }
}

/// One subset's trials, and whether their rates are the rates it ran at (not when only
/// groups with a rate of their own train).
struct Tried {
    trials: Trials,
    rated: bool,
}

impl Tried {
    /// The best run's held-out loss reduction, if a run lowered the held-out loss.
    fn reduction(&self) -> Option<f64> {
        self.trials.best().and_then(|b| b.reduction())
    }

    /// The rate `rule` recommends, when the rates are the ones the subset ran at.
    fn rate(&self, rule: RateRule) -> Option<f64> {
        rule.pick(&self.trials)
            .filter(|_| self.rated)
            .map(|t| t.learning_rate)
    }
}

fn validation(
    h: &HeldOut,
    tried: Option<Tried>,
    auto: Vec<AutoCandidate>,
    cost: Cost,
) -> Validation {
    let learning_rate = tried.as_ref().and_then(|t| t.rate(h.rate_rule));
    Validation {
        held_out_batches: h.batches,
        steps: h.steps,
        trials: tried.map(|t| t.trials.trials).unwrap_or_default(),
        learning_rate,
        auto,
        cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trials at `(rate, after)`, all from a held-out loss of 1.
    fn trials(runs: &[(f64, Option<f64>)]) -> Trials {
        Trials {
            trials: runs
                .iter()
                .map(|&(learning_rate, after)| Trial {
                    learning_rate,
                    before: 1.0,
                    after,
                })
                .collect(),
            cost: Cost::default(),
        }
    }

    fn picked(rule: RateRule, runs: &[(f64, Option<f64>)]) -> Option<f64> {
        rule.pick(&trials(runs)).map(|t| t.learning_rate)
    }

    #[test]
    fn the_step_below_is_the_next_lower_rate_tried_when_its_run_lowered_the_loss() {
        use RateRule::{LowestLoss, StepBelow};
        // Given out of order: the lowest loss at 3e-3, the next lower rate tried is 1e-3.
        let runs = [
            (3e-3, Some(0.5)),
            (1e-4, Some(0.9)),
            (1e-2, Some(0.7)),
            (1e-3, Some(0.6)),
        ];
        assert_eq!(picked(LowestLoss, &runs), Some(3e-3));
        assert_eq!(picked(StepBelow, &runs), Some(1e-3));
        // The rate below did not lower the held-out loss (or diverged): the lowest loss's.
        for below in [Some(1.2), Some(1.0), None] {
            let runs = [(1e-3, below), (3e-3, Some(0.5))];
            assert_eq!(picked(StepBelow, &runs), Some(3e-3), "{below:?}");
        }
        // The lowest loss at the lowest rate tried: nothing below it.
        assert_eq!(
            picked(StepBelow, &[(1e-4, Some(0.4)), (1e-3, Some(0.6))]),
            Some(1e-4)
        );
        // No run lowered the loss: no recommendation under either rule.
        let none = [(1e-4, Some(1.1)), (1e-3, None)];
        assert_eq!(picked(LowestLoss, &none), None);
        assert_eq!(picked(StepBelow, &none), None);
    }

    #[test]
    fn settings_written_before_the_rule_read_as_the_lowest_loss() {
        let mut json = serde_json::to_value(HeldOut::last(2)).unwrap();
        assert_eq!(HeldOut::last(2).rate_rule, RateRule::StepBelow);
        json.as_object_mut().unwrap().remove("rate_rule");
        let old: HeldOut = serde_json::from_value(json).unwrap();
        assert_eq!(old.rate_rule, RateRule::LowestLoss);
    }
}
