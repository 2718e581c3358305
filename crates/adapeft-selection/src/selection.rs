//! [`Selection`]: which groups of a model train, why, and at what predicted gain.

use std::collections::{BTreeMap, HashSet};

use adapeft_importance::{AnyEstimator, Cost, GroupScore, Tiling, ValueModel, set_require_grad};
use adapeft_knapsack::ParetoFront;
use burn::module::{Lora, Module, ParamGroup};
use serde::{Deserialize, Serialize};

use crate::budget::{Budget, BudgetOutcome, Candidates};
use crate::error::SelectionError;
use crate::select::{HeldOut, Validation};

/// The version of the JSON schema written by [`Selection::to_json`]. Version 2 recorded the
/// estimator and the budget as typed values and a group's reliability in one field; version
/// 3 adds always-trained groups, the held-out settings and their verdict, and
/// `Budget::Auto` means the held-out rule: a version 2 file's `Auto` was the knee of the
/// predicted front and reads back as [`Budget::Knee`]. Version 4 adds the cells of units
/// below the tensor ([`GroupChoice::cells`], [`Selection::tilings`]); a version 3 file reads
/// as it is. Version 5 (this one) writes the front's points as steps, each point's selection
/// as its change from the point before it (version 4 repeated every selection whole: 7 MB
/// of a 12 MB selection over 18,000 units), and leaves out a group's empty `paths` and a
/// reliable score's `unreliable`; versions 2 to 4 read as they are. Version 1 files are
/// refused with [`SelectionError::UnsupportedVersion`].
pub const SCHEMA_VERSION: u32 = 5;

/// One scored group and whether it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupChoice {
    /// The estimator's score of the group (name, size, `b`, `a`, `value`, reliability).
    pub score: GroupScore,
    /// Whether the group trains.
    pub chosen: bool,
    /// Whether it trains whatever its value ([`AlwaysTrain`](crate::AlwaysTrain)); then
    /// `chosen` is true too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub always: bool,
    /// Paths of the parameters in the group (whole tensors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Cells of partially trained tensors in the group (units below the tensor:
    /// `Groups::split`), numbered in their tensor's tiling ([`Selection::tilings`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<CellChoice>,
    /// The LoRA options the group was offered besides training it fully (empty unless the
    /// selection was made with LoRA choices, `AdaPeftConfig::with_lora_choices`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<LoraOption>,
    /// Set when the group trains through a LoRA adapter of this rank instead of its full
    /// weight (then `chosen` is true too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraOption>,
}

/// One cell of a tensor in a group below the tensor: the tensor's path and the cell's number
/// in its tiling ([`Selection::tilings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellChoice {
    /// The tensor's dotted path.
    pub path: String,
    /// The cell, row-major over the tiling's grid.
    pub cell: u32,
}

/// One LoRA option of a weight matrix: an adapter `W + (alpha / rank) A B` of `rank`, with
/// `params = rank (d_in + d_out)` trainable parameters and the value its estimate gave it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoraOption {
    /// The adapter's rank.
    pub rank: usize,
    /// The adapter's `alpha` (burn's `Lora::new(rank, alpha)`; the scale is `alpha / rank`).
    pub alpha: f64,
    /// Trainable parameters of the adapter.
    pub params: u64,
    /// The option's value (predicted loss reduction), in the units of the groups' values.
    pub value: f64,
}

impl GroupChoice {
    /// Parameters that train when the group is chosen: the adapter's if it trains through
    /// LoRA, the group's otherwise (0 when not chosen).
    pub fn trained_params(&self) -> u64 {
        match (self.chosen, &self.lora) {
            (false, _) => 0,
            (true, Some(lora)) => lora.params,
            (true, None) => self.score.params,
        }
    }

    /// The predicted reduction of the chosen option (0 when not chosen).
    pub fn chosen_value(&self) -> f64 {
        match (self.chosen, &self.lora) {
            (false, _) => 0.0,
            (true, Some(lora)) => lora.value,
            (true, None) => self.score.value,
        }
    }

