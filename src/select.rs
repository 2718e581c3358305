//! The selector: scores -> knapsack and Pareto front -> [`Selection`].

use adapeft_importance::{
    AnyEstimator, Collective, Cost, EstimateError, Estimator, GroupScore, Grouping, Groups,
    HostReduce, LossFn, ModelObjective, Objective, Quality, Scores, Shard, Unreliable, ValueModel,
    discover,
};
use adapeft_knapsack::{
    Class, FrontOptions, Item, ParetoFront, greedy_subset_front, maximize_subset,
    pareto_front_classes_with, pareto_front_with, solve, solve_classes,
};
use adapeft_selection::{
    Budget, BudgetOutcome, Candidates, GroupChoice, LoraOption, Selection, SelectionSettings,
};
use burn::module::{Lora, Module, ParamGroup};

use crate::error::AdaPeftError;

/// The entry point: `AdaPeft::select(&model, &batch, budget)`.
pub struct AdaPeft;

impl AdaPeft {
    /// Scores every parameter tensor of `model` on `batch` with the default configuration
    /// ([`AdaPeftConfig::new`]: a [`ShortRun`](adapeft_importance::ShortRun), the loss-change
    /// allocation of 15 Adam steps at `1e-2` on a copy of the model, by the trapezoid rule;
    /// one group per tensor) and picks the subset with the largest value within `budget` (an
    /// exact knapsack).
    ///
    /// The default comes from the digits study's oracle benchmark (`docs/digits/oracle.md`):
    /// the value with the lowest mean regret over both models (0.002 on the MLP, 0.082 on the
    /// transformer), lower than the paper's one-step quadratic value, gradient norm and
    /// Fisher on each, at 16 backward passes whatever the number of groups. Its run trains
    /// every group at once for 15 steps on `batch` (repeated): pass several batches through
    /// [`AdaPeftConfig::select`] for fresh data at every step, and set the run's learning rate
    /// to the one you fine-tune with (`ShortRun::new().with_learning_rate(..)`). The paper's
    /// estimators stay available ([`GradientProbe`](adapeft_importance::GradientProbe),
    /// [`ForwardProbe`](adapeft_importance::ForwardProbe),
    /// [`ProbeRun`](adapeft_importance::ProbeRun)).
    ///
    /// The model is not changed; apply the result with [`Selection::apply`].
    ///
    /// ```
    /// use adapeft::{AdaPeft, Budget, Objective};
    /// use burn::module::Module;
    /// use burn::nn::{Linear, LinearConfig};
    /// use burn::tensor::{Device, Distribution, Tensor};
    ///
    /// #[derive(Module, Debug)]
    /// struct Model {
    ///     hidden: Linear,
    ///     head: Linear,
    /// }
    ///
    /// struct Batch {
    ///     x: Tensor<2>,
    ///     y: Tensor<2>,
    /// }
    ///
    /// impl Objective<Batch> for Model {
    ///     fn loss(&self, batch: &Batch) -> Tensor<1> {
    ///         let h = self.hidden.forward(batch.x.clone()).tanh();
    ///         (self.head.forward(h) - batch.y.clone()).square().mean()
    ///     }
    /// }
    ///
    /// let device = Device::flex().autodiff();
    /// let model = Model {
    ///     hidden: LinearConfig::new(16, 32).init(&device),
    ///     head: LinearConfig::new(32, 4).init(&device),
    /// };
    /// let batch = Batch {
    ///     x: Tensor::random([64, 16], Distribution::Normal(0.0, 1.0), &device),
    ///     y: Tensor::random([64, 4], Distribution::Normal(0.0, 1.0), &device),
    /// };
    ///
    /// let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.3))?;
    /// println!("{}", selection.summary());
    /// assert!(selection.trainable_params() <= 212);
    /// let model = selection.apply(model); // only the chosen groups still require gradients
    /// # Ok::<(), adapeft::AdaPeftError>(())
    /// ```
    ///
    /// # Errors
    /// A model without float parameters, an invalid budget, or an estimator error (a loss that
    /// is not a scalar, or not finite).
    pub fn select<M, B>(model: &M, batch: &B, budget: Budget) -> Result<Selection, AdaPeftError>
    where
        M: Module + Objective<B>,
    {
        AdaPeftConfig::new().select(model, std::slice::from_ref(batch), budget)
    }
}

