//! A strong incumbent before the exact merge: the optimum of a core problem.
//!
//! The exact solvers prune (in [`crate::reduce`] and in the bounded merge) every choice and
//! every partial selection whose bound falls below the best value already known. The greedy
//! fill along the LP path is one such value, but it stops at the first hull segment that
//! does not fit and leaves the capacity after it unused. On instances with many light items
//! near the LP's break (model-shaped instances of 10^5 groups, where the gap between the LP
//! bound and the greedy fill is about 1.4e-6 of the value) that unused capacity is worth
//! more than most of those items one by one, so almost none of them can be decided, and the
//! merge keeps hundreds of states per step.
//!
//! Balas and Zemel's observation is that an optimal selection differs from the LP's only
//! near its break. So: keep every group whose segments come well before the break at the
//! greedy fill's choice, every group whose segments come well after it at its hull start,
//! and solve the groups in a window of [`CORE_SEGMENTS`] segments on either side of the break
//! exactly (the same solver, on a problem of a few hundred groups, with a core an eighth as
//! wide; skipped when the window would be a quarter of the instance or more, which the
//! caller then solves about as fast). That selection is
//! feasible for the whole instance and is worth at least the greedy fill (which is one of
//! its candidates), and in practice it is within a tiny fraction of the optimum: the value
//! left on the table by the greedy fill is recovered by the light items around the break.
//! The core's optimum is only an incumbent: the exact solve still proves optimality over the
//! whole instance, so a poor core costs time, never correctness.

use crate::bound::LpBound;
use crate::error::KnapsackError;
use crate::instance::Instance;
use crate::reduce::selection_of;
use crate::solve::{Tuning, solve_instance};

/// Hull segments taken into the core on each side of the LP's break, up to 10^5 groups.
pub(crate) const CORE_SEGMENTS: usize = 300;

/// The core's half-width for `groups` groups: `segments` up to 10^5 groups, then shrinking
/// with the square root of the count (to a tenth of `segments`). The more groups, the closer
/// their ratios near the break, and the harder the core itself: on a million model-shaped
/// items a core of 300 segments on each side took 0.3 to 0.4 s to solve, one of 100 about
/// 0.1 s (measured 2026-12-04 under load, release).
fn core_width(segments: usize, groups: usize) -> usize {
    if groups <= 100_000 {
        return segments;
    }
    let scaled = segments as f64 * (1e5 / groups as f64).sqrt();
    (scaled.round() as usize).max(segments / 10)
}

/// The optimum of the core problem of `inst` at `capacity` with `segments` hull segments on
/// either side of the break (see the module docs): picks (the base's included) and value.
/// `greedy` is the greedy fill's per-group choice ([`LpBound::greedy`]), which the groups
/// outside the core keep.
///
/// # Errors
///
/// Only what merging can report (an arena too large), which a core of this size cannot reach.
pub(crate) fn core_incumbent(
    inst: &Instance,
    lp: &LpBound,
    greedy: &[Option<usize>],
    capacity: u64,
    tuning: Tuning,
) -> Result<(Vec<u32>, f64), KnapsackError> {
    let segments = core_width(tuning.core, inst.groups.len());
    // The break: the first segment of the LP path the greedy fill could not take (the path
    // visits each group's segments in its own order, so every segment before it was taken).
    let Some(at_break) = lp.break_position(capacity).filter(|_| segments > 0) else {
        // Every segment fits (the greedy fill is the LP optimum, so it is optimal), or there
        // is no core.
        return Ok(selection_of(inst, greedy));
    };
    let path = lp.path();
    let lo = at_break.saturating_sub(segments);
    let hi = (at_break + segments).min(path.len());
    if hi - lo > path.len() / 4 {
        // The core would be a good part of the instance: solving it would cost about as
        // much as solving the instance, which the caller does next anyway.
        return Ok(selection_of(inst, greedy));
    }
    let mut in_core = vec![false; inst.groups.len()];
    for (_, _, g, _) in path.skip(lo).take(hi - lo) {
        in_core[g] = true;
    }

    // Outside the core every group keeps the greedy fill's choice.
    let mut core = Instance {
        groups: Vec::new(),
        base_value: inst.base_value,
        base_picks: inst.base_picks.clone(),
    };
    let mut residual = capacity;
    for ((group, &pick), &free) in inst.groups.iter().zip(greedy).zip(&in_core) {
        if free {
            core.groups.push(group.clone());
        } else if let Some(i) = pick {
            let o = group.options[i];
            core.base_value += o.v;
            core.base_picks.push(o.flat);
            residual -= o.w; // the greedy fill is within the capacity
        }
    }
    // Options heavier than what the core may use fit no selection of it.
    // (A group that may not be left out starts with a weightless option, which stays.)
    core.groups.retain_mut(|g| {
        let fits = g.options.partition_point(|o| o.w <= residual);
        g.options.truncate(fits);
        !g.options.is_empty()
    });
    solve_instance(
        &core,
        residual,
        0.0,
        Tuning {
            core: segments / 8,
            ..tuning
        },
    )
}