    /// Paths of the tensors that train when the group is chosen: its own, or for a LoRA
    /// choice the adapter factors burn attaches (`<path>.lora.a`, `<path>.lora.b`).
    pub fn trained_paths(&self) -> Vec<String> {
        match &self.lora {
            Some(_) => self
                .paths
                .iter()
                .flat_map(|p| [format!("{p}.lora.a"), format!("{p}.lora.b")])
                .collect(),
            None => self.paths.clone(),
        }
    }

    /// The group's value per parameter (its knapsack ratio).
    pub fn value_per_param(&self) -> f64 {
        if self.score.params == 0 {
            0.0
        } else {
            self.score.value / self.score.params as f64
        }
    }
}

/// The settings a selection was made with: enough to make it again (the estimator, the budget
/// and the front's precision are typed; the grouping is recorded in words, since a custom
/// grouping's burn `ParamGroup`s have no serialised form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionSettings {
    /// The estimator and its settings.
    pub estimator: AnyEstimator,
    /// The grouping, as its `Display` writes it (`per-tensor`, `regex [..]`, ...).
    pub grouping: String,
    /// The budget as given.
    pub budget: Budget,
    /// The budget in parameters it resolved to.
    pub budget_params: u64,
    /// The approximation of the Pareto front (`0` for the exact front).
    pub front_epsilon: f64,
    /// Number of batches the scores were estimated on.
    pub batches: usize,
    /// How subsets were valued (absent in files written before it existed: additive).
    #[serde(default)]
    pub value_model: ValueModel,
    /// Which groups were scored (absent in files written before it existed: all).
    #[serde(default)]
    pub candidates: Candidates,
    /// The always-train rule, in words (`module head at 1e-2`; absent when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always: Option<String>,
    /// The held-out settings (absent when no batch was held out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOut>,
}

/// The result of a selection: every scored group with its verdict, the chosen subset, the
/// Pareto front of (trainable parameters, predicted loss reduction), the estimator's cost and
/// the settings.
///
/// Apply it to the model with [`Selection::apply`], hand its parameters to your own code with
/// [`Selection::param_group`], print it (`Display` shows [`Selection::summary`] and a table),
/// store it with [`Selection::to_json`], and carry it to a bigger or smaller model of the same
/// family with [`Selection::transfer_to`].
///
/// ```
/// use adapeft_importance::{Objective, discover};
/// use adapeft_selection::{AdaPeft, Budget, Selection};
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
///     hidden: LinearConfig::new(8, 16).init(&device),
///     head: LinearConfig::new(16, 2).init(&device),
/// };
/// let x = Tensor::random([32, 8], Distribution::Normal(0.0, 1.0), &device);
/// let selection = AdaPeft::select(&model, &x, Budget::Params(40))?;
///
/// println!("{selection}"); // the summary line and one row per group
/// assert!(selection.trainable_params() <= 40);
/// assert_eq!(selection.settings().budget, Budget::Params(40));
/// // Exactly the chosen tensors require gradients afterwards.
/// let model = selection.apply(model);
/// let trains: Vec<String> = discover(&model)
///     .into_iter()
///     .filter(|p| p.require_grad)
///     .map(|p| p.path)
///     .collect();
/// assert_eq!(trains, selection.chosen_paths());
/// // A selection round-trips through JSON, settings included.
/// assert_eq!(Selection::from_json(&selection.to_json())?, selection);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    /// The predicted reduction of the chosen subset when it is not the sum of the chosen
    /// groups' values (a joint value model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    predicted: Option<f64>,
    /// What held-out batches said of the subset (selections made with `HeldOut`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    validation: Option<Validation>,
    /// The tiling of every tensor cut into cells, by path (groups below the tensor).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tilings: BTreeMap<String, Tiling>,
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
            && self.predicted == other.predicted
            && self.validation == other.validation
            && self.tilings == other.tilings
    }
}

