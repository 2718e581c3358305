//! The normalised instance every solver works on.
//!
//! Items and classes are both turned into a list of [`Group`]s: classes with their useless
//! options removed (no value, too heavy for the capacity, or dominated by a lighter option of
//! the same class), sorted by weight. Classes whose best choice is forced (a weightless option
//! that beats every alternative, such as a weightless item with positive value) are folded
//! into a base selection instead of being merged. Options are addressed by a flat `u32` id
//! (`class offset + option`), which is what the subset arena stores.

use crate::class::{Class, check_classes};
use crate::error::KnapsackError;
use crate::item::{Item, check_items};

/// One option that survived normalisation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opt {
    pub w: u64,
    pub v: f64,
    /// Flat id of the option (index into the choice table).
    pub flat: u32,
}

/// A class that must be merged: options sorted by strictly increasing weight and value.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub options: Vec<Opt>,
    /// False when the first option is weightless: it then dominates choosing nothing.
    pub none_allowed: bool,
}

/// The normalised instance.
#[derive(Debug, Clone, Default)]
pub(crate) struct Instance {
    pub groups: Vec<Group>,
    /// Value of the forced picks.
    pub base_value: f64,
    /// Flat ids of the forced picks.
    pub base_picks: Vec<u32>,
}

/// Largest number of options the flat `u32` ids can address.
const MAX_OPTIONS: usize = u32::MAX as usize - 1;

impl Instance {
    /// Normalises plain items. With a capacity, items heavier than it are dropped.
    pub fn from_items(items: &[Item], capacity: Option<u64>) -> Result<Self, KnapsackError> {
        check_items(items)?;
        check_count(items.len())?;
        if capacity.is_none() {
            check_total(items.iter().map(|it| it.weight))?;
        }
        let mut inst = Instance::default();
        for (i, it) in items.iter().enumerate() {
            let opt = Opt {
                w: it.weight,
                v: it.value,
                flat: i as u32,
            };
            inst.push_class(vec![opt], capacity);
        }
        Ok(inst)
    }

    /// Normalises multiple-choice classes; flat ids number the options class by class.
    pub fn from_classes(classes: &[Class], capacity: Option<u64>) -> Result<Self, KnapsackError> {
        check_classes(classes)?;
        let total: usize = classes.iter().map(|c| c.options().len()).sum();
        check_count(total)?;
        if capacity.is_none() {
            check_total(
                classes
                    .iter()
                    .map(|c| c.options().iter().map(|it| it.weight).max().unwrap_or(0)),
            )?;
        }
        let mut inst = Instance::default();
        let mut flat = 0u32;
        for c in classes {
            let opts = c
                .options()
                .iter()
                .map(|it| {
                    let opt = Opt {
                        w: it.weight,
                        v: it.value,
                        flat,
                    };
                    flat += 1;
                    opt
                })
                .collect();
            inst.push_class(opts, capacity);
        }
        Ok(inst)
    }

    /// Prunes one class's options and either folds it into the base, merges it, or drops it.
    fn push_class(&mut self, mut opts: Vec<Opt>, capacity: Option<u64>) {
        opts.retain(|o| o.v > 0.0 && capacity.is_none_or(|c| o.w <= c));
        // Lightest first, most valuable first among equal weights; stable, so the lowest
        // option index wins exact ties.
        opts.sort_by(|a, b| a.w.cmp(&b.w).then(b.v.total_cmp(&a.v)));
        let mut kept: Vec<Opt> = Vec::with_capacity(opts.len());
        for o in opts {
            if kept.last().is_none_or(|last| o.v > last.v) {
                kept.push(o);
            }
        }
        let none_allowed = kept.first().is_none_or(|o| o.w > 0);
        match kept.as_slice() {
            [] => {}
            [only] if !none_allowed => {
                self.base_value += only.v;
                self.base_picks.push(only.flat);
            }
            _ => self.groups.push(Group {
                options: kept,
                none_allowed,
            }),
        }
    }
}

fn check_count(count: usize) -> Result<(), KnapsackError> {
    if count > MAX_OPTIONS {
        return Err(KnapsackError::TooLarge {
            what: format!("{count} items or options (at most {MAX_OPTIONS})"),
        });
    }
    Ok(())
}

/// Fails with [`KnapsackError::WeightOverflow`] when the weights do not sum within `u64`.
pub(crate) fn check_total(mut weights: impl Iterator<Item = u64>) -> Result<u64, KnapsackError> {
    weights.try_fold(0u64, |acc, w| {
        acc.checked_add(w).ok_or(KnapsackError::WeightOverflow)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn useless_options_are_dropped_and_forced_ones_folded() {
        let classes = [
            // value 0 and a dominated option: only (5, 2.0) survives.
            Class::new(vec![
                Item::new(3, 0.0),
                Item::new(5, 2.0),
                Item::new(6, 1.5),
            ]),
            // weightless option dominates "none" and everything else: forced.
            Class::new(vec![Item::new(0, 4.0), Item::new(7, 3.0)]),
            // weightless option plus a better heavier one: merged, none not allowed.
            Class::new(vec![Item::new(9, 5.0), Item::new(0, 1.0)]),
            // nothing useful.
            Class::new(vec![Item::new(2, 0.0)]),
        ];
        let inst = Instance::from_classes(&classes, None).unwrap();
        assert_eq!(inst.base_picks, vec![3]);
        assert_eq!(inst.base_value, 4.0);
        assert_eq!(inst.groups.len(), 2);
        let flats: Vec<u32> = inst.groups[0].options.iter().map(|o| o.flat).collect();
        assert_eq!(flats, vec![1]);
        assert!(inst.groups[0].none_allowed);
        let flats: Vec<u32> = inst.groups[1].options.iter().map(|o| o.flat).collect();
        assert_eq!(flats, vec![6, 5]);
        assert!(!inst.groups[1].none_allowed);
    }

    #[test]
    fn capacity_drops_heavy_items_and_skips_the_overflow_check() {
        let items = [
            Item::new(u64::MAX, 1.0),
            Item::new(u64::MAX, 1.0),
            Item::new(3, 1.0),
        ];
        assert_eq!(
            Instance::from_items(&items, None).unwrap_err(),
            KnapsackError::WeightOverflow
        );
        let inst = Instance::from_items(&items, Some(10)).unwrap();
        assert_eq!(inst.groups.len(), 1);
    }
}
