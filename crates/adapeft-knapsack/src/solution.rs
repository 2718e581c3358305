//! The answer for one capacity.

use crate::class::{Class, Pick};
use crate::item::Item;

/// A selection for one capacity: what was chosen, its total weight and its total value.
///
/// `C` is the type of one choice: an item index (`usize`) for plain items, a [`Pick`] for
/// multiple-choice classes. `chosen` is sorted ascending, and `weight` and `value` are the
/// totals of exactly those choices (recomputed from the input, summed in `chosen` order).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Solution<C = usize> {
    /// The chosen items (or picks), sorted ascending.
    pub chosen: Vec<C>,
    /// Total weight of the chosen items.
    pub weight: u64,
    /// Total value of the chosen items.
    pub value: f64,
}

impl<C> Default for Solution<C> {
    /// The empty selection.
    fn default() -> Self {
        Self {
            chosen: Vec::new(),
            weight: 0,
            value: 0.0,
        }
    }
}

impl Solution<usize> {
    /// The selection of `chosen` (sorted here) with totals recomputed from `items`. The
    /// caller guarantees the indices are valid and the weight fits (it is within a capacity).
    pub(crate) fn of_items(items: &[Item], mut chosen: Vec<usize>) -> Self {
        chosen.sort_unstable();
        let weight = chosen
            .iter()
            .map(|&i| items[i].weight)
            .fold(0u64, u64::saturating_add);
        let value = chosen.iter().map(|&i| items[i].value).sum();
        Self {
            chosen,
            weight,
            value,
        }
    }
}

impl Solution<Pick> {
    /// Like [`Solution::of_items`], for picks from `classes`.
    pub(crate) fn of_picks(classes: &[Class], mut chosen: Vec<Pick>) -> Self {
        chosen.sort_unstable();
        let option = |p: &Pick| classes[p.class].options()[p.option];
        let weight = chosen
            .iter()
            .map(|p| option(p).weight)
            .fold(0u64, u64::saturating_add);
        let value = chosen.iter().map(|p| option(p).value).sum();
        Self {
            chosen,
            weight,
            value,
        }
    }
}
