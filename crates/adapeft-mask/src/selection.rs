//! [`Selection`]: which groups of a model train, why, and at what predicted gain.

use std::collections::HashSet;

use adapeft_importance::{Cost, GroupScore};
use adapeft_knapsack::ParetoFront;
use burn::module::{Module, ModuleMapper, Param, ParamGroup};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::SelectionError;

/// The version of the JSON schema written by [`Selection::to_json`].
pub const SCHEMA_VERSION: u32 = 1;

/// One scored group and whether it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupChoice {
    /// The estimator's score of the group (name, size, `b`, `a`, `value`, reliability).
    pub score: GroupScore,
    /// Whether the group trains.
    pub chosen: bool,
    /// Paths of the parameters in the group.
    pub paths: Vec<String>,
}

impl GroupChoice {
    /// The group's value per parameter (its knapsack ratio).
    pub fn value_per_param(&self) -> f64 {
        if self.score.params == 0 {
            0.0
        } else {
            self.score.value / self.score.params as f64
        }
    }
}

/// How the budget related to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetOutcome {
    /// Nothing was chosen: the budget is 0, smaller than every group with a positive value,
    /// or no group has a reliable positive value.
    Empty,
    /// Some groups were chosen within the budget.
    Within,
    /// The budget holds every group: every reliable group with a positive value trains.
    EverythingFits,
}

/// The settings a selection was made with, in words, for reports and reproducibility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionSettings {
    /// The estimator and its settings.
    pub estimator: String,
    /// The grouping.
    pub grouping: String,
    /// The budget as given.
    pub budget: String,
    /// The budget in parameters it resolved to.
    pub budget_params: u64,
    /// The approximation of the Pareto front (`0` for the exact front).
    pub front_epsilon: f64,
    /// Number of batches the scores were estimated on.
    pub batches: usize,
}

/// The result of a selection: every scored group with its verdict, the chosen subset, the
/// Pareto front of (trainable parameters, predicted loss reduction), the estimator's cost and
/// the settings.
///
/// Apply it to the model with [`Selection::apply`], hand its parameters to your own code with
/// [`Selection::param_group`], print it (`Display` shows [`Selection::summary`] and a table),
/// store it with [`Selection::to_json`], and carry it to a bigger or smaller model of the same
/// family with [`Selection::transfer_to`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Selection {
    version: u32,
    groups: Vec<GroupChoice>,
    total_params: u64,
    front: ParetoFront,
    outcome: BudgetOutcome,
    cost: Cost,
    loss: Option<f64>,
    settings: SelectionSettings,
}

impl PartialEq for Selection {
    fn eq(&self, other: &Self) -> bool {
        self.groups == other.groups
            && self.total_params == other.total_params
            && self.front.weights() == other.front.weights()
            && self.front.values() == other.front.values()
            && self.outcome == other.outcome
            && self.cost == other.cost
            && self.loss == other.loss
            && self.settings == other.settings
    }
}

impl Selection {
    /// Assembles a selection. `front` is over the groups, in order (item `k` is group `k`);
    /// `total_params` counts every float parameter of the model, grouped or not.
    pub fn new(
        groups: Vec<GroupChoice>,
        total_params: u64,
        front: ParetoFront,
        outcome: BudgetOutcome,
        cost: Cost,
        loss: Option<f64>,
        settings: SelectionSettings,
    ) -> Self {
        Selection {
            version: SCHEMA_VERSION,
            groups,
            total_params,
            front,
            outcome,
            cost,
            loss,
            settings,
        }
    }

    /// Every scored group, in model order, with whether it was chosen.
    pub fn groups(&self) -> &[GroupChoice] {
        &self.groups
    }

    /// The chosen groups.
    pub fn chosen(&self) -> impl Iterator<Item = &GroupChoice> {
        self.groups.iter().filter(|g| g.chosen)
    }

