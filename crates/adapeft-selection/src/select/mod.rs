//! The selector: groups -> scores -> knapsack and Pareto front -> [`Selection`].
//!
//! [`AdaPeft::select`] is the one-line entry point; [`AdaPeftConfig`] configures everything
//! else, and its docs say which of its methods to call when.
//!
//! The budget walks one way: it is resolved to a parameter count once ([`Budget::resolve`]),
//! decides which groups are scored ([`Candidates`], `candidates.rs`), and then which are
//! chosen (`choose.rs`: an exact knapsack at the budget, the Pareto front for
//! [`Budget::Knee`], whose point is picked next to the budget in `budget.rs`; for
//! [`Budget::Auto`], the subsets at a few sizes tried on held-out batches, `held_out.rs`).
//! Always-trained groups (`always.rs`) pay for themselves first. LoRA choices
//! (`lora.rs`) turn weight matrices into multiple-choice classes.

mod always;
mod candidates;
mod choose;
mod error;
mod held_out;
mod lora;

use adapeft_importance::{
    AnyEstimator, Collective, EstimateError, Estimator, Grouping, Groups, HostReduce, LossFn,
    ModelObjective, Objective, Scores, Shard, UnitRules, ValueModel, discover,
};
use burn::module::Module;

use crate::budget::{Budget, Candidates};
use crate::selection::Selection;

pub use always::AlwaysTrain;
pub use error::{LoraChoicesError, SelectError};
pub use held_out::{AutoCandidate, HeldOut, RateRule, Validation};
pub use lora::LoraChoices;

/// The entry point: `AdaPeft::select(&model, &batch, budget)`.
pub struct AdaPeft;

impl AdaPeft {
    /// Scores every parameter tensor of `model` on `batch` with the default configuration
    /// ([`AdaPeftConfig::new`]: a [`ShortRun`](adapeft_importance::ShortRun), the loss-change
    /// allocation of 15 Adam steps at `1e-2` on a copy of the model, by the trapezoid rule;
    /// one group per tensor) and picks the subset with the largest value within `budget` (an
    /// exact knapsack).
    ///
    /// The default comes from the digits study's oracle benchmark (`docs/results.md`):
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
    /// use adapeft_selection::{AdaPeft, Budget};
    /// use adapeft_importance::Objective;
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
    /// # Ok::<(), adapeft_selection::SelectError>(())
    /// ```
    ///
    /// # Errors
    /// A model without float parameters, an invalid budget, an estimator error (a batch the
    /// model refuses, a loss that is not a scalar, or not finite), and
    /// [`SelectError::AutoNeedsHeldOut`] for [`Budget::Auto`], which needs held-out batches
    /// ([`AdaPeftConfig::with_held_out`]).
    pub fn select<M, B>(model: &M, batch: &B, budget: Budget) -> Result<Selection, SelectError>
    where
        M: Module + Objective<B>,
    {
        AdaPeftConfig::new().select(model, std::slice::from_ref(batch), budget)
    }
}

