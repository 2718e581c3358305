//! [`SelectError`]: why a selection could not be made.

use adapeft_importance::{EstimateError, GroupingError};
use adapeft_knapsack::KnapsackError;
use thiserror::Error;

use crate::budget::BudgetError;

/// Why [`AdaPeft::select`](crate::AdaPeft::select) or one of
/// [`AdaPeftConfig`](crate::AdaPeftConfig)'s selections failed. The model and the batches are
/// never changed, error or not.
#[derive(Debug, Error)]
pub enum SelectError {
    /// The model has no float parameter.
    #[error("the model has no float parameter to select from")]
    NoParameters,
    /// The value model needs the cross-group curvature, which the estimator did not compute.
    #[error(
        "the {value_model} value model needs the cross-group curvature, which `{estimator}` does not compute: use a GradientProbe (exact, or random signs over at most MAX_CURVATURE_GROUPS groups)"
    )]
    NoCurvature {
        /// The value model.
        value_model: String,
        /// The estimator, in words.
        estimator: String,
    },
    /// LoRA choices were asked for with a setting they do not support.
    #[error(transparent)]
    LoraChoices(#[from] LoraChoicesError),
    /// Scores handed to [`Scored::new`](crate::Scored::new) do not belong to the groups.
    #[error("the scores do not match the groups: {reason}")]
    ScoresMismatch {
        /// What differs (counts, or the first group whose name differs).
        reason: String,
    },
    /// The always-trained groups ([`AlwaysTrain`](crate::AlwaysTrain)) alone exceed the
    /// budget.
    #[error(
        "the always-trained groups have {always} parameters, more than the budget of {budget}: raise the budget or train fewer always"
    )]
    AlwaysOverBudget {
        /// Their parameters.
        always: u64,
        /// The budget, in parameters.
        budget: u64,
    },
    /// The always-train rule takes some parameters of a group and not others.
    #[error(
        "the always-train rule cuts group `{group}`: it takes `{inside}` but not `{outside}` (use a rule that takes whole groups, or a finer grouping)"
    )]
    AlwaysSplitsGroup {
        /// The group.
        group: String,
        /// A member the rule takes.
        inside: String,
        /// A member it does not.
        outside: String,
    },
    /// The always-train rule takes a tensor that the unit rules
    /// ([`AdaPeftConfig::with_units`](crate::AdaPeftConfig::with_units)) cut into units:
    /// always-trained tensors stay whole.
    #[error(
        "the always-train rule takes `{path}`, which the unit rules cut into units (always-trained tensors stay whole: leave them out of the unit rules)"
    )]
    AlwaysOnUnits {
        /// The tensor.
        path: String,
    },
    /// The always-train rule takes no grouped parameter of the model (a misspelt path, or
    /// parameters the grouping leaves out).
    #[error("the always-train rule `{rule}` takes no grouped parameter of the model")]
    AlwaysMatchesNothing {
        /// The rule, in words.
        rule: String,
    },
    /// The always-trained groups' own learning rate is not finite and positive.
    #[error("the always-trained groups' learning rate {rate} is not finite and positive")]
    AlwaysLearningRate {
        /// The rate as given.
        rate: f64,
    },
    /// [`Budget::Auto`](crate::Budget::Auto) was asked for without held-out batches, or
    /// from an entry point that has no model to try subsets on.
    #[error(
        "Budget::Auto sizes the selection on held-out batches: use AdaPeftConfig::select with with_held_out(HeldOut::last(n)) (or Budget::Knee for the knee of the predicted front)"
    )]
    AutoNeedsHeldOut,
    /// A held-out setting ([`HeldOut`](crate::HeldOut)) is not valid.
    #[error("held-out setting `{name}` = {value}: {reason}")]
    HeldOut {
        /// The setting.
        name: &'static str,
        /// Its value, in words.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The budget is not valid.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// The grouping could not be built.
    #[error(transparent)]
    Grouping(#[from] GroupingError),
    /// The estimator failed (no batch, a loss that is not a scalar or not finite, ...).
    #[error(transparent)]
    Estimate(#[from] EstimateError),
    /// The knapsack solver rejected the scores.
    #[error(transparent)]
    Knapsack(#[from] KnapsackError),
}

/// LoRA choices ([`AdaPeftConfig::with_lora_choices`](crate::AdaPeftConfig::with_lora_choices))
/// with a setting or an entry point they do not support.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LoraChoicesError {
    /// A rank of 0 was offered.
    #[error("LoRA choices: rank {rank} is not positive")]
    ZeroRank {
        /// The rank as given.
        rank: usize,
    },
    /// The adapters' scale `alpha / rank` is not positive and finite.
    #[error("LoRA choices: scale {scale} is not positive and finite")]
    Scale {
        /// The scale as given.
        scale: f64,
    },
    /// LoRA choices need the additive value model (a multiple-choice knapsack over values).
    #[error(
        "LoRA choices: the {value_model} value model does not support them (use the additive one)"
    )]
    ValueModel {
        /// The configured value model.
        value_model: String,
    },
    /// The entry point cannot offer them (`select_scored`: its scores hold no adapter;
    /// sharded data: not supported across devices yet).
    #[error(
        "LoRA choices: {entry_point} cannot offer them ({reason}); use AdaPeftConfig::select on one device"
    )]
    Unsupported {
        /// The entry point called.
        entry_point: &'static str,
        /// Why it cannot.
        reason: &'static str,
    },
}