/// Everything a selection can be configured with, in burn's config style:
/// `AdaPeftConfig::new().with_estimator(..).with_grouping(..)`.
///
/// The estimators' own settings are burn `Config`s; this type is not one, because a
/// [`Grouping`] can hold compiled regular expressions and burn `ParamGroup`s, which have no
/// serialised form. It keeps the same shape by hand: `new()`, `with_*` setters and public
/// fields. What a selection was made with is recorded, typed, in
/// [`Selection::settings`](adapeft_selection::Selection::settings).
#[derive(Debug, Clone)]
pub struct AdaPeftConfig {
    /// The estimator (default: [`AnyEstimator::default`], a [`ShortRun`] with its defaults).
    ///
    /// [`ShortRun`]: adapeft_importance::ShortRun
    pub estimator: AnyEstimator,
    /// How parameters are grouped (default: [`Grouping::PerTensor`]).
    pub grouping: Grouping,
    /// Approximation of the Pareto front, in `[0, 1)` (default `0.01`): for every budget the
    /// front's best point is within `1 - epsilon` of the exact optimum. The exact front
    /// (`0`) grows to millions of points beyond about a hundred groups (1.1 million for 100
    /// realistic groups in the knapsack bench), while `0.01` keeps about a thousand points up
    /// to 10,000 groups. The chosen subset at a parameter, fraction or memory budget is
    /// always exact (it is solved directly); only [`Budget::Auto`] reads the front.
    pub front_epsilon: f64,
    /// How a subset is valued from the scores (default [`ValueModel::Additive`], the paper's
    /// knapsack). [`ValueModel::Joint`] needs an estimator that computes the cross-group
    /// curvature (a [`GradientProbe`](adapeft_importance::GradientProbe)); it is selected by
    /// [`maximize_subset`] and its front is the greedy chain ([`greedy_subset_front`]), so
    /// `front_epsilon` does not apply.
    pub value_model: ValueModel,
    /// Which groups are scored once the budget is known (default [`Candidates::All`]).
    /// [`Candidates::WithinBudget`] scores only the groups that fit the budget on their own;
    /// it applies to the additive value model at a parameter, fraction or memory budget (the
    /// joint value model and [`Budget::Auto`] score every group).
    pub candidates: Candidates,
    /// LoRA adapters offered besides each weight matrix (default: none). See
    /// [`AdaPeftConfig::with_lora_choices`].
    pub lora: Option<LoraChoices>,
}

impl Default for AdaPeftConfig {
    fn default() -> Self {
        AdaPeftConfig {
            estimator: AnyEstimator::default(),
            grouping: Grouping::PerTensor,
            front_epsilon: 0.01,
            value_model: ValueModel::Additive,
            candidates: Candidates::All,
            lora: None,
        }
    }
}

/// LoRA adapters offered to the selector: every targeted weight matrix becomes one
/// multiple-choice class "frozen / its full weight / a LoRA adapter of rank `r` for each of
/// `ranks`", of which the knapsack takes at most one option
/// ([`adapeft_knapsack::solve_classes`]).
///
/// # How an adapter is valued before it exists
/// The selector scores the adapters themselves, with the configured estimator, on copies of
/// the model: one copy per rank with burn's `Module::apply_lora(Lora::new(rank, alpha))` on
/// the targeted weights, in which each adapter (`<path>.lora`, factors `a` and `b`) replaces
/// its base weight as a group and every other group stays as it is. So an adapter's value is
/// measured the same way, in the same units (predicted or, for the default `ShortRun`,
/// realised loss reduction) and next to the same other groups as its full weight's, and
/// whatever the estimator knows about the optimizer (Adam's normalised steps, the learning
/// rate) applies to the adapter as it will train. A closed form from the full weight's
/// gradient was the alternative: at burn's initialisation (`B = 0`) the adapter's first
/// gradient is `dL/dB = s A^T G` and `dL/dA = 0`, so `E ||dL/dB||^2 = s^2 ||G||^2 / r` for
/// `A ~ N(0, 1/r)`; but that describes only the first step of plain gradient descent (the
/// `A` factor starts moving only after `B` has), not an Adam run, and it would value an
/// adapter without looking at the loss it is meant to reduce. The price is one more
/// estimation per rank (the selection's [`Cost`](adapeft_importance::Cost) adds them up).
///
/// An adapter is offered to a group only when the group is exactly one targeted 2-D weight
/// (per-tensor grouping, the default, does this for every weight); other groups keep the plain
/// take-or-leave choice. Only the additive value model supports choices.
#[derive(Debug, Clone)]
pub struct LoraChoices {
    /// The ranks offered (each one an option per weight).
    pub ranks: Vec<usize>,
    /// `alpha / rank`, the adapter's scale (default `1`: `alpha = rank`).
    pub scale: f64,
    /// The weights that get the options (default: every 2-D parameter, burn's `Lora`
    /// default). Use `ParamGroup::from_regex` to leave out, for example, embeddings.
    pub targets: ParamGroup,
}

