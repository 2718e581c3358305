//! Exact solutions for one capacity: list merging pruned by capacity and by the LP bound.

use crate::bound::LpBound;
use crate::class::{Class, Pick};
use crate::error::KnapsackError;
use crate::instance::Instance;
use crate::item::Item;
use crate::merge::{MergeOptions, Merged, merge_all};
use crate::pareto::pick_table;
use crate::reduce::{greedy_fill, reduce};
use crate::solution::Solution;

/// The exact optimum of the 0-1 knapsack: the most valuable subset of `items` whose total
/// weight is at most `capacity`.
///
/// # Algorithm
///
/// Dynamic programming over non-dominated states (Nemhauser-Ullmann list merging), pruned
/// like branch and bound. Items are merged in order of decreasing value/weight; after each
/// merge the list holds the non-dominated (weight, value) pairs of subsets of the merged
/// items, and a pair is dropped when it is
/// - heavier than `capacity`, or
/// - hopeless: its value plus the Dantzig (LP) bound of the items not merged yet, for the
///   capacity it leaves, is below the best value already reached (the incumbent, which starts
///   at the greedy fill).
///
/// Dominance makes this robust where depth-first branch and bound is not (many items of
/// similar ratio, many equal weights), and the bound keeps the lists short: an item whose
/// ratio is far from the critical one is decided as soon as it is merged. No table over the
/// capacity is built, so weights may be as large as `u64` allows. The result is exact up to
/// floating-point rounding of the values (ties within `1e-9` of the total value are kept, never
/// pruned).
///
/// Weightless items with positive value are always taken; items without value never are.
/// Among optimal subsets the lightest is returned. Items heavier than `capacity` are ignored,
/// and sums that would overflow `u64` exceed any capacity, so this never reports
/// [`KnapsackError::WeightOverflow`].
///
/// # Errors
///
/// [`KnapsackError::NonFiniteValue`] or [`KnapsackError::NegativeValue`] for the first bad item.
///
/// ```
/// use adapeft_knapsack::{solve, Item};
///
/// let items = [Item::new(5, 10.0), Item::new(4, 7.0), Item::new(3, 5.5), Item::new(6, 12.5)];
/// let sol = solve(&items, 10)?;
/// assert_eq!(sol.chosen, vec![1, 3]);
/// assert_eq!((sol.weight, sol.value), (10, 19.5));
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn solve(items: &[Item], capacity: u64) -> Result<Solution, KnapsackError> {
    solve_with(items, capacity, SolveOptions::default())
}

/// Options of [`solve_with`] and [`solve_classes_with`].
///
/// ```
/// use adapeft_knapsack::SolveOptions;
///
/// let opts = SolveOptions::new().with_gap(1e-6);
/// assert_eq!(opts.gap, 1e-6);
/// assert_eq!(SolveOptions::default().gap, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SolveOptions {
    /// Relative optimality gap in `[0, 1)`; `0` (the default) solves exactly.
    ///
    /// With `gap > 0` the solution is worth at least `(1 - gap)` times the optimum: the
    /// greedy fill is kept as the incumbent, and everything that cannot beat it by more than
    /// the gap is pruned. The values adapeft solves over are estimates whose noise is far
    /// above `1e-6` of their sum, and on a million model-shaped items that gap is what makes
    /// a selection take a second instead of minutes (`docs/performance.md` has the times).
    pub gap: f64,
}

impl SolveOptions {
    /// The default options: exact.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`SolveOptions::gap`].
    pub fn with_gap(mut self, gap: f64) -> Self {
        self.gap = gap;
        self
    }

    fn check(&self) -> Result<(), KnapsackError> {
        if (0.0..1.0).contains(&self.gap) {
            Ok(())
        } else {
            Err(KnapsackError::InvalidGap { gap: self.gap })
        }
    }
}

