//! Exact solutions for one capacity: list merging pruned by capacity and by the LP bound.

use crate::class::{Class, Pick};
use crate::error::KnapsackError;
use crate::instance::Instance;
use crate::item::Item;
use crate::merge::{MergeOptions, Merged, merge_all};
use crate::pareto::pick_table;
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
    let inst = Instance::from_items(items, Some(capacity))?;
    let merged = merge_all(&inst, bounded(capacity))?;
    let chosen = best_picks(&merged).map(|flat| flat as usize).collect();
    Ok(Solution::of_items(items, chosen))
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
    let inst = Instance::from_classes(classes, Some(capacity))?;
    let merged = merge_all(&inst, bounded(capacity))?;
    let table = pick_table(classes);
    let chosen = best_picks(&merged)
        .map(|flat| table[flat as usize])
        .collect();
    Ok(Solution::of_picks(classes, chosen))
}

fn bounded(capacity: u64) -> MergeOptions {
    MergeOptions {
        capacity: Some(capacity),
        epsilon: 0.0,
        bound: true,
    }
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
