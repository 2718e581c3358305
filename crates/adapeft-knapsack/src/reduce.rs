//! Fixing groups before the exact solvers merge: Lagrangian reduction.
//!
//! For any price `r >= 0` of capacity and any feasible selection `x` within capacity `C`,
//!
//! ```text
//! value(x) <= value(x) + r (C - weight(x)) = r C + sum_k c_k(x_k),   c_k(o) = v_o - r w_o,
//! ```
//!
//! where `x_k` is group `k`'s choice (an option, or nothing with `c = 0`). Each `c_k(x_k)` is
//! at most `m_k`, the best contribution group `k` can make, so `U = r C + sum_k m_k` bounds
//! every selection, and a selection that makes choice `o` in group `k` is worth at most
//! `U - (m_k - c_k(o))`. If that is below a known feasible value (the incumbent) minus the
//! solvers' tie slack, no optimal selection, nor any tie of one, makes that choice: it is
//! removed. A group left with exactly one choice is fixed (an option joins the base
//! selection and its weight leaves the capacity; nothing drops the group).
//!
//! With a relative gap `g > 0` the floor is the incumbent's value over `1 - g` instead: a
//! selection making a removed choice is then worth less than that, so the incumbent (which
//! the solver keeps) is within the gap of it; when the LP bound itself is below the floor the
//! incumbent is returned at once.
//!
//! The price is the LP's break slope, which makes `U` the LP bound itself, and the incumbent
//! is the better of the greedy fill along the LP path and the optimum of a small core problem
//! around the LP's break ([`crate::core_problem`]); the gap `U - incumbent` is then at most
//! about one group's value, and usually far less, so every group whose value per weight is
//! clearly above or below the break is fixed and only a core of groups near the break is left
//! to merge (Balas and Zemel's core, with
//! Dembo and Hammer's fixing test). On a million model-shaped items the core is a few
//! hundred of them. The test holds for any price, so rounding in `r` costs tightness, never
//! correctness; rounding in `U` and the incumbent (sums of up to millions of terms, relative
//! error about `1e-10`) is covered by the slack, `1e-9` of the total value, the same slack
//! within which the merging keeps ties.
//!
//! A group with several options whose "nothing" is excluded but which keeps more than one
//! option stays free (the instance cannot say "one of these, but not nothing"); that only
//! loses tightness.

use crate::bound::LpBound;
use crate::instance::{Group, Instance, Opt};
use crate::merge::{best_contribution, total_value};

/// An instance with its fixed groups taken out.
#[derive(Debug)]
pub(crate) struct Reduced {
    /// The free groups, with the fixed picks in the base selection.
    pub inst: Instance,
    /// The capacity left for the free groups.
    pub capacity: u64,
    /// The incumbent: the best selection of the whole instance known before merging (the
    /// greedy fill or better), its picks (base included) and value.
    pub incumbent: (Vec<u32>, f64),
    /// With a gap: the incumbent is already worth `(1 - gap)` times the LP bound, so nothing
    /// is left to merge.
    pub certified: bool,
}

/// The greedy fill along the LP path of `inst` within `capacity`: its picks (the base's
/// included) and value.
pub(crate) fn greedy_fill(inst: &Instance, lp: &LpBound, capacity: u64) -> (Vec<u32>, f64) {
    selection_of(inst, &lp.greedy(inst, capacity))
}

/// The picks (the base's included) and value of the selection that makes `choice[g]` in each
/// group `g` of `inst` (an option index, or nothing).
pub(crate) fn selection_of(inst: &Instance, choice: &[Option<usize>]) -> (Vec<u32>, f64) {
    let mut picks = inst.base_picks.clone();
    let mut value = inst.base_value;
    for (group, &pick) in inst.groups.iter().zip(choice) {
        if let Some(i) = pick {
            picks.push(group.options[i].flat);
            value += group.options[i].v;
        }
    }
    (picks, value)
}

/// Fixes what the Lagrangian test decides in `inst` at `capacity` (see the module docs),
/// given the LP bound `lp` of `inst` and the value of a feasible selection, `incumbent`
/// (picks, base included, and value), which the result carries.
///
/// With `gap > 0` a choice is also removed when every selection making it is worth less than
/// the incumbent divided by `1 - gap` (so the incumbent is within the gap of any such
/// selection).
pub(crate) fn reduce(
    inst: &Instance,
    lp: &LpBound,
    capacity: u64,
    gap: f64,
    incumbent: (Vec<u32>, f64),
) -> Reduced {
    let price = lp.break_slope(capacity);
    let slack = 1e-9 * (inst.base_value + total_value(inst));
    // Best contribution of each group at the price: nothing (0, when allowed) or an option.
    let contribution = |w: u64, v: f64| v - price * w as f64;
    let best: Vec<f64> = inst
        .groups
        .iter()
        .map(|g| best_contribution(g, price))
        .collect();
    let upper = price * capacity as f64 + best.iter().sum::<f64>();
    // A choice stays when it may be part of a selection worth `floor - slack` or more, the
    // floor being the incumbent's total value (over `1 - gap`), base excluded.
    let floor = incumbent.1 / (1.0 - gap) - inst.base_value;
    let allowance = upper - floor + slack;
    let certified = gap > 0.0 && upper <= floor;

    let mut out = Reduced {
        inst: Instance {
            groups: Vec::new(),
            base_value: inst.base_value,
            base_picks: inst.base_picks.clone(),
        },
        capacity,
        incumbent,
        certified,
    };
    if certified {
        return out;
    }
    for (g, &m) in inst.groups.iter().zip(&best) {
        let none = g.none_allowed && m <= allowance;
        let stays = |o: &&Opt| m - contribution(o.w, o.v) <= allowance;
        // Decided without allocating (most groups are): the count and the first survivor.
        let mut survivors = g.options.iter().filter(stays);
        let first = survivors.next();
        let more = survivors.next().is_some();
        match (none, first, more) {
            (true, None, _) => {}
            (false, Some(only), false) => {
                out.inst.base_value += only.v;
                out.inst.base_picks.push(only.flat);
                out.capacity = out.capacity.saturating_sub(only.w);
            }
            // `None` cannot happen here (the best choice always passes). A group whose
            // weightless first option stands in for "nothing" keeps all its options when
            // that one is excluded: the others alone could not say "not nothing".
            (false, first, _)
                if !g.none_allowed && first.is_none_or(|o| o.flat != g.options[0].flat) =>
            {
                out.inst.groups.push(g.clone())
            }
            _ => out.inst.groups.push(Group {
                none_allowed: g.none_allowed,
                options: g.options.iter().filter(stays).copied().collect(),
            }),
        }
    }
    // Options heavier than the capacity left fit no selection any more (the merge assumes
    // every option fits); options are sorted by weight, so a prefix stays.
    let capacity = out.capacity;
    out.inst.groups.retain_mut(|g| {
        let fits = g.options.partition_point(|o| o.w <= capacity);
        g.options.truncate(fits);
        !g.options.is_empty()
    });
    out
}