/// [`solve`] with a relative optimality gap (see [`SolveOptions`]): a subset of `items`
/// within `capacity` worth at least `(1 - gap)` times the optimum.
///
/// # Errors
///
/// As [`solve`], plus [`KnapsackError::InvalidGap`].
///
/// ```
/// use adapeft_knapsack::{solve, solve_with, Item, SolveOptions};
///
/// let items: Vec<Item> = (1..=300u64).map(|i| Item::new(i % 17 + 1, (i % 7) as f64 + 1.0)).collect();
/// let exact = solve(&items, 400)?;
/// let near = solve_with(&items, 400, SolveOptions::new().with_gap(0.01))?;
/// assert!(near.weight <= 400 && near.value >= 0.99 * exact.value);
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn solve_with(
    items: &[Item],
    capacity: u64,
    opts: SolveOptions,
) -> Result<Solution, KnapsackError> {
    opts.check()?;
    let inst = Instance::from_items(items, Some(capacity))?;
    let chosen = solve_instance(&inst, capacity, opts.gap)?;
    Ok(Solution::of_items(
        items,
        chosen.into_iter().map(|flat| flat as usize).collect(),
    ))
}

/// The picks (flat ids) of the best selection found for `inst` at `capacity`: exact with
/// `gap == 0`, else within the gap.
///
/// The Lagrangian reduction ([`crate::reduce`]) fixes the groups far from the LP's break, and
/// the bounded merge solves the rest. With a gap, the merge also prunes against the greedy
/// fill of the reduced instance over `1 - gap`, so the answer is the best of the merge's best
/// point and the greedy fills of the reduced and of the whole instance (see
/// `MergeOptions::gap`).
fn solve_instance(inst: &Instance, capacity: u64, gap: f64) -> Result<Vec<u32>, KnapsackError> {
    let reduced = reduce(inst, capacity, gap);
    if reduced.certified {
        return Ok(reduced.greedy.0);
    }
    let opts = MergeOptions {
        capacity: Some(reduced.capacity),
        epsilon: 0.0,
        bound: true,
        gap,
    };
    let merged = merge_all(&reduced.inst, opts)?;
    let best_value = merged.v.last().copied().unwrap_or(reduced.inst.base_value);
    let best: Vec<u32> = best_picks(&merged).collect();
    if gap == 0.0 {
        return Ok(best);
    }
    let lp = LpBound::new(&reduced.inst);
    let local = greedy_fill(&reduced.inst, &lp, reduced.capacity);
    let mut out = (best, best_value);
    for candidate in [local, reduced.greedy] {
        if candidate.1 > out.1 {
            out = candidate;
        }
    }
    Ok(out.0)
}

/// The exact optimum of the multiple-choice knapsack: at most one option from each class,
/// total weight at most `capacity`, greatest total value.
///
/// Same algorithm as [`solve`], merging one class at a time; the bound is the LP relaxation of
/// the classes not merged yet (greedy over the upper convex hulls of their options, in order
/// of decreasing slope). Options without value, heavier than `capacity`, or dominated by a
/// lighter and at-least-as-valuable option of the same class are never chosen.
///
/// # Errors
///
/// [`KnapsackError::EmptyClass`], [`KnapsackError::NonFiniteOptionValue`] or
/// [`KnapsackError::NegativeOptionValue`] for the first bad class.
///
/// ```
/// use adapeft_knapsack::{solve_classes, Class, Item, Pick};
///
/// let classes = [
///     // a matrix: trained fully, or a rank-4 or rank-8 adapter
///     Class::new(vec![Item::new(1000, 10.0), Item::new(80, 4.0), Item::new(160, 6.0)]),
///     // a bias vector
///     Class::new(vec![Item::new(40, 3.0)]),
/// ];
/// let sol = solve_classes(&classes, 200)?;
/// assert_eq!(sol.chosen, vec![Pick { class: 0, option: 2 }, Pick { class: 1, option: 0 }]);
/// assert_eq!(sol.value, 9.0);
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn solve_classes(classes: &[Class], capacity: u64) -> Result<Solution<Pick>, KnapsackError> {
    solve_classes_with(classes, capacity, SolveOptions::default())
}