/// Everything a selection can be configured with, in burn's config style:
/// `AdaPeftConfig::new().with_estimator(..).with_grouping(..)`.
///
/// Which method to call when:
///
/// | you have | call |
/// |---|---|
/// | a model that implements [`Objective`] and batches on one device | [`AdaPeftConfig::select`] (or [`AdaPeft::select`] with the defaults and one batch) |
/// | batches spread over several devices | [`AdaPeftConfig::select_sharded`] |
/// | several budgets to try on one estimate | [`AdaPeftConfig::score`] once, then [`AdaPeftConfig::select_scored`] per budget |
/// | a loss closure instead of an [`Objective`], or a device collective | [`AdaPeftConfig::select_with`] (the general form the others call) |
///
/// The estimators' own settings are burn `Config`s; this type is not one, because a
/// [`Grouping`] can hold compiled regular expressions and burn `ParamGroup`s, which have no
/// serialised form. It keeps the same shape by hand: `new()`, `with_*` setters and public
/// fields. What a selection was made with is recorded, typed, in [`Selection::settings`].
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
    /// always exact (it is solved directly); only [`Budget::Knee`] reads the front.
    pub front_epsilon: f64,
    /// How a subset is valued from the scores (default [`ValueModel::Additive`], the paper's
    /// knapsack). [`ValueModel::Joint`] needs an estimator that computes the cross-group
    /// curvature (a [`GradientProbe`](adapeft_importance::GradientProbe)); it is selected by
    /// [`maximize_subset`](adapeft_knapsack::maximize_subset) and its front is the greedy
    /// chain ([`greedy_subset_front`](adapeft_knapsack::greedy_subset_front)), so
    /// `front_epsilon` does not apply.
    pub value_model: ValueModel,
    /// Which groups are scored once the budget is known (default [`Candidates::All`]).
    /// [`Candidates::WithinBudget`] scores only the groups that fit the budget on their own;
    /// it applies to the additive value model at a parameter, fraction or memory budget (the
    /// joint value model, [`Budget::Auto`] and [`Budget::Knee`] score every group).
    pub candidates: Candidates,
    /// LoRA adapters offered besides each weight matrix (default: none). See
    /// [`AdaPeftConfig::with_lora_choices`].
    pub lora: Option<LoraChoices>,
    /// Parameters that train whatever their value, counted in the budget (default: none).
    /// See [`AlwaysTrain`].
    pub always: Option<AlwaysTrain>,
    /// Batches held out from the estimator to recommend a learning rate and to size
    /// [`Budget::Auto`] (default: none). See [`HeldOut`].
    pub held_out: Option<HeldOut>,
    /// Units below the tensor to cut the grouped tensors into (default: none). See
    /// [`AdaPeftConfig::with_units`].
    pub units: Option<UnitRules>,
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
            always: None,
            held_out: None,
            units: None,
        }
    }
}

/// Where the batches of [`AdaPeftConfig::select_with`] are.
#[derive(Clone, Copy)]
pub enum Data<'a, B> {
    /// Batches on one device; the loss is averaged over them.
    Batches(&'a [B]),
    /// Batches spread over several devices, one worker thread per [`Shard`], whose
    /// statistics are summed across the workers by `reduce` (a [`HostReduce`] of
    /// `shards.len()` workers, or the `cuda` feature's `adapeft::distributed::DeviceReduce`).
    Sharded {
        /// One shard per worker.
        shards: &'a [Shard<B>],
        /// The collective that sums the workers' statistics.
        reduce: &'a dyn Collective,
    },
}

impl<B> Data<'_, B> {
    /// The number of batches, over every shard.
    pub fn batches(&self) -> usize {
        match self {
            Data::Batches(b) => b.len(),
            Data::Sharded { shards, .. } => shards.iter().map(|s| s.batches.len()).sum(),
        }
    }
}

/// Scores of every group of a model, with the groups they belong to: what
/// [`AdaPeftConfig::score`] returns and [`AdaPeftConfig::select_scored`] selects from, at as
/// many budgets as you like.
#[derive(Debug, Clone)]
pub struct Scored {
    groups: Groups,
    scores: Scores,
    batches: usize,
}

impl Scored {
    /// Scores computed by hand (any estimator, any loss) on `groups` over `batches` batches.
    ///
    /// # Errors
    /// [`SelectError::ScoresMismatch`] when `scores` does not hold one score per group, in
    /// the groups' order (by name and size).
    ///
    /// Groups below the tensor ([`Groups::split`]) are selected here, by
    /// [`AdaPeftConfig::select_scored`]: score them with `ShortRun` or a `Baseline`; the
    /// selection lists their cells ([`Selection::partial`]) and trains them with `Masked`.
    pub fn new(groups: Groups, scores: Scores, batches: usize) -> Result<Self, SelectError> {
        if scores.groups.len() != groups.len() {
            return Err(SelectError::ScoresMismatch {
                reason: format!("{} scores for {} groups", scores.groups.len(), groups.len()),
            });
        }
        if let Some((s, g)) = scores
            .groups
            .iter()
            .zip(groups.groups())
            .find(|(s, g)| s.name != g.name || s.params != g.numel)
        {
            return Err(SelectError::ScoresMismatch {
                reason: format!(
                    "score `{}` ({} parameters) stands where group `{}` ({} parameters) is",
                    s.name, s.params, g.name, g.numel
                ),
            });
        }
        Ok(Scored {
            groups,
            scores,
            batches,
        })
    }

