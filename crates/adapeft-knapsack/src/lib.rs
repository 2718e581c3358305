//! Exact and approximate knapsack solvers and Pareto fronts, for choosing which parameter
//! groups of a model to fine-tune.
//!
//! In adapeft every parameter group `k` (a tensor, a layer, a LoRA adapter...) gets a
//! **weight** `d_k`, the number of parameters it trains, and a **value** `v_k`, the loss
//! reduction training it is predicted to bring. Choosing what to train under a parameter
//! budget is then a 0-1 knapsack problem, and choosing a budget is reading the Pareto front of
//! (parameters, predicted reduction) over all selections. Weights are parameter counts (up to
//! `1e10` per item), so nothing here builds a table over the capacity.
//!
//! # What is here
//!
//! - [`solve()`] / [`solve_classes`]: the exact optimum for one capacity; [`solve_with`] /
//!   [`solve_classes_with`] within a relative optimality gap ([`SolveOptions`]), for a
//!   million items.
//! - [`greedy()`]: ratio greedy with the standard fix, at least half the optimum, in `O(n log n)`.
//! - [`pareto_front`] / [`pareto_front_classes`] (and the `_with` variants taking
//!   [`FrontOptions`]): every non-dominated (total weight, total value) point with a selection
//!   achieving it, exact or within a factor `1 - epsilon` at every capacity.
//! - [`maximize_subset`] / [`greedy_subset_front`]: the same question for a value that is not
//!   a sum over items (a joint value with cross-group terms): exact enumeration for a few
//!   items, lazy greedy plus a swap local search beyond.
//! - [`Class`]: mutually exclusive options ("train this matrix fully, or as a rank-4 or rank-8
//!   LoRA adapter, or not at all"); a selection takes at most one option per class, reported
//!   as a [`Pick`]. A plain [`Item`] behaves as a one-option class.
//!
//! # Design
//!
//! One engine does all the exact work: **Nemhauser-Ullmann list merging**. It keeps the list of
//! non-dominated (weight, value) pairs of the classes merged so far, sorted by weight; merging
//! a class is a k-way merge of the list with its copies shifted by each option, followed by a
//! single dominance-pruning pass. Fronts run it to the end. The exact solvers run it with two
//! extra prunings, which makes it a dynamic program with the pruning power of branch and bound:
//! points heavier than the capacity are dropped, and so are points whose value plus the LP
//! (Dantzig) bound of the classes still to come cannot beat the best value reached so far.
//! Before merging, the exact solvers solve a small core problem around the LP's break for a
//! strong incumbent, and fix every group that Lagrangian reduction decides against it (a
//! choice whose bound at the LP's price of capacity falls below the incumbent is never
//! optimal), so only groups near the LP's break are merged: a few thousand of a million
//! units. When thousands are left, the solvers branch on the heavy ones and reduce the light
//! ones again in each branch, at that branch's own price (10^5 per-tensor-shaped groups in
//! about 50 ms instead of 0.3 to 0.8 s). The order of the merges changes no result, only the work: the solvers merge the heaviest
//! classes first (the bound over the light ones left is then nearly integral and prunes almost
//! everything; 10,000 items take milliseconds), the fronts the lightest first. Approximate
//! fronts trim the lists in value, relative to each point's value or to a lower bound on the
//! optimum at its weight, whichever is larger, spending an error budget of `epsilon` (see
//! [`pareto_front_with`]). Approximate fronts of many plain items merge only the items that
//! matter within each range of capacities and add the others greedily.
//!
//! Fronts can hold very many points, and each point's selection can hold thousands of picks,
//! so selections are never copied: each point refers to a node of an arena of links
//! `(parent node, pick)`, extending a selection is one new link, and a [`Point`]'s `chosen`
//! list is materialised by walking the chain only when asked for. Links no point refers to any
//! more are compacted away as the merging proceeds.
//!
//! Values must be finite and non-negative ([`KnapsackError`] names the offending item or
//! option otherwise); weightless items with positive value are always taken, items without
//! value never. With the `serde` feature, the public data types implement `Serialize` and
//! `Deserialize`; a [`ParetoFront`] is written with each point's selection as its change
//! from the point before it, and reads that form or [`FrontData`]'s (every selection whole).
//!
//! # Example
//!
//! ```
//! use adapeft_knapsack::{greedy, pareto_front, solve, Item};
//!
//! // (parameter count, predicted loss reduction) of five parameter groups
//! let items = [
//!     Item::new(589_824, 0.90), // attention matrix
//!     Item::new(768, 0.05),     // its bias
//!     Item::new(2_359_296, 2.10), // FFN matrix
//!     Item::new(1_536, 0.08),   // LayerNorm
//!     Item::new(768, 0.01),     // another bias
//! ];
//! let budget = 600_000;
//! let best = solve(&items, budget)?;
//! assert_eq!(best.chosen, vec![0, 1, 3, 4]);
//! assert!(greedy(&items, budget)?.value >= best.value / 2.0);
//!
//! let front = pareto_front(&items)?;
//! assert_eq!(front.best_within(budget).unwrap().value, best.value);
//! for p in front.summaries() {
//!     println!("{:>9} params -> {:.3}", p.weight, p.value);
//! }
//! # Ok::<(), adapeft_knapsack::KnapsackError>(())
//! ```

#![warn(missing_docs)]

mod arena;
mod bound;
mod class;
mod core_problem;
mod error;
mod greedy;
mod instance;
mod item;
mod lower;
mod merge;
mod pareto;
mod reduce;
mod solution;
mod solve;
mod split;
mod subset;
#[cfg(test)]
mod testing;
mod trim;

pub use class::{Class, Pick};
pub use error::KnapsackError;
pub use greedy::greedy;
pub use item::Item;
pub use pareto::{
    FrontData, FrontOptions, ParetoFront, Point, PointSummary, Points, pareto_front,
    pareto_front_classes, pareto_front_classes_with, pareto_front_with,
};
pub use solution::Solution;
pub use solve::{SolveOptions, solve, solve_classes, solve_classes_with, solve_with};
pub use subset::{EXACT_SUBSET_LIMIT, SubsetSolution, greedy_subset_front, maximize_subset};
