//! Errors of the optimizer adapters.

use thiserror::Error;

/// What can go wrong when configuring or running an optimizer adapter.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum OptimError {
    /// A setting is outside its allowed range.
    #[error("invalid setting `{name}` = {value}: {reason}")]
    InvalidSetting {
        /// The setting's name, as in the config struct.
        name: &'static str,
        /// The value given, formatted.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// Per-group learning rates were asked of a selection that chose nothing.
    #[error("the selection chose no group, so it gives no per-group learning rate")]
    NothingChosen,
    /// A chosen group has no usable Newton step `b / a` (non-positive or non-finite).
    #[error(
        "group `{group}` has no usable Newton learning rate: b = {b}, a = {a} (per-group rates need curvature scores: select with a GradientProbe or a ForwardProbe)"
    )]
    NoNewtonRate {
        /// The group's name.
        group: String,
        /// Its slope.
        b: f64,
        /// Its curvature.
        a: f64,
    },
    /// The curvature given for per-group rates is not the one of the selection's scores.
    #[error(
        "the curvature covers {curvature} groups but the selection has {groups}: pass the curvature of the scores the selection was made from"
    )]
    CurvatureMismatch {
        /// Groups of the curvature.
        curvature: usize,
        /// Groups of the selection.
        groups: usize,
    },
    /// A parameter inside a mask has a rank burn's optimizers cannot step (see
    /// [`GradientMask::check`](crate::GradientMask::check)).
    #[error(
        "parameter `{path}` has rank {rank}; burn's optimizers train parameters of rank 1 to {}",
        crate::mask::MAX_TRAINABLE_RANK
    )]
    UnsupportedRank {
        /// The parameter's dotted path.
        path: String,
        /// Its rank.
        rank: usize,
    },
    /// The cells of a partially trained parameter ([`CellMask`](crate::CellMask)) do not fit
    /// it.
    #[error("invalid cells for parameter `{path}`: {reason}")]
    InvalidCells {
        /// The parameter's dotted path (empty when the cells were checked on their own).
        path: String,
        /// What does not fit.
        reason: String,
    },
    /// The loss closure returned a tensor with more than one element.
    #[error("the loss must be a scalar tensor of shape [1], got shape {shape:?}")]
    NotScalar {
        /// The shape returned.
        shape: Vec<usize>,
    },
}