/// [`solve_classes`] with a relative optimality gap (see [`SolveOptions`]).
///
/// # Errors
///
/// As [`solve_classes`], plus [`KnapsackError::InvalidGap`].
pub fn solve_classes_with(
    classes: &[Class],
    capacity: u64,
    opts: SolveOptions,
) -> Result<Solution<Pick>, KnapsackError> {
    opts.check()?;
    let inst = Instance::from_classes(classes, Some(capacity))?;
    let table = pick_table(classes);
    let chosen = solve_instance(&inst, capacity, opts.gap)?
        .into_iter()
        .map(|flat| table[flat as usize])
        .collect();
    Ok(Solution::of_picks(classes, chosen))
}

/// The picks of the heaviest (so most valuable) state; the list always has the base state.
fn best_picks(merged: &Merged) -> impl Iterator<Item = u32> + '_ {
    let node = merged.node.last().copied().unwrap_or(crate::arena::ROOT);
    merged.arena.picks(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_and_zero_capacity() {
        assert_eq!(solve(&[], 100).unwrap(), Solution::default());
        let items = [Item::new(1, 5.0), Item::new(2, 1.0)];
        assert_eq!(solve(&items, 0).unwrap(), Solution::default());
        assert_eq!(solve_classes(&[], 7).unwrap(), Solution::default());
    }

    #[test]
    fn weightless_items_are_always_taken() {
        let items = [
            Item::new(0, 1.0),
            Item::new(5, 3.0),
            Item::new(0, 0.0),
            Item::new(0, 2.0),
        ];
        let sol = solve(&items, 0).unwrap();
        assert_eq!(sol.chosen, vec![0, 3]);
        assert_eq!((sol.weight, sol.value), (0, 3.0));
        let sol = solve(&items, 5).unwrap();
        assert_eq!(sol.chosen, vec![0, 1, 3]);
    }

    #[test]
    fn beats_the_greedy_fill() {
        // Greedy by ratio takes 0 and 2 (value 14); the optimum is 1 and 2 (value 15).
        let items = [Item::new(3, 6.0), Item::new(5, 7.0), Item::new(5, 8.0)];
        let sol = solve(&items, 10).unwrap();
        assert_eq!(sol.chosen, vec![1, 2]);
        assert_eq!(sol.value, 15.0);
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let items = [
            Item::new(u64::MAX - 1, 3.0),
            Item::new(u64::MAX - 1, 2.0),
            Item::new(1, 1.0),
        ];
        let sol = solve(&items, u64::MAX).unwrap();
        assert_eq!(sol.chosen, vec![0, 2]);
        assert_eq!(sol.weight, u64::MAX);
    }

    #[test]
    fn classes_take_at_most_one_option() {
        // Two cheap options of class 0 would together beat anything, but only one may be taken.
        let classes = [
            Class::new(vec![
                Item::new(1, 10.0),
                Item::new(1, 9.0),
                Item::new(2, 11.0),
            ]),
            Class::new(vec![Item::new(2, 2.0)]),
        ];
        let sol = solve_classes(&classes, 2).unwrap();
        assert_eq!(
            sol.chosen,
            vec![Pick {
                class: 0,
                option: 2
            }]
        );
        let sol = solve_classes(&classes, 3).unwrap();
        assert_eq!(
            sol.chosen,
            vec![
                Pick {
                    class: 0,
                    option: 0
                },
                Pick {
                    class: 1,
                    option: 0
                }
            ]
        );
        assert_eq!((sol.weight, sol.value), (3, 12.0));
    }

    #[test]
    fn errors_name_the_input() {
        assert_eq!(
            solve(&[Item::new(1, 1.0), Item::new(1, -1.0)], 3),
            Err(KnapsackError::NegativeValue {
                item: 1,
                value: -1.0
            })
        );
        assert_eq!(
            solve_classes(&[Class::new(vec![])], 3),
            Err(KnapsackError::EmptyClass { class: 0 })
        );
    }
}
