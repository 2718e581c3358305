//! Multiple-choice classes: sets of mutually exclusive options, at most one of which is taken.

use crate::error::KnapsackError;
use crate::item::Item;

/// A set of mutually exclusive options, of which a selection takes at most one.
///
/// A class models one parameter group that can be fine-tuned in several ways, for example
/// "this attention matrix: trained fully, or a LoRA adapter of rank 4, or of rank 8".
/// Taking no option (leaving the group frozen) is always allowed and costs nothing, so it needs
/// no option of its own. A plain 0-1 item is a class with one option.
///
/// ```
/// use adapeft_knapsack::{Class, Item};
///
/// let attention = Class::new(vec![
///     Item::new(589_824, 3.0), // full matrix
///     Item::new(6_144, 1.2),   // LoRA rank 4
///     Item::new(12_288, 1.8),  // LoRA rank 8
/// ]);
/// assert_eq!(attention.options().len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Class {
    options: Vec<Item>,
}

impl Class {
    /// A class with the given options. An empty class is rejected by the solvers
    /// ([`KnapsackError::EmptyClass`]).
    pub fn new(options: Vec<Item>) -> Self {
        Self { options }
    }

    /// The options, in the order given (option indices in [`Pick`] refer to this order).
    pub fn options(&self) -> &[Item] {
        &self.options
    }
}

impl From<Item> for Class {
    /// A one-option class: the plain 0-1 choice "take the item or not".
    fn from(item: Item) -> Self {
        Self::new(vec![item])
    }
}

impl FromIterator<Item> for Class {
    fn from_iter<I: IntoIterator<Item = Item>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

/// The choice of option `option` in class `class` (indices into the input slice of classes and
/// into that class's options). Orders by class, then option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Pick {
    /// Index of the class.
    pub class: usize,
    /// Index of the option within the class.
    pub option: usize,
}

/// Checks that every class is non-empty and every option value finite and non-negative.
pub(crate) fn check_classes(classes: &[Class]) -> Result<(), KnapsackError> {
    for (class, c) in classes.iter().enumerate() {
        if c.options.is_empty() {
            return Err(KnapsackError::EmptyClass { class });
        }
        for (option, it) in c.options.iter().enumerate() {
            let value = it.value;
            if !value.is_finite() {
                return Err(KnapsackError::NonFiniteOptionValue {
                    class,
                    option,
                    value,
                });
            }
            if value < 0.0 {
                return Err(KnapsackError::NegativeOptionValue {
                    class,
                    option,
                    value,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_class_and_option() {
        let classes = [
            Class::new(vec![Item::new(1, 1.0)]),
            Class::new(vec![Item::new(1, 1.0), Item::new(2, -3.0)]),
        ];
        assert_eq!(
            check_classes(&classes),
            Err(KnapsackError::NegativeOptionValue {
                class: 1,
                option: 1,
                value: -3.0
            })
        );
        let classes = [Class::from(Item::new(1, f64::NEG_INFINITY))];
        assert!(matches!(
            check_classes(&classes),
            Err(KnapsackError::NonFiniteOptionValue {
                class: 0,
                option: 0,
                ..
            })
        ));
        let classes = [Class::from(Item::new(1, 1.0)), Class::new(vec![])];
        assert_eq!(
            check_classes(&classes),
            Err(KnapsackError::EmptyClass { class: 1 })
        );
    }

    #[test]
    fn picks_order_by_class_then_option() {
        let mut picks = vec![
            Pick {
                class: 2,
                option: 0,
            },
            Pick {
                class: 0,
                option: 1,
            },
            Pick {
                class: 0,
                option: 0,
            },
        ];
        picks.sort();
        assert_eq!(
            picks,
            [
                Pick {
                    class: 0,
                    option: 0
                },
                Pick {
                    class: 0,
                    option: 1
                },
                Pick {
                    class: 2,
                    option: 0
                }
            ]
        );
    }
}
