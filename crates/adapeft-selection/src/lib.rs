//! The selection step of adapeft: from scores to the subset that trains, and everything that
//! touches a model after it.
//!
//! A [`Selection`] says which parameter groups of a model train, why, and within which
//! [`Budget`]. This crate holds:
//!
//! - the selector: [`AdaPeft::select`] and [`AdaPeftConfig`] (estimator, grouping, value
//!   model, candidates, [`LoraChoices`], [`AlwaysTrain`]) group the parameters, score them with an estimator
//!   of `adapeft-importance` and solve the knapsack of `adapeft-knapsack` (exactly at the
//!   budget, with the whole Pareto front); [`AdaPeftConfig`]'s docs say which entry point to
//!   call when;
//! - [`Budget`] (parameters, fraction, memory, `Auto`, `Knee`), resolved to a parameter count once,
//!   its [`BudgetError`], and the [`BudgetOutcome`];
//! - [`Selection::apply`] sets require-grad on exactly the chosen parameters (gradients only:
//!   dropout and batch-norm statistics are left as they are, unlike burn's `Module::freeze`);
//! - [`Selection::param_group`] gives the chosen parameters as a burn `ParamGroup`;
//! - [`Selection::summary`] and `Display` print the count PEFT users know and a table;
//! - [`Selection::to_json`] / [`Selection::from_json`] store it (versioned schema);
//! - [`Selection::transfer_to`] maps it onto a model with more or fewer layers;
//! - [`save_tensors`] / [`load_tensors`] write and read only the trained tensors, with the
//!   selection as the file's manifest, checked on load by the [`integrity`] module (one
//!   checksum format and one [`IntegrityError`](integrity::IntegrityError) for adapter files
//!   and checkpoints).
//!
//! The optimizer-side masks (`Masked`, `GradientMask`) are in `adapeft-optim`; the `adapeft`
//! crate re-exports all of it.
//!
//! ```
//! use adapeft_selection::{Budget, BudgetError};
//!
//! // A budget resolves once, against the model's parameter count.
//! assert_eq!(Budget::Fraction(0.01).resolve(250_000)?, Some(2_500));
//! assert_eq!(Budget::memory_adam(16_000).resolve(250_000)?, Some(1_000));
//! assert_eq!(Budget::Auto.resolve(250_000)?, None); // sized on held-out batches
//! assert!(Budget::Fraction(-0.5).resolve(250_000).is_err());
//! # Ok::<(), BudgetError>(())
//! ```

mod budget;
mod error;
pub mod integrity;
mod select;
mod selection;
mod store;
mod summary;
mod transfer;

pub use budget::{Budget, BudgetError, BudgetOutcome, Candidates};
pub use error::SelectionError;
pub use select::{
    AdaPeft, AdaPeftConfig, AlwaysTrain, AutoCandidate, Data, HeldOut, LoraChoices,
    LoraChoicesError, RateRule, Scored, SelectError, Validation,
};
pub use selection::{
    CellChoice, GroupChoice, LoraOption, SCHEMA_VERSION, Selection, SelectionSettings,
};
pub use store::{
    CELLS_KEY, CELLS_SUFFIX, COMPRESS_ABOVE, INTEGRITY_KEY, MANIFEST_DEFLATE_KEY, MANIFEST_KEY,
    STORE_VERSION, StoreError, StoredCells, VERSION_KEY, load_tensors, read_manifest, save_tensors,
    save_tensors_and_cells,
};