impl LoraChoices {
    /// Adapters of `ranks` at scale 1 on every 2-D weight.
    pub fn new(ranks: &[usize]) -> Self {
        LoraChoices {
            ranks: ranks.to_vec(),
            scale: 1.0,
            targets: ParamGroup::all(),
        }
    }

    /// Sets the adapters' scale `alpha / rank`.
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// Sets the weights that get the options.
    pub fn with_targets(mut self, targets: ParamGroup) -> Self {
        self.targets = targets;
        self
    }
}

impl AdaPeftConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the estimator: a `GradientProbe`, a `ForwardProbe`, a `Baseline` or an
    /// [`AnyEstimator`].
    pub fn with_estimator(mut self, estimator: impl Into<AnyEstimator>) -> Self {
        self.estimator = estimator.into();
        self
    }

    /// Sets the grouping.
    pub fn with_grouping(mut self, grouping: Grouping) -> Self {
        self.grouping = grouping;
        self
    }

    /// Sets the front's approximation.
    pub fn with_front_epsilon(mut self, epsilon: f64) -> Self {
        self.front_epsilon = epsilon;
        self
    }

    /// Sets how subsets are valued.
    pub fn with_value_model(mut self, value_model: ValueModel) -> Self {
        self.value_model = value_model;
        self
    }

    /// Sets which groups are scored.
    pub fn with_candidates(mut self, candidates: Candidates) -> Self {
        self.candidates = candidates;
        self
    }

    /// Offers LoRA adapters of `choices.ranks` besides every targeted weight matrix: each
    /// becomes a class "frozen / full / rank `r`" of which at most one option is taken, the
    /// [`Selection`] records the choice per group ([`GroupChoice::lora`],
    /// [`Selection::lora_choices`]) and [`Selection::apply`] attaches the chosen adapters.
    ///
    /// ```
    /// use adapeft::{AdaPeftConfig, Budget, LoraChoices, Objective};
    /// use burn::module::Module;
    /// use burn::nn::{Linear, LinearConfig};
    /// use burn::tensor::{Device, Distribution, Tensor};
    ///
    /// #[derive(Module, Debug)]
    /// struct Model {
    ///     hidden: Linear,
    ///     head: Linear,
    /// }
    ///
    /// impl Objective<Tensor<2>> for Model {
    ///     fn loss(&self, x: &Tensor<2>) -> Tensor<1> {
    ///         (self.head.forward(self.hidden.forward(x.clone()).tanh()) - 1.0).square().mean()
    ///     }
    /// }
    ///
    /// let device = Device::flex().autodiff();
    /// let model = Model {
    ///     hidden: LinearConfig::new(32, 32).init(&device),
    ///     head: LinearConfig::new(32, 4).init(&device),
    /// };
    /// let x = Tensor::random([16, 32], Distribution::Normal(0.0, 1.0), &device);
    /// let selection = AdaPeftConfig::new()
    ///     .with_lora_choices(LoraChoices::new(&[1, 2]))
    ///     .select(&model, &[x], Budget::Params(200))?;
    /// assert!(selection.trainable_params() <= 200);
    /// // At most one option per weight; the chosen adapters are attached by `apply`.
    /// let model = selection.apply(model);
    /// # Ok::<(), adapeft::AdaPeftError>(())
    /// ```
    pub fn with_lora_choices(mut self, choices: LoraChoices) -> Self {
        self.lora = Some(choices);
        self
    }

    /// Selects with the model's own [`Objective`], the loss averaged over `batches`.
    ///
    /// # Errors
    /// As [`AdaPeft::select`], and an estimate error for an empty `batches`.
    pub fn select<M, B>(
        &self,
        model: &M,
        batches: &[B],
        budget: Budget,
    ) -> Result<Selection, AdaPeftError>
    where
        M: Module + Objective<B>,
    {
        self.select_with(model, batches, budget, &ModelObjective)
    }

    /// Selects on batches spread over several devices, one worker thread per [`Shard`],
    /// with the model's own [`Objective`]: each worker forks a clone of `model` to its
    /// shard's device and computes its part of the statistics; the parts are summed across
    /// the workers in f64 by a [`HostReduce`], so the selection is the one
    /// [`AdaPeftConfig::select`] makes on all the batches on one device, up to float
    /// rounding (see [`AnyEstimator::estimate_sharded`]). Every estimator is supported;
    /// the default [`ShortRun`](adapeft_importance::ShortRun) becomes a data-parallel run
    /// (at each step every worker takes one of its batches and the step averages the
    /// workers' gradients). The user's model is not touched.
    ///
    /// ```
    /// use adapeft::importance::Shard;
    /// use adapeft::{AdaPeftConfig, Budget, GradientProbe, Objective};
    /// use burn::nn::{Linear, LinearConfig};
    /// use burn::tensor::{Device, Tensor};
    ///
    /// #[derive(burn::module::Module, Debug)]
    /// struct Model { layer: Linear }
    /// impl Objective<Tensor<2>> for Model {
    ///     fn loss(&self, x: &Tensor<2>) -> Tensor<1> {
    ///         (self.layer.forward(x.clone()) - 1.0).square().mean()
    ///     }
    /// }
    /// let device = Device::flex();
    /// let model = Model { layer: LinearConfig::new(4, 2).init(&device) };
    /// // Two workers; on a machine with two GPUs, one device each.
    /// let shards: Vec<_> = [1.0f32, -0.5]
    ///     .iter()
    ///     .map(|&v| Shard::new(device.clone(), vec![Tensor::<2>::full([8, 4], v, &device)]))
    ///     .collect();
    /// let config = AdaPeftConfig::new().with_estimator(GradientProbe::exact());
    /// let selection = config.select_sharded(&model, &shards, Budget::Params(8)).unwrap();
    /// assert_eq!(selection.settings().batches, 2);
    /// ```
    ///
    /// # Errors
    /// As [`AdaPeftConfig::select`], an estimate error for no shard or an empty one, and
    /// [`AdaPeftError::LoraChoices`] when this configuration offers LoRA choices (not yet
    /// supported across devices).
    pub fn select_sharded<M, B>(
        &self,
        model: &M,
        shards: &[Shard<B>],
        budget: Budget,
    ) -> Result<Selection, AdaPeftError>
    where
        M: Module + Objective<B>,
        B: Sync,
    {
        let reduce = HostReduce::new(shards.len().max(1)).map_err(EstimateError::from)?;
        self.select_sharded_with(model, shards, budget, &ModelObjective, &reduce)
    }

    /// [`AdaPeftConfig::select_sharded`] with a loss closure and any [`Collective`]: a
    /// [`HostReduce`] of `shards.len()` workers, or a device collective (the `cuda`
    /// feature's `adapeft::distributed::DeviceReduce`).
    ///
    /// # Errors
    /// As [`AdaPeftConfig::select_sharded`], and an estimate error when `reduce` does not
    /// have one worker per shard.
    pub fn select_sharded_with<M, B, F>(
        &self,
        model: &M,
        shards: &[Shard<B>],
        budget: Budget,
        loss: &F,
        reduce: &dyn Collective,
    ) -> Result<Selection, AdaPeftError>
    where
        M: Module,
        B: Sync,
        F: LossFn<M, B> + Sync,
    {
        if self.lora.is_some() {
            return Err(AdaPeftError::LoraChoices(
                "select_sharded does not offer them yet (use select on one device)".into(),
            ));
        }
        let groups = self.groups(model)?;
        let capacity = budget.resolve(groups.total_params())?;
        let (scores, candidates) = self.score(&groups, capacity, |scored| {
            self.estimator
                .estimate_sharded(model, shards, scored, loss, reduce)
        })?;
        let batches = shards.iter().map(|s| s.batches.len()).sum();
        let no_options = vec![Vec::new(); groups.len()];
        self.choose(
            &groups,
            (scores, candidates),
            &no_options,
            budget,
            capacity,
            batches,
        )
    }

    /// Selects with a loss closure `loss(model, batch) -> Tensor<1>`.
    ///
    /// # Errors
    /// As [`AdaPeftConfig::select`].
    pub fn select_with<M, B, F>(
        &self,
        model: &M,
        batches: &[B],
        budget: Budget,
        loss: &F,
    ) -> Result<Selection, AdaPeftError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let groups = self.groups(model)?;
        // Resolve the budget once, before paying for the estimation.
        let capacity = budget.resolve(groups.total_params())?;
        if self.lora.is_some() && !self.value_model.is_additive() {
            return Err(AdaPeftError::LoraChoices(format!(
                "the {} value model does not support them (use the additive one)",
                self.value_model
            )));
        }
        let (mut scores, candidates) = self.score(&groups, capacity, |scored| {
            self.estimator.estimate_with(model, batches, scored, loss)
        })?;
        let options = match &self.lora {
            Some(choices) => {
                self.lora_options(model, batches, &groups, &mut scores, loss, choices)?
            }
            None => vec![Vec::new(); groups.len()],
        };
        self.choose(
            &groups,
            (scores, candidates),
            &options,
            budget,
            capacity,
            batches.len(),
        )
    }

    /// Scores the candidates with `estimate` (every group, or under
    /// [`Candidates::WithinBudget`] those that fit `capacity`), and which were scored.
    fn score(
        &self,
        groups: &Groups,
        capacity: Option<u64>,
        estimate: impl FnOnce(&Groups) -> Result<Scores, EstimateError>,
    ) -> Result<(Scores, Candidates), AdaPeftError> {
        let Some((keep, budget)) = self.scored_candidates(groups, capacity) else {
            return Ok((estimate(groups)?, Candidates::All));
        };
        let scored = Groups {
            params: groups.params.clone(),
            groups: keep.iter().map(|&g| groups.groups[g].clone()).collect(),
        };
        let scores = if keep.is_empty() {
            None
        } else {
            Some(estimate(&scored)?)
        };
        Ok((
            self.expand(groups, &keep, scores, budget),
            Candidates::WithinBudget,
        ))
    }

    /// The groups to score when not all of them are: `Some((indices, budget))` under
    /// [`Candidates::WithinBudget`] at a resolved budget that some group exceeds.
    fn scored_candidates(
        &self,
        groups: &Groups,
        capacity: Option<u64>,
    ) -> Option<(Vec<usize>, u64)> {
        let capacity = capacity?;
        if !self.value_model.is_additive() {
            return None;
        }
        let keep: Vec<usize> = (0..groups.len())
            .filter(|&g| {
                self.candidates
                    .admits(groups.groups[g].numel, Some(capacity))
            })
            .collect();
        (keep.len() < groups.len()).then_some((keep, capacity))
    }

    /// Scores of every group from the scores of the candidates `keep` (`None`: nothing was
    /// scored); the others are unscored, value 0, [`Unreliable::LargerThanBudget`]. The
    /// cross-group curvature, over the candidates only, is not kept.
    fn expand(
        &self,
        groups: &Groups,
        keep: &[usize],
        scores: Option<Scores>,
        budget: u64,
    ) -> Scores {
        let (estimator, cost, loss, mut scored) = match scores {
            Some(s) => (s.estimator, s.cost, s.loss, s.groups.into_iter()),
            None => (
                self.estimator.to_string(),
                Cost::default(),
                None,
                Vec::new().into_iter(),
            ),
        };
        let groups = groups
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                if keep.contains(&g) {
                    scored.next().expect("one score per candidate")
                } else {
                    GroupScore {
                        name: group.name.clone(),
                        params: group.numel,
                        b: 0.0,
                        a: 0.0,
                        value: 0.0,
                        unreliable: Some(Unreliable::LargerThanBudget { budget }),
                        quality: Quality::Exact,
                    }
                }
            })
            .collect();
        Scores {
            estimator,
            groups,
            cost,
            loss,
            curvature: None,
        }
    }

    /// Scores the LoRA adapters of `choices` on a LoRA-applied copy of `model` per rank (see
    /// [`LoraChoices`]): the options of each group, in `groups`' order. The copies' costs are
    /// added to `scores.cost`.
    fn lora_options<M, B, F>(
        &self,
        model: &M,
        batches: &[B],
        groups: &Groups,
        scores: &mut Scores,
        loss: &F,
        choices: &LoraChoices,
    ) -> Result<Vec<Vec<LoraOption>>, AdaPeftError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        if let Some(&bad) = choices.ranks.iter().find(|&&r| r == 0) {
            return Err(AdaPeftError::LoraChoices(format!(
                "rank {bad} is not positive"
            )));
        }
        if !(choices.scale.is_finite() && choices.scale > 0.0) {
            return Err(AdaPeftError::LoraChoices(format!(
                "scale {} is not positive and finite",
                choices.scale
            )));
        }
        // The group that is exactly one tensor, by that tensor's path.
        let single: std::collections::HashMap<&str, usize> = groups
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.members.len() == 1)
            .map(|(k, g)| (groups.params[g.members[0]].path.as_str(), k))
            .collect();
        let mut options = vec![Vec::new(); groups.len()];
        for &rank in &choices.ranks {
            let alpha = choices.scale * rank as f64;
            let lora = Lora::new(rank, alpha).set_param_group(choices.targets.clone());
            let adapted = model.clone().apply_lora(lora);
            let params = discover(&adapted);
            let bases: std::collections::HashSet<String> =
                params.iter().filter_map(|p| p.lora_of.clone()).collect();
            // Each adapter replaces its base weight as a group; the other groups stay.
            let mut adapted_groups = self.grouping.group(params)?;
            adapted_groups.groups.retain(|g| {
                !g.members
                    .iter()
                    .any(|&m| bases.contains(&adapted_groups.params[m].path))
            });
            let adapter_scores =
                self.estimator
                    .estimate_with(&adapted, batches, &adapted_groups, loss)?;
            scores.cost.forward_passes += adapter_scores.cost.forward_passes;
            scores.cost.backward_passes += adapter_scores.cost.backward_passes;
            scores.cost.seconds += adapter_scores.cost.seconds;
            for (group, score) in adapted_groups.groups.iter().zip(&adapter_scores.groups) {
                let member = &adapted_groups.params[group.members[0]];
                let Some(base) = &member.lora_of else {
                    continue;
                };
                let Some(&k) = single.get(base.as_str()) else {
                    continue;
                };
                options[k].push(LoraOption {
                    rank,
                    alpha,
                    params: group.numel,
                    value: if score.unreliable.is_none() && score.value > 0.0 {
                        score.value
                    } else {
                        0.0
                    },
                });
            }
        }
        Ok(options)
    }

    /// Discovers and groups the parameters of `model`.
    ///
    /// # Errors
    /// [`AdaPeftError::NoParameters`], or an invalid grouping.
    pub fn groups<M: Module>(&self, model: &M) -> Result<Groups, AdaPeftError> {
        let params = discover(model);
        if params.is_empty() {
            return Err(AdaPeftError::NoParameters);
        }
        Ok(self.grouping.group(params)?)
    }

    /// Picks the subset from scores already computed on `groups`: estimate once, then select
    /// at as many budgets as you like.
    ///
    /// Groups whose score is unreliable (value 0) are never chosen. The selection's settings
    /// record this configuration's estimator: compute `scores` with it. The scores are used
    /// as given ([`AdaPeftConfig::candidates`] does not apply).
    ///
    /// # Errors
    /// An invalid budget or front epsilon, and [`AdaPeftError::LoraChoices`] when this
    /// configuration offers LoRA choices (their adapters are scored inside
    /// [`AdaPeftConfig::select`], not in `scores`).
    pub fn select_scored(
        &self,
        groups: &Groups,
        scores: Scores,
        budget: Budget,
        batches: usize,
    ) -> Result<Selection, AdaPeftError> {
        if self.lora.is_some() {
            return Err(AdaPeftError::LoraChoices(
                "select_scored cannot offer them: its scores hold no adapter (use select)".into(),
            ));
        }
        let capacity = budget.resolve(groups.total_params())?;
        let no_options = vec![Vec::new(); groups.len()];
        self.choose(
            groups,
            (scores, Candidates::All),
            &no_options,
            budget,
            capacity,
            batches,
        )
    }

    /// The knapsack and the front over `scores`, at `budget` resolved to `capacity`
    /// parameters (`None` for [`Budget::Auto`]); `candidates` records which groups were scored.
    fn choose(
        &self,
        groups: &Groups,
        (scores, candidates): (Scores, Candidates),
        options: &[Vec<LoraOption>],
        budget: Budget,
        capacity: Option<u64>,
        batches: usize,
    ) -> Result<Selection, AdaPeftError> {
        let total = groups.total_params();
        // `picked[k]`: group k's chosen option, 0 for the full group, `j` for `options[k][j-1]`.
        let mut picked: Vec<Option<usize>> = vec![None; scores.groups.len()];
        let (front, budget_params, predicted) = if options.iter().any(|o| !o.is_empty()) {
            let (front, chosen, budget_params) = self.choose_classes(&scores, options, capacity)?;
            for (k, option) in chosen {
                picked[k] = Some(option);
            }
            (front, budget_params, None)
        } else {
            let (front, chosen, budget_params, predicted) = if self.value_model.is_additive() {
                self.choose_additive(&scores, capacity)?
            } else {
                self.choose_joint(&scores, capacity)?
            };
            for i in chosen {
                picked[i] = Some(0);
            }
            (front, budget_params, predicted)
        };
        let is_chosen: Vec<bool> = picked.iter().map(Option::is_some).collect();
        let grouped: u64 = groups.groups.iter().map(|g| g.numel).sum();
        let outcome = if capacity.is_some_and(|c| c >= grouped) {
            BudgetOutcome::EverythingFits
        } else if !is_chosen.iter().any(|&c| c) {
            BudgetOutcome::Empty
        } else {
            BudgetOutcome::Within
        };
        let choices = scores
            .groups
            .into_iter()
            .zip(&groups.groups)
            .zip(picked)
            .zip(options)
            .map(|(((score, group), pick), options)| GroupChoice {
                score,
                chosen: pick.is_some(),
                paths: group
                    .members
                    .iter()
                    .map(|&m| groups.params[m].path.clone())
                    .collect(),
                lora: pick.filter(|&o| o > 0).map(|o| options[o - 1]),
                options: options.clone(),
            })
            .collect();
        let selection = Selection::new(
            choices,
            total,
            front,
            outcome,
            scores.cost,
            scores.loss,
            SelectionSettings {
                estimator: self.estimator.clone(),
                grouping: self.grouping.to_string(),
                budget,
                budget_params,
                front_epsilon: self.front_epsilon,
                batches,
                value_model: self.value_model,
                candidates,
            },
        );
        Ok(match predicted {
            Some(p) => selection.with_predicted_reduction(p),
            None => selection,
        })
    }

    /// The paper's knapsack over per-group values: `(front, chosen, budget in parameters,
    /// None)`. Groups without value (unreliable, value 0) are never chosen.
    #[allow(clippy::type_complexity)]
    fn choose_additive(
        &self,
        scores: &Scores,
        capacity: Option<u64>,
    ) -> Result<(ParetoFront, Vec<usize>, u64, Option<f64>), AdaPeftError> {
        let items: Vec<Item> = scores
            .groups
            .iter()
            .map(|s| Item::new(s.params, if s.value > 0.0 { s.value } else { 0.0 }))
            .collect();
        let front =
            pareto_front_with(&items, FrontOptions::new().with_epsilon(self.front_epsilon))?;
        let (chosen, budget_params) = match capacity {
            Some(c) => (solve(&items, c)?.chosen, c),
            None => knee(&front, &|i| items[i].weight),
        };
        let chosen = chosen
            .into_iter()
            .filter(|&i| items[i].value > 0.0)
            .collect();
        Ok((front, chosen, budget_params, None))
    }

    /// The multiple-choice knapsack: group `k` is a class whose option 0 is the full group and
    /// option `j` its LoRA option `j - 1`. Returns `(front over group indices, chosen (group,
    /// option) pairs, budget in parameters)`. Options without value are never chosen.
    #[allow(clippy::type_complexity)]
    fn choose_classes(
        &self,
        scores: &Scores,
        options: &[Vec<LoraOption>],
        capacity: Option<u64>,
    ) -> Result<(ParetoFront, Vec<(usize, usize)>, u64), AdaPeftError> {
        let positive = |v: f64| if v > 0.0 { v } else { 0.0 };
        let classes: Vec<Class> = scores
            .groups
            .iter()
            .zip(options)
            .map(|(s, opts)| {
                std::iter::once(Item::new(s.params, positive(s.value)))
                    .chain(opts.iter().map(|o| Item::new(o.params, positive(o.value))))
                    .collect()
            })
            .collect();
        let front = pareto_front_classes_with(
            &classes,
            FrontOptions::new().with_epsilon(self.front_epsilon),
        )?;
        let picks = match capacity {
            Some(c) => solve_classes(&classes, c)?.chosen,
            None => {
                let index = knee_index(front.values(), front.knee_index());
                front.get(index).map(|p| p.chosen).unwrap_or_default()
            }
        };
        let item = |class: usize, option: usize| &classes[class].options()[option];
        let picks: Vec<(usize, usize)> = picks
            .into_iter()
            .filter(|p| item(p.class, p.option).value > 0.0)
            .map(|p| (p.class, p.option))
            .collect();
        let budget_params = match capacity {
            Some(c) => c,
            None => picks.iter().map(|&(c, o)| item(c, o).weight).sum(),
        };
        Ok((front.map_choices(|p| p.class), picks, budget_params))
    }

    /// The joint value over the cross-group curvature: `(greedy front, chosen, budget in
    /// parameters, the chosen subset's joint value)`.
    #[allow(clippy::type_complexity)]
    fn choose_joint(
        &self,
        scores: &Scores,
        capacity: Option<u64>,
    ) -> Result<(ParetoFront, Vec<usize>, u64, Option<f64>), AdaPeftError> {
        if scores.curvature().is_none() {
            return Err(AdaPeftError::NoCurvature {
                value_model: self.value_model.to_string(),
                estimator: scores.estimator.clone(),
            });
        }
        let value = |s: &[usize]| {
            self.value_model
                .value(scores, s)
                .expect("the curvature is present")
        };
        let weights: Vec<u64> = scores.groups.iter().map(|g| g.params).collect();
        let front = greedy_subset_front(&weights, value)?;
        let (chosen, budget_params) = match capacity {
            Some(c) => (maximize_subset(&weights, c, value)?.chosen, c),
            None => knee(&front, &|i| weights[i]),
        };
        let predicted = value(&chosen);
        Ok((front, chosen, budget_params, Some(predicted)))
    }
}

/// [`Budget::Auto`]: the front's knee, unless it is the empty selection while some point has
/// value: a front whose points all lie on or below its chord (one valuable group, or value
/// rising faster than size) has no knee, and "train nothing" is never what `Auto` is asked
/// for. Then the lightest non-empty point is taken. Returns the chosen items and their weight.
fn knee(front: &ParetoFront, weight: &dyn Fn(usize) -> u64) -> (Vec<usize>, u64) {
    let index = knee_index(front.values(), front.knee_index());
    let chosen = front.get(index).map(|p| p.chosen).unwrap_or_default();
    let w = chosen.iter().map(|&i| weight(i)).sum();
    (chosen, w)
}

/// The point [`Budget::Auto`] takes, from the front's values and its knee (see [`knee`]).
fn knee_index(values: &[f64], knee: Option<usize>) -> usize {
    let index = knee.unwrap_or(0);
    if index == 0 && values.len() > 1 && values[1] > values[0] {
        1
    } else {
        index
    }
}
