//! The ratio greedy with the standard fix: a fast 1/2-approximation.

use crate::error::KnapsackError;
use crate::item::{Item, check_items};
use crate::solution::Solution;

/// Greedy selection by value per weight, never worse than half the optimum.
///
/// Items are taken in order of decreasing `value / weight` (weightless items with value
/// first) whenever they still fit, skipping those that do not. That fill alone can be
/// arbitrarily bad (a tiny item with a great ratio can block one huge valuable item), so the
/// answer is the better of the fill and the most valuable single item that fits (plus the
/// weightless items, which are free).
///
/// **Guarantee**: `value >= OPT / 2`. Let `k` be the first item (in ratio order) the fill
/// skipped; the Dantzig bound gives `OPT <= (value of the items before k) + value(k)
/// <= fill + best single item <= 2 * answer`.
///
/// Items without value are never chosen. Runs in `O(n log n)`. Errors as [`solve`](fn@crate::solve).
///
/// ```
/// use adapeft_knapsack::{greedy, Item};
///
/// // The fill takes the small item (ratio 2) and then cannot fit the big one (ratio 1.9).
/// let items = [Item::new(1, 2.0), Item::new(10, 19.0)];
/// let sol = greedy(&items, 10)?;
/// assert_eq!(sol.chosen, vec![1]);
/// assert_eq!(sol.value, 19.0);
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn greedy(items: &[Item], capacity: u64) -> Result<Solution, KnapsackError> {
    check_items(items)?;
    let mut order: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].value > 0.0 && items[i].weight <= capacity)
        .collect();
    order.sort_by(|&a, &b| items[b].ratio().total_cmp(&items[a].ratio()));

    let mut fill = Vec::new();
    let (mut residual, mut fill_value) = (capacity, 0.0);
    for &i in &order {
        if items[i].weight <= residual {
            residual -= items[i].weight;
            fill_value += items[i].value;
            fill.push(i);
        }
    }
    let single = order
        .iter()
        .copied()
        .filter(|&i| items[i].weight > 0)
        .max_by(|&a, &b| items[a].value.total_cmp(&items[b].value));
    if let Some(s) = single {
        let free: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| items[i].weight == 0)
            .collect();
        let free_value: f64 = free.iter().map(|&i| items[i].value).sum();
        if items[s].value + free_value > fill_value {
            let mut chosen = free;
            chosen.push(s);
            return Ok(Solution::of_items(items, chosen));
        }
    }
    Ok(Solution::of_items(items, fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_zero_capacity() {
        assert_eq!(greedy(&[], 10).unwrap(), Solution::default());
        let items = [Item::new(3, 1.0), Item::new(0, 2.0), Item::new(0, 0.0)];
        let sol = greedy(&items, 0).unwrap();
        assert_eq!(sol.chosen, vec![1]);
        assert_eq!((sol.weight, sol.value), (0, 2.0));
    }

    #[test]
    fn the_fix_beats_a_blocked_fill() {
        let items = [Item::new(1, 2.0), Item::new(100, 150.0), Item::new(0, 1.0)];
        let sol = greedy(&items, 100).unwrap();
        assert_eq!(sol.chosen, vec![1, 2]);
        assert_eq!(sol.value, 151.0);
    }

    #[test]
    fn fill_continues_past_items_that_do_not_fit() {
        let items = [Item::new(6, 12.0), Item::new(6, 11.0), Item::new(4, 4.0)];
        let sol = greedy(&items, 10).unwrap();
        assert_eq!(sol.chosen, vec![0, 2]);
        assert_eq!(sol.weight, 10);
    }

    #[test]
    fn errors_name_the_item() {
        let items = [Item::new(1, 1.0), Item::new(1, -2.0)];
        assert_eq!(
            greedy(&items, 5),
            Err(KnapsackError::NegativeValue {
                item: 1,
                value: -2.0
            })
        );
    }
}