    /// Paths of every parameter that trains.
    pub fn chosen_paths(&self) -> Vec<String> {
        self.chosen()
            .flat_map(|g| g.paths.iter().cloned())
            .collect()
    }

    /// Number of parameters that train.
    pub fn trainable_params(&self) -> u64 {
        self.chosen().map(|g| g.score.params).sum()
    }

    /// Number of float parameters in the model.
    pub fn total_params(&self) -> u64 {
        self.total_params
    }

    /// `trainable_params / total_params` (0 for an empty model).
    pub fn trainable_fraction(&self) -> f64 {
        if self.total_params == 0 {
            0.0
        } else {
            self.trainable_params() as f64 / self.total_params as f64
        }
    }

    /// The loss reduction the quadratic model predicts for training the chosen groups (the sum
    /// of their values; for baseline estimators, the sum of their scores).
    pub fn predicted_reduction(&self) -> f64 {
        self.chosen().map(|g| g.score.value).sum()
    }

    /// True when nothing trains.
    pub fn is_empty(&self) -> bool {
        !self.groups.iter().any(|g| g.chosen)
    }

    /// How the budget related to the model.
    pub fn outcome(&self) -> BudgetOutcome {
        self.outcome
    }

    /// The Pareto front of (trainable parameters, predicted reduction) over all budgets; item
    /// `k` of a point's `chosen` is group `k` of [`Selection::groups`].
    pub fn front(&self) -> &ParetoFront {
        &self.front
    }

    /// What the estimation cost.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// The mean loss on the batches at the model's weights (`None` for data-free baselines).
    pub fn loss(&self) -> Option<f64> {
        self.loss
    }

    /// The settings the selection was made with.
    pub fn settings(&self) -> &SelectionSettings {
        &self.settings
    }

    /// Returns `model` with exactly the chosen parameters requiring gradients; every other
    /// float parameter stops requiring gradients.
    ///
    /// Only gradients change. Unlike burn's `Module::freeze`, this leaves the module's
    /// training flags alone: dropout stays active and batch-norm running statistics keep
    /// updating, as in full fine-tuning. On a device without autodiff the setting is stored and
    /// takes effect when the model goes back to training (`Module::train`).
    pub fn apply<M: Module>(&self, model: M) -> M {
        let chosen: HashSet<String> = self.chosen_paths().into_iter().collect();
        let mut mapper = SetRequireGrad {
            path: Vec::new(),
            chosen: &chosen,
        };
        model.map(&mut mapper)
    }

    /// The chosen parameters as a burn [`ParamGroup`] (matched by path), for users who apply
    /// it themselves, for example `model.no_grad().set_require_grad_group(group, true)`.
    pub fn param_group(&self) -> ParamGroup {
        ParamGroup::from_paths(self.chosen_paths())
    }

    /// Serialises the selection to JSON (schema version [`SCHEMA_VERSION`]).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a selection always serialises")
    }

    /// Reads a selection written by [`Selection::to_json`].
    ///
    /// # Errors
    /// [`SelectionError::UnsupportedVersion`] for another schema version,
    /// [`SelectionError::Json`] for text that is not a selection.
    pub fn from_json(text: &str) -> Result<Self, SelectionError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SelectionError::Json(e.to_string()))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(SelectionError::UnsupportedVersion {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            None => return Err(SelectionError::Json("no `version` field".into())),
        }
        serde_json::from_value(value).map_err(|e| SelectionError::Json(e.to_string()))
    }

    /// The same selection with other groups (used by transfer).
    pub(crate) fn with_groups(&self, groups: Vec<GroupChoice>, total_params: u64) -> Self {
        Selection {
            groups,
            total_params,
            ..self.clone()
        }
    }
}

/// Sets require-grad by path membership.
struct SetRequireGrad<'a> {
    path: Vec<String>,
    chosen: &'a HashSet<String>,
}

impl ModuleMapper for SetRequireGrad<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let trains = self.chosen.contains(&self.path.join("."));
        param.set_require_grad(trains)
    }
}
