//! Items of the 0-1 knapsack: a weight (parameter count) and a value (predicted gain).

use crate::error::KnapsackError;

/// One candidate for selection: a group of parameters with its size and predicted value.
///
/// `weight` is an integer cost (in adapeft, the number of parameters the group trains) and
/// `value` the predicted benefit of training it (the predicted loss reduction `v_k`). Values
/// must be finite and `>= 0`; the solvers check this and report the offending index.
///
/// ```
/// use adapeft_knapsack::Item;
///
/// let bias = Item::new(768, 0.25);
/// assert_eq!(bias.weight, 768);
/// assert!((bias.ratio() - 0.25 / 768.0).abs() < 1e-18);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Item {
    /// The cost of selecting the item (a parameter count; any `u64`).
    pub weight: u64,
    /// The benefit of selecting the item (finite, `>= 0`).
    pub value: f64,
}

impl Item {
    /// An item with the given weight and value. Nothing is checked here; the solvers validate.
    pub const fn new(weight: u64, value: f64) -> Self {
        Self { weight, value }
    }

    /// Value per unit of weight: `value / weight`, `+inf` for a weightless item with positive
    /// value and `0` for a weightless item without value.
    pub fn ratio(&self) -> f64 {
        ratio(self.weight, self.value)
    }
}

/// `value / weight` with the conventions of [`Item::ratio`].
pub(crate) fn ratio(weight: u64, value: f64) -> f64 {
    if weight == 0 {
        if value > 0.0 { f64::INFINITY } else { 0.0 }
    } else {
        value / weight as f64
    }
}

/// Checks that every item's value is finite and non-negative, naming the first bad item.
pub(crate) fn check_items(items: &[Item]) -> Result<(), KnapsackError> {
    for (item, it) in items.iter().enumerate() {
        let value = it.value;
        if !value.is_finite() {
            return Err(KnapsackError::NonFiniteValue { item, value });
        }
        if value < 0.0 {
            return Err(KnapsackError::NegativeValue { item, value });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_conventions() {
        assert_eq!(Item::new(0, 1.0).ratio(), f64::INFINITY);
        assert_eq!(Item::new(0, 0.0).ratio(), 0.0);
        assert_eq!(Item::new(4, 2.0).ratio(), 0.5);
    }

    #[test]
    fn check_names_the_first_bad_item() {
        let items = [
            Item::new(1, 1.0),
            Item::new(2, f64::NAN),
            Item::new(3, -1.0),
        ];
        match check_items(&items) {
            Err(KnapsackError::NonFiniteValue { item: 1, value }) => assert!(value.is_nan()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            check_items(&items[2..]),
            Err(KnapsackError::NegativeValue {
                item: 0,
                value: -1.0
            })
        );
        assert_eq!(
            check_items(&[Item::new(1, f64::INFINITY)]),
            Err(KnapsackError::NonFiniteValue {
                item: 0,
                value: f64::INFINITY
            })
        );
        // Negative zero is zero.
        assert_eq!(check_items(&[Item::new(1, -0.0)]), Ok(()));
    }
}
