//! The parameters of a model and their groups, the first two steps of the pipeline:
//!
//! - `walk.rs`: the one path-tracking walk over a module's float parameters
//!   ([`visit_params`](walk::visit_params), [`map_params`](walk::map_params),
//!   [`set_require_grad`](walk::set_require_grad));
//! - `discover.rs`: the list of those parameters ([`discover`](discover::discover),
//!   [`layout`](discover::layout));
//! - `grouping.rs`: their partition into disjoint named groups
//!   ([`Grouping`](grouping::Grouping), [`Groups`](grouping::Groups));
//! - `units.rs`: groups below the tensor, cells of tiled tensors
//!   ([`UnitRules`](units::UnitRules), [`Groups::split`](grouping::Groups::split)).
//!
//! Each file depends only on the ones above it (and `grouping.rs` on the crate's errors;
//! `grouping.rs` and `units.rs` on each other: a group holds parts, units are cut from groups);
//! nothing here knows of estimators.

pub(crate) mod discover;
pub(crate) mod grouping;
pub(crate) mod units;
pub(crate) mod walk;