    /// The groups.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// One score per group, in the groups' order.
    pub fn scores(&self) -> &Scores {
        &self.scores
    }

    /// The number of batches the scores were computed on.
    pub fn batches(&self) -> usize {
        self.batches
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

    /// Cuts the tensors `rules` match into units below the tensor (output neurons, input
    /// rows, blocks, attention heads: [`Groups::split`]) after grouping, so that every entry
    /// point selects among units and whole tensors together, held-out trials and
    /// [`Budget::Auto`] included. The estimator must value units (the default [`ShortRun`]
    /// and the baselines do; the probes refuse them). A selection of units trains with
    /// `Masked` or a `GradientMask` (adapeft-optim), which train only the chosen cells.
    ///
    /// Always-trained tensors ([`AdaPeftConfig::with_always`]) stay whole: a rule that cuts
    /// one is refused ([`SelectError::AlwaysOnUnits`]); LoRA choices are not offered for
    /// units.
    ///
    /// ```
    /// use adapeft_importance::{Unit, UnitRules};
    /// use adapeft_selection::{AdaPeftConfig, Budget, Data};
    /// use burn::module::Module;
    /// use burn::nn::{Linear, LinearConfig};
    /// use burn::tensor::{Device, Tensor};
    ///
    /// #[derive(Module, Debug)]
    /// struct Net {
    ///     fc: Linear,
    /// }
    ///
    /// let device = Device::flex().autodiff();
    /// let model = Net { fc: LinearConfig::new(8, 4).init(&device) };
    /// let batches = [Tensor::<2>::ones([16, 8], &device)];
    /// let loss = |m: &Net, x: &Tensor<2>| (m.fc.forward(x.clone()) - 1.0).square().mean();
    /// // `fc`'s 4 output neurons (a column of its weight and a bias entry each) as groups.
    /// let rules = UnitRules::new().with("^fc$", Unit::Outputs)?;
    /// let selection = AdaPeftConfig::new()
    ///     .with_units(rules)
    ///     .select_with(&model, Data::Batches(&batches), Budget::Params(18), &loss)?;
    /// assert_eq!(selection.trainable_params(), 18); // two neurons of 9
    /// assert_eq!(selection.partial()["fc.weight"].len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`ShortRun`]: adapeft_importance::ShortRun
    pub fn with_units(mut self, rules: UnitRules) -> Self {
        self.units = Some(rules);
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
    /// [`Selection`] records the choice per group
    /// ([`GroupChoice::lora`](crate::GroupChoice::lora), [`Selection::lora_choices`]) and
    /// [`Selection::apply`] attaches the chosen adapters.
    ///
    /// ```
    /// use adapeft_importance::Objective;
    /// use adapeft_selection::{AdaPeftConfig, Budget, LoraChoices};
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
    /// # Ok::<(), adapeft_selection::SelectError>(())
    /// ```
    pub fn with_lora_choices(mut self, choices: LoraChoices) -> Self {
        self.lora = Some(choices);
        self
    }

    /// Trains the parameters `always` takes whatever their value, within the budget: a new
    /// head, say (see [`AlwaysTrain`] for how they count and show).
    pub fn with_always(mut self, always: AlwaysTrain) -> Self {
        self.always = Some(always);
        self
    }

    /// Holds the last batches out of the estimation: they judge short runs of the chosen
    /// subset, for a recommended learning rate and for [`Budget::Auto`] (see [`HeldOut`]).
    pub fn with_held_out(mut self, held_out: HeldOut) -> Self {
        self.held_out = Some(held_out);
        self
    }

    /// Selects with the model's own [`Objective`], the loss averaged over `batches` (one
    /// device).
    ///
    /// # Errors
    /// As [`AdaPeft::select`], an estimate error for an empty `batches`, the always-train
    /// errors ([`AlwaysTrain`]) and [`SelectError::HeldOut`] for held-out settings that do
    /// not fit the batches.
    pub fn select<M, B>(
        &self,
        model: &M,
        batches: &[B],
        budget: Budget,
    ) -> Result<Selection, SelectError>
    where
        M: Module + Objective<B>,
    {
        self.select_local(model, batches, budget, &ModelObjective)
    }

    /// Selects on batches spread over several devices, one worker thread per [`Shard`],
    /// with the model's own [`Objective`]: each worker forks a clone of `model` to its
    /// shard's device and computes its part of the statistics; the parts are summed across
    /// the workers in f64 by a [`HostReduce`], so the selection is the one
    /// [`AdaPeftConfig::select`] makes on all the batches on one device, up to float
    /// rounding (see [`AnyEstimator::estimate_sharded`]). Every estimator is supported;
    /// the default [`ShortRun`](adapeft_importance::ShortRun) becomes a data-parallel run
    /// (at each step every worker takes one of its batches and the step averages the
    /// workers' gradients). The user's model is not touched. For another collective (several
    /// CUDA GPUs), use [`AdaPeftConfig::select_with`] with [`Data::Sharded`].
    ///
    /// ```
    /// use adapeft_importance::{GradientProbe, Objective, Shard};
    /// use adapeft_selection::{AdaPeftConfig, Budget};
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
    /// As [`AdaPeftConfig::select`], an estimate error for no shard or an empty one,
    /// [`LoraChoicesError::Unsupported`] when this configuration offers LoRA choices, and
    /// [`SelectError::HeldOut`] when it holds batches out (neither is supported across
    /// devices yet).
    pub fn select_sharded<M, B>(
        &self,
        model: &M,
        shards: &[Shard<B>],
        budget: Budget,
    ) -> Result<Selection, SelectError>
    where
        M: Module + Objective<B>,
        B: Sync,
    {
        // At least one worker, so that no shard at all is the estimator's typed error.
        let reduce = HostReduce::new(shards.len().max(1)).map_err(EstimateError::from)?;
        let data = Data::Sharded {
            shards,
            reduce: &reduce,
        };
        self.select_with(model, data, budget, &ModelObjective)
    }

    /// The general form the other selections call: any [`Data`] (one device, or shards with
    /// any [`Collective`]) and a loss closure `loss(model, batch) -> Tensor<1>` instead of the
    /// model's [`Objective`] (for a model type you cannot implement it for).
    ///
    /// ```
    /// use adapeft_selection::{AdaPeftConfig, Budget, Data};
    /// use burn::nn::{Linear, LinearConfig};
    /// use burn::tensor::{Device, Tensor};
    ///
    /// let device = Device::flex();
    /// let model: Linear = LinearConfig::new(4, 2).init(&device);
    /// let x = Tensor::<2>::ones([8, 4], &device);
    /// let loss = |m: &Linear, x: &Tensor<2>| (m.forward(x.clone()) - 1.0).square().mean();
    /// let selection =
    ///     AdaPeftConfig::new().select_with(&model, Data::Batches(&[x]), Budget::Params(2), &loss)?;
    /// assert!(selection.trainable_params() <= 2);
    /// # Ok::<(), adapeft_selection::SelectError>(())
    /// ```
    ///
    /// # Errors
    /// As [`AdaPeftConfig::select`] and [`AdaPeftConfig::select_sharded`], and an estimate
    /// error when a collective does not have one worker per shard.
    pub fn select_with<M, B, F>(
        &self,
        model: &M,
        data: Data<'_, B>,
        budget: Budget,
        loss: &F,
    ) -> Result<Selection, SelectError>
    where
        M: Module,
        B: Sync,
        F: LossFn<M, B> + Sync,
    {
        match data {
            Data::Batches(batches) => self.select_local(model, batches, budget, loss),
            Data::Sharded { shards, reduce } => {
                if self.held_out.is_some() {
                    return Err(SelectError::HeldOut {
                        name: "batches",
                        value: "sharded".into(),
                        reason: "held-out trials (and so Budget::Auto) run on one device only, for now",
                    });
                }
                if budget == Budget::Auto {
                    return Err(SelectError::AutoNeedsHeldOut);
                }
                if self.lora.is_some() {
                    return Err(LoraChoicesError::Unsupported {
                        entry_point: "sharded selection",
                        reason: "not supported across devices yet",
                    }
                    .into());
                }
                let (groups, always) = self.group(model)?;
                let capacity = budget.resolve(groups.total_params())?;
                let others =
                    always::budget_for_others(capacity, always::always_params(&groups, &always))?;
                let (scores, candidates) =
                    self.score_candidates(&groups, &always, others, |scored| {
                        self.estimator
                            .estimate_sharded(model, shards, scored, loss, reduce)
                    })?;
                let no_options = vec![Vec::new(); groups.len()];
                self.choose(
                    &groups,
                    (scores, candidates),
                    (&no_options, &always),
                    budget,
                    capacity,
                    data.batches(),
                )
            }
        }
    }

    /// Scores every group of `model` on `batches` with the model's own [`Objective`]: estimate
    /// once, then [`AdaPeftConfig::select_scored`] at as many budgets as you like.
    ///
    /// ```
    /// use adapeft_importance::Objective;
    /// use adapeft_selection::{AdaPeftConfig, Budget};
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
    /// let config = AdaPeftConfig::new();
    /// let scored = config.score(&model, &[Tensor::<2>::ones([8, 4], &device)])?;
    /// for budget in [Budget::Params(2), Budget::Params(10)] {
    ///     let selection = config.select_scored(&scored, budget)?;
    ///     assert!(selection.trainable_params() <= budget.resolve(10)?.unwrap());
    /// }
    /// # Ok::<(), adapeft_selection::SelectError>(())
    /// ```
    ///
    /// # Errors
    /// A model without float parameters, an invalid grouping, an estimator error, or
    /// [`SelectError::HeldOut`] when this configuration holds batches out (held-out trials
    /// need [`AdaPeftConfig::select`]).
    pub fn score<M, B>(&self, model: &M, batches: &[B]) -> Result<Scored, SelectError>
    where
        M: Module + Objective<B>,
    {
        self.refuse_held_out("score")?;
        let (groups, _) = self.group(model)?;
        let scores = self.estimator.estimate(model, batches, &groups)?;
        Ok(Scored {
            groups,
            scores,
            batches: batches.len(),
        })
    }

    /// Picks the subset from scores already computed ([`AdaPeftConfig::score`], or
    /// [`Scored::new`] for scores of your own): estimate once, then select at as many budgets
    /// as you like.
    ///
    /// Groups whose score is unreliable (value 0) are never chosen. The selection's settings
    /// record this configuration's estimator: compute the scores with it. The scores are used
    /// as given ([`AdaPeftConfig::candidates`] does not apply).
    ///
    /// # Errors
    /// An invalid budget or front epsilon, [`LoraChoicesError::Unsupported`] when this
    /// configuration offers LoRA choices (their adapters are scored inside
    /// [`AdaPeftConfig::select`], not in the scores), and [`SelectError::AutoNeedsHeldOut`]
    /// or [`SelectError::HeldOut`] for [`Budget::Auto`] or held-out batches, which need the
    /// model ([`AdaPeftConfig::select`]).
    pub fn select_scored(&self, scored: &Scored, budget: Budget) -> Result<Selection, SelectError> {
        if self.lora.is_some() {
            return Err(LoraChoicesError::Unsupported {
                entry_point: "select_scored",
                reason: "its scores hold no adapter",
            }
            .into());
        }
        self.refuse_held_out("select_scored")?;
        if budget == Budget::Auto {
            return Err(SelectError::AutoNeedsHeldOut);
        }
        let groups = &scored.groups;
        let always = self.always_flags(groups)?;
        let capacity = budget.resolve(groups.total_params())?;
        always::budget_for_others(capacity, always::always_params(groups, &always))?;
        let no_options = vec![Vec::new(); groups.len()];
        self.choose(
            groups,
            (scored.scores.clone(), Candidates::All),
            (&no_options, &always),
            budget,
            capacity,
            scored.batches,
        )
    }

    /// One device: scores (the candidates, then the LoRA options) and chooses.
    fn select_local<M, B, F>(
        &self,
        model: &M,
        batches: &[B],
        budget: Budget,
        loss: &F,
    ) -> Result<Selection, SelectError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let (batches, held) = self.split_held_out(model, batches, budget, loss)?;
        if budget == Budget::Auto && held.is_empty() {
            return Err(SelectError::AutoNeedsHeldOut);
        }
        let (groups, always) = self.group(model)?;
        // Resolve the budget once, before paying for the estimation.
        let capacity = budget.resolve(groups.total_params())?;
        let always_params = always::always_params(&groups, &always);
        let others = always::budget_for_others(capacity, always_params)?;
        if self.lora.is_some() && !self.value_model.is_additive() {
            return Err(LoraChoicesError::ValueModel {
                value_model: self.value_model.to_string(),
            }
            .into());
        }
        let (mut scores, candidates) =
            self.score_candidates(&groups, &always, others, |scored| {
                self.estimator.estimate_with(model, batches, scored, loss)
            })?;
        let options = match &self.lora {
            Some(choices) => {
                choices.options(self, model, batches, (&groups, &always), &mut scores, loss)?
            }
            None => vec![Vec::new(); groups.len()],
        };
        let data = (batches, held);
        if budget == Budget::Auto {
            let select_at = |cap: u64| {
                self.choose(
                    &groups,
                    (scores.clone(), candidates),
                    (&options, &always),
                    Budget::Params(cap),
                    Some(cap),
                    batches.len(),
                )
            };
            let sizes = (groups.total_params(), always_params);
            return self.select_auto(model, data, sizes, select_at, loss);
        }
        let selection = self.choose(
            &groups,
            (scores, candidates),
            (&options, &always),
            budget,
            capacity,
            batches.len(),
        )?;
        self.validate_selection(model, data, selection, loss)
    }

    /// Held-out batches judge runs of a model: the entry points that keep none refuse them.
    fn refuse_held_out(&self, entry_point: &'static str) -> Result<(), SelectError> {
        match self.held_out {
            Some(_) => Err(SelectError::HeldOut {
                name: "batches",
                value: entry_point.into(),
                reason: "score and select_scored keep no model to try subsets on: use select",
            }),
            None => Ok(()),
        }
    }

    /// Discovers and groups the parameters of `model`, and flags the always-trained groups
    /// (at their own learning rate, when they have one).
    fn group<M: Module>(&self, model: &M) -> Result<(Groups, Vec<bool>), SelectError> {
        let params = discover(model);
        if params.is_empty() {
            return Err(SelectError::NoParameters);
        }
        let mut groups = self.grouping.group(params)?;
        if let Some(rules) = &self.units {
            if self.lora.is_some() {
                return Err(LoraChoicesError::Unsupported {
                    entry_point: "a selection of units below the tensor",
                    reason: "a weight cut into units has no one adapter",
                }
                .into());
            }
            groups = groups.split(rules)?;
            self.refuse_always_on_units(&groups)?;
        }
        let always = self.always_flags(&groups)?;
        Ok((self.with_always_rates(groups, &always), always))
    }
}