impl Selection {
    /// Assembles a selection (the selector's job: `AdaPeftConfig` in this crate). `front`
    /// is over the groups, in order (item `k` is group `k`); `total_params` counts every float
    /// parameter of the model, grouped or not; `(cost, loss)` are the estimate's.
    pub(crate) fn new(
        groups: Vec<GroupChoice>,
        total_params: u64,
        front: ParetoFront,
        outcome: BudgetOutcome,
        (cost, loss): (Cost, Option<f64>),
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
            predicted: None,
            validation: None,
            tilings: BTreeMap::new(),
        }
    }

    /// Records the tilings of the tensors cut into cells.
    pub(crate) fn with_tilings(mut self, tilings: BTreeMap<String, Tiling>) -> Self {
        self.tilings = tilings;
        self
    }

    /// The tiling of every tensor cut into cells (units below the tensor), by path; empty
    /// for a selection of whole tensors.
    pub fn tilings(&self) -> &BTreeMap<String, Tiling> {
        &self.tilings
    }

    /// The chosen cells of each partially trained tensor, by path (ascending cells); empty
    /// when every chosen group is made of whole tensors. Train such a selection with
    /// `Masked` or a `GradientMask` (adapeft-optim), which train only these cells.
    pub fn partial(&self) -> BTreeMap<String, Vec<u32>> {
        let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for cell in self.chosen().flat_map(|g| &g.cells) {
            out.entry(cell.path.clone()).or_default().push(cell.cell);
        }
        for cells in out.values_mut() {
            cells.sort_unstable();
        }
        out
    }

    /// Records what the held-out batches said.
    pub(crate) fn with_validation(mut self, validation: Validation) -> Self {
        self.validation = Some(validation);
        self
    }

    /// Records the budget as given and what it came to (for `Budget::Auto`, made at one of
    /// the sizes it tried).
    pub(crate) fn with_budget(mut self, budget: Budget, budget_params: u64) -> Self {
        self.settings.budget = budget;
        self.settings.budget_params = budget_params;
        self
    }

    /// What held-out batches said of the chosen subset: its trial runs at each rate, the
    /// recommended rate, and for [`Budget::Auto`] the sizes it tried (`None` for a selection
    /// made without [`HeldOut`](crate::HeldOut)).
    pub fn validation(&self) -> Option<&Validation> {
        self.validation.as_ref()
    }

    /// The learning rate to train the chosen subset at: the rate whose short run lowered
    /// the held-out loss most (`None` without held-out batches, or when no rate lowered it).
    pub fn recommended_learning_rate(&self) -> Option<f64> {
        self.validation.as_ref().and_then(|v| v.learning_rate)
    }

    /// Sets the predicted reduction of the chosen subset, for value models that are not the
    /// sum of the chosen groups' values (see [`Selection::predicted_reduction`]).
    pub(crate) fn with_predicted_reduction(mut self, predicted: f64) -> Self {
        self.predicted = Some(predicted);
        self
    }

    /// Every scored group, in model order, with whether it was chosen.
    pub fn groups(&self) -> &[GroupChoice] {
        &self.groups
    }

    /// The chosen groups.
    pub fn chosen(&self) -> impl Iterator<Item = &GroupChoice> {
        self.groups.iter().filter(|g| g.chosen)
    }

    /// Paths of every parameter that trains whole (for a group chosen with a LoRA adapter,
    /// the adapter's factors `<path>.lora.a` and `<path>.lora.b`, which exist once
    /// [`Selection::apply`] attached them). Tensors that train only in part are
    /// [`Selection::partial`].
    pub fn chosen_paths(&self) -> Vec<String> {
        self.chosen().flat_map(GroupChoice::trained_paths).collect()
    }

    /// Number of parameters that train (adapters counted by their own size).
    pub fn trainable_params(&self) -> u64 {
        self.groups.iter().map(GroupChoice::trained_params).sum()
    }

    /// Number of parameters that train whatever their value
    /// ([`AlwaysTrain`](crate::AlwaysTrain)), included in [`Selection::trainable_params`].
    pub fn always_params(&self) -> u64 {
        self.groups
            .iter()
            .filter(|g| g.always)
            .map(GroupChoice::trained_params)
            .sum()
    }

    /// The groups chosen with a LoRA adapter: `(weight path, option)`, in model order.
    pub fn lora_choices(&self) -> Vec<(String, LoraOption)> {
        self.chosen()
            .filter_map(|g| g.lora.map(|o| g.paths.iter().map(move |p| (p.clone(), o))))
            .flatten()
            .collect()
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

    /// The loss reduction predicted for training the chosen groups: the sum of their values
    /// (for baseline estimators, of their scores), or the joint value of the subset when the
    /// selection was made with [`ValueModel::Joint`].
    pub fn predicted_reduction(&self) -> f64 {
        self.predicted
            .unwrap_or_else(|| self.groups.iter().map(GroupChoice::chosen_value).sum())
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
    ///
    /// Groups chosen with a LoRA adapter ([`Selection::lora_choices`]) first get it: burn's
    /// `Module::apply_lora` at the chosen rank and alpha on exactly those weights (one call
    /// per rank; the factors start as burn's `A ~ N(0, 1/rank)`, `B = 0`, so the model's
    /// output is unchanged), and then only the factors of those weights train.
    pub fn apply<M: Module>(&self, model: M) -> M {
        let mut model = model;
        let mut by_rank: Vec<((usize, u64), Vec<String>)> = Vec::new();
        for (path, o) in self.lora_choices() {
            let key = (o.rank, o.alpha.to_bits());
            match by_rank.iter_mut().find(|(k, _)| *k == key) {
                Some((_, paths)) => paths.push(path),
                None => by_rank.push((key, vec![path])),
            }
        }
        for ((rank, alpha), paths) in by_rank {
            let lora = Lora::new(rank, f64::from_bits(alpha))
                .set_param_group(ParamGroup::from_paths(paths));
            model = model.apply_lora(lora);
        }
        let mut chosen: HashSet<String> = self.chosen_paths().into_iter().collect();
        chosen.extend(self.partial().into_keys());
        set_require_grad(model, |path| chosen.contains(path))
    }

    /// The chosen parameters as a burn [`ParamGroup`] (matched by path), for users who apply
    /// it themselves, for example `model.no_grad().set_require_grad_group(group, true)`. It
    /// holds the partially trained tensors ([`Selection::partial`]) whole: a burn optimizer
    /// given this group alone trains them whole, so train such a selection with `Masked`.
    pub fn param_group(&self) -> ParamGroup {
        let mut paths = self.chosen_paths();
        paths.extend(self.partial().into_keys());
        ParamGroup::from_paths(paths)
    }

    /// Serialises the selection to JSON (schema version [`SCHEMA_VERSION`]), pretty-printed
    /// to be read. Files and manifests take [`Selection::to_json_compact`]; both read back
    /// with [`Selection::from_json`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a selection always serialises")
    }

    /// [`Selection::to_json`] on one line, without the indentation: the form adapter files
    /// (`save_trained`) and checkpoints store, a third of the pretty text for a selection of
    /// many groups. Its numbers are the same shortest round-trip forms.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).expect("a selection always serialises")
    }

    /// Reads a selection written by [`Selection::to_json`].
    ///
    /// # Errors
    /// [`SelectionError::UnsupportedVersion`] for a schema version other than 2 to 5,
    /// [`SelectionError::MissingVersion`] or [`SelectionError::Json`] for text that is not a
    /// selection, [`SelectionError::InvalidCell`] for a cell without its tiling or beyond it.
    pub fn from_json(text: &str) -> Result<Self, SelectionError> {
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(SelectionError::Json)?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            // Version 4 added the cells of units below the tensor, absent from version 3;
            // version 5 writes the front as steps, and the front reads both forms.
            Some(3 | 4) => value["version"] = serde_json::Value::from(SCHEMA_VERSION),
            Some(2) => {
                // Version 2's `Auto` was the knee of the front, which version 3 calls `Knee`.
                if let Some(budget) = value.pointer_mut("/settings/budget")
                    && budget.as_str() == Some("Auto")
                {
                    *budget = serde_json::Value::String("Knee".into());
                }
                value["version"] = serde_json::Value::from(SCHEMA_VERSION);
            }
            Some(v) => {
                return Err(SelectionError::UnsupportedVersion {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            None => return Err(SelectionError::MissingVersion),
        }
        let selection: Selection = serde_json::from_value(value).map_err(SelectionError::Json)?;
        for c in selection.groups.iter().flat_map(|g| &g.cells) {
            let reason = match selection.tilings.get(&c.path) {
                None => "has no tiling",
                Some(t) if c.cell as usize >= t.cells() => "is beyond its tiling's cells",
                Some(_) => continue,
            };
            return Err(SelectionError::InvalidCell {
                path: c.path.clone(),
                cell: c.cell,
                reason,
            });
        }
        Ok(selection)
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
