//! Applying an adapeft [`Selection`] to a burn model.
//!
//! A [`Selection`] says which parameter groups of a model train. This crate holds everything
//! that touches the model after selection:
//!
//! - [`Selection::apply`] sets require-grad on exactly the chosen parameters (gradients only:
//!   dropout and batch-norm statistics are left as they are, unlike burn's `Module::freeze`);
//! - [`Selection::param_group`] gives the chosen parameters as a burn `ParamGroup`;
//! - [`Selection::summary`] and `Display` print the count PEFT users know and a table;
//! - [`Selection::to_json`] / [`Selection::from_json`] store it (versioned schema);
//! - [`Selection::transfer_to`] maps it onto a model with more or fewer layers;
//! - [`save_tensors`] / [`load_tensors`] write and read only the trained tensors, with the
//!   selection as the file's manifest.

mod error;
mod selection;
mod store;
mod summary;
mod transfer;

pub use error::SelectionError;
pub use selection::{BudgetOutcome, GroupChoice, SCHEMA_VERSION, Selection, SelectionSettings};
pub use store::*;
pub use summary::thousands;
