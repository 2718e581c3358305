//! The names the README and the examples use, in one import:
//!
//! ```
//! use adapeft::prelude::*;
//! ```
//!
//! It brings the selector ([`AdaPeft`], [`AdaPeftConfig`], [`Budget`]), the traits needed to
//! call it and its estimators ([`Objective`], [`Estimator`]), the estimators and their
//! settings, [`Selection`], the optimizer adapters, saving and loading, and [`AdaPeftError`].

pub use crate::{
    AdaPeft, AdaPeftConfig, AdaPeftError, AlwaysTrain, AnyEstimator, Baseline, Budget,
    BudgetOutcome, Candidates, Direction, Estimator, ForwardProbe, Gen, GenConfig, GradientMask,
    GradientProbe, Grouping, HeldOut, LoraChoices, Masked, Objective, ProbeMode, ProbeRun,
    RateRule, Reselect, Selection, ShortRun, ValueModel, load_checkpoint, load_trained,
    save_checkpoint, save_trained,
};
