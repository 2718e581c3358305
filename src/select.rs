//! The selector: scores -> knapsack and Pareto front -> [`Selection`].

use adapeft_importance::{
    Baseline, EstimateError, Estimator, ForwardProbe, GradientProbe, Grouping, Groups, LossFn,
    ModelObjective, Objective, Scores, discover,
};
use adapeft_knapsack::{FrontOptions, Item, pareto_front_with, solve};
use adapeft_mask::{BudgetOutcome, GroupChoice, Selection, SelectionSettings};
use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::error::AdaPeftError;

/// Which estimator scores the groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EstimatorConfig {
    /// The paper's forward probe (`4K + 1` forward passes).
    Forward(ForwardProbe),
    /// Curvature from gradient differences (`1 + 2P` backward passes whatever `K`).
    Gradient(GradientProbe),
    /// A first-order or data-free baseline score.
    Baseline(Baseline),
}

impl Default for EstimatorConfig {
    /// [`GradientProbe`] with 16 random-sign probes (or the exact mode for up to 16 groups).
    fn default() -> Self {
        EstimatorConfig::Gradient(GradientProbe {
            probes: 16,
            ..Default::default()
        })
    }
}

impl From<ForwardProbe> for EstimatorConfig {
    fn from(e: ForwardProbe) -> Self {
        EstimatorConfig::Forward(e)
    }
}

impl From<GradientProbe> for EstimatorConfig {
    fn from(e: GradientProbe) -> Self {
        EstimatorConfig::Gradient(e)
    }
}

impl From<Baseline> for EstimatorConfig {
    fn from(e: Baseline) -> Self {
        EstimatorConfig::Baseline(e)
    }
}

impl Estimator for EstimatorConfig {
    fn estimate_with<M, B, F>(
        &self,
        model: &M,
        batches: &[B],
        groups: &Groups,
        loss: &F,
    ) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        match self {
            EstimatorConfig::Forward(e) => e.estimate_with(model, batches, groups, loss),
            EstimatorConfig::Gradient(e) => e.estimate_with(model, batches, groups, loss),
            EstimatorConfig::Baseline(e) => e.estimate_with(model, batches, groups, loss),
        }
    }

    fn describe(&self) -> String {
        match self {
            EstimatorConfig::Forward(e) => e.describe(),
            EstimatorConfig::Gradient(e) => e.describe(),
            EstimatorConfig::Baseline(e) => e.describe(),
        }
    }
}

/// The entry point: `AdaPeft::select(&model, &batch, budget)`.
pub struct AdaPeft;

impl AdaPeft {
    /// Scores every parameter tensor of `model` on `batch` with the default configuration
    /// ([`AdaPeftConfig::new`]: a 16-probe [`GradientProbe`], one group per tensor) and picks the
    /// subset with the largest predicted loss reduction within `budget`.
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
#[derive(Debug, Clone)]
pub struct AdaPeftConfig {
    /// The estimator (default: [`EstimatorConfig::default`], a 16-probe [`GradientProbe`]).
    pub estimator: EstimatorConfig,
    /// How parameters are grouped (default: [`Grouping::PerTensor`]).
    pub grouping: Grouping,
    /// Approximation of the Pareto front, in `[0, 1)` (default `0.01`): for every budget the
    /// front's best point is within `1 - epsilon` of the exact optimum. The exact front
    /// (`0`) grows to millions of points beyond about a hundred groups (1.1 million for 100
    /// realistic groups in the knapsack bench), while `0.01` keeps about a thousand points up
    /// to 10,000 groups. The chosen subset at a parameter, fraction or memory budget is
    /// always exact (it is solved directly); only [`Budget::Auto`] reads the front.
    pub front_epsilon: f64,
}

impl Default for AdaPeftConfig {
    fn default() -> Self {
        AdaPeftConfig {
            estimator: EstimatorConfig::default(),
            grouping: Grouping::PerTensor,
            front_epsilon: 0.01,
        }
    }
}

impl AdaPeftConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the estimator: a [`GradientProbe`], a [`ForwardProbe`] or a [`Baseline`].
    pub fn with_estimator(mut self, estimator: impl Into<EstimatorConfig>) -> Self {
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

    /// Selects with the model's own [`Objective`], the loss averaged over `batches`.
    ///
    /// # Errors
    /// As [`AdaPeft::select`], and [`EstimateError::NoBatch`] for an empty `batches`.
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
        // Check the budget before paying for the estimation.
        budget.resolve(groups.total_params())?;
        let scores = self
            .estimator
            .estimate_with(model, batches, &groups, loss)?;
        self.select_scored(&groups, scores, budget, batches.len())
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
    /// Groups whose score is unreliable (value 0) are never chosen.
    ///
    /// # Errors
    /// An invalid budget or front epsilon.
    pub fn select_scored(
        &self,
        groups: &Groups,
        scores: Scores,
        budget: Budget,
        batches: usize,
    ) -> Result<Selection, AdaPeftError> {
        let total = groups.total_params();
        let capacity = budget.resolve(total)?;
        let items: Vec<Item> = scores
            .groups
            .iter()
            .map(|s| Item::new(s.params, if s.value > 0.0 { s.value } else { 0.0 }))
            .collect();
        let front =
            pareto_front_with(&items, FrontOptions::new().with_epsilon(self.front_epsilon))?;
        let (chosen, budget_params) = match capacity {
            Some(c) => (solve(&items, c)?.chosen, c),
            None => {
                // The knee, unless it is the empty selection while some group has value:
                // a front whose points all lie on or below its chord (one valuable group, or
                // value rising faster than size) has no knee, and "train nothing" is never
                // what `Auto` is asked for. Then the lightest non-empty point is taken.
                let mut index = front.knee_index().unwrap_or(0);
                if index == 0 && front.len() > 1 && front.values()[1] > front.values()[0] {
                    index = 1;
                }
                let knee = front.get(index).map(|p| p.chosen).unwrap_or_default();
                let w = knee.iter().map(|&i| items[i].weight).sum();
                (knee, w)
            }
        };
        let mut is_chosen = vec![false; items.len()];
        for i in chosen {
            is_chosen[i] = items[i].value > 0.0;
        }
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
            .zip(is_chosen)
            .map(|((score, group), chosen)| GroupChoice {
                score,
                chosen,
                paths: group
                    .members
                    .iter()
                    .map(|&m| groups.params[m].path.clone())
                    .collect(),
            })
            .collect();
        Ok(Selection::new(
            choices,
            total,
            front,
            outcome,
            scores.cost,
            scores.loss,
            SelectionSettings {
                estimator: scores.estimator,
                grouping: self.grouping.describe(),
                budget: budget.to_string(),
                budget_params,
                front_epsilon: self.front_epsilon,
                batches,
            },
        ))
    }
}
