//! Approximate fronts of many plain items: capacity ranges, each split into a few large items
//! merged by the list engine and many small ones taken as a ratio-order prefix.
//!
//! The list engine ([`crate::merge`]) costs about (number of items) x (list length), and the
//! lists of approximate fronts over thousands of items hold tens of thousands of points. Most
//! items, though, are worth a negligible share of the optimum at the capacities where they
//! can be used at all. This module merges only the others.
//!
//! # The construction
//!
//! The budget `epsilon` is split as `e1 + e2 + t + e3 + e4` (the `*_SHARE` constants). Let
//! `LB` be the lower bound of [`crate::lower`] (feasible, so `LB(w) <= OPT(w)`, and
//! non-decreasing). The capacities `[1, top]` (`top`: the total weight, or `max_weight`) are
//! cut into ranges `[lo, hi]` with `hi + 1 = RANGE_FACTOR * lo`. For each range:
//!
//! 1. an item with `w <= hi` is **small** if `v <= e1 * LB(lo)`, else **large** (items
//!    heavier than `hi` fit no capacity of the range and are left out);
//! 2. `F`: the engine's front over the large items (and the forced base picks), with
//!    guarantee `e2` and capacity `hi`;
//! 3. the chain: the prefixes `P_0 = {}, P_1, P_2, ...` of the small items in order of
//!    decreasing value/weight (the ratio greedy), up to weight `hi`, trimmed: a prefix is
//!    dropped when its value is within `t * max(V, LB(lo))` of the last kept one;
//! 4. candidates: every `R + Q` with `R` in `F`, `Q` a kept prefix and total weight `<= hi`;
//!    of those whose values fall in the same bucket only the lightest is kept, buckets being
//!    `[k d, (k + 1) d)` with `d = e3 * LB(lo)` below `LB(lo)` and
//!    `[LB(lo) (1 + e3)^k, LB(lo) (1 + e3)^(k + 1))` above.
//!
//! The candidates of all ranges are pooled, dominated ones dropped, and the result trimmed
//! once with tolerance `e4` by the rule of [`crate::trim`].
//!
//! # Why the front keeps its guarantee
//!
//! Take a capacity `c` in a range `[lo, hi]` and an optimal selection `S` at `c`; so
//! `OPT(c) >= OPT(lo) >= LB(lo)`. Its items weigh at most `c <= hi`; let `A` be its large
//! items with the base picks and `B` its small ones, `v(S) = v(A) + v(B)`.
//!
//! - The engine's guarantee (the proof in [`crate::trim`], for the selection `A` of the
//!   large-item instance, whose optimum never exceeds `OPT`) gives `R` in `F` with
//!   `w(R) <= w(A)` and `v(R) >= v(A) - e2 OPT(w(A)) >= v(A) - e2 OPT(c)`.
//! - Let `r = c - w(R) >= w(B)`, and `P` the longest prefix of the small items that weighs at
//!   most `r` (a prefix of the chain, since `r <= hi`). The LP relaxation over the small
//!   items at `r` is at least `v(B)` (`B` is feasible), and Dantzig's solution is `P` plus a
//!   fraction of the next small item, worth at most `e1 LB(lo)`. So
//!   `v(P) >= v(B) - e1 OPT(c)`. (This is why smallness is measured against `LB(lo)` and not
//!   against anything depending on the item's weight: the next item may not fit `r` at all.)
//! - The chain trim keeps a prefix `Q` no heavier than `P` with
//!   `v(Q) >= v(P) - t max(v(P), LB(lo)) >= v(P) - t OPT(c)` (`v(P) <= OPT(r) <= OPT(c)`).
//! - `R + Q` weighs at most `c <= hi`, so it is a candidate; its bucket keeps a candidate
//!   no heavier, worth at least `v(R + Q) - e3 OPT(c)` (both bucket kinds: the absolute width
//!   is `e3 LB(lo)`, and a geometric bucket loses less than `e3` times the candidate's value,
//!   at most `OPT(c)` since the candidate is a real selection within `c`).
//! - Dropping dominated points loses nothing, and the final trim loses at most
//!   `e4 max(v, LB(w)) <= e4 OPT(c)` for a point of weight `w <= c`.
//!
//! Altogether the front has a point of weight `<= c` worth at least
//! `v(A) + v(B) - (e1 + e2 + t + e3 + e4) OPT(c) = (1 - epsilon) OPT(c)`. Capacity 0 is
//! served by the empty-selection point of the first range's `F`, the base selection, which is
//! optimal there. The final trim keeps a point only when it beats the last kept one by more
//! than `e4 v`, so the front has at most `ln(V / v_1) / e4 + 2` points.
//!
//! # Cost
//!
//! Each range runs the engine over its large items only, with lists cut at `hi`; the pairs
//! of step 4 are cheap next to that. On the bench's model-shaped instances (10,000 items,
//! `epsilon = 0.01`) an item is large in about 1.5 of the 11 ranges on average, against the
//! full engine's single run over all 10,000 items with lists of tens of thousands of points.
//! At small `epsilon` the smallness limit `e1 LB(lo)` shrinks, items are large in more and
//! more ranges, and the repeated runs cost more than the single one; [`front`] then declines
//! (more than [`MAX_LARGE_PER_ITEM`] large ranges per item) and the engine runs alone.

use crate::arena::{Arena, ROOT};
use crate::error::KnapsackError;
use crate::instance::Instance;
use crate::item::ratio;
use crate::lower::LowerBound;
use crate::merge::{MergeOptions, Merged, TrimOptions, merge_all_with};

/// Shares of `epsilon` (they sum to 1).
const SMALL_SHARE: f64 = 0.2;
const LARGE_SHARE: f64 = 0.2;
const CHAIN_SHARE: f64 = 0.05;
const BUCKET_SHARE: f64 = 0.05;
/// Share of the final trim; it sets the size bound `ln(V / v_1) / (FINAL_SHARE epsilon) + 2`.
pub(crate) const FINAL_SHARE: f64 = 0.5;

/// Share of `e2` the engine keeps for its final trim: little, since the candidates are
/// bucketed anyway (its final trim only makes the list, and so the pairs, shorter).
const ENGINE_FINAL_SHARE: f64 = 0.05;

/// Ranges of capacities `[lo, RANGE_FACTOR * lo - 1]`.
const RANGE_FACTOR: u64 = 8;

/// The construction is used only when the items are large, summed over the ranges, at most
/// this many times per item (see [`front`]). Measured on the bench's instances (500 to 10,000
/// items, `epsilon` from 0.003 to 0.03), it is then faster than the engine alone; the
/// break-even lies between 2 (1,000 items) and 2.5 (3,000 and more).
const MAX_LARGE_PER_ITEM: f64 = 2.0;

/// Instances with fewer groups than this use the engine alone.
pub(crate) const MIN_GROUPS: usize = 200;

/// Whether [`front`] applies: plain items (one option each), approximate, enough of them.
pub(crate) fn applies(inst: &Instance, epsilon: f64) -> bool {
    epsilon > 0.0
        && inst.groups.len() >= MIN_GROUPS
        && inst
            .groups
            .iter()
            .all(|g| g.none_allowed && g.options.len() == 1)
}

/// One range's pieces.
struct Range {
    large: Merged,
    /// Flat ids of the small items, in ratio order.
    small: Vec<u32>,
    /// Kept prefixes: (weight, value, length).
    chain: Vec<(u64, f64, u32)>,
}

/// A candidate: range, index in the range's large front, index in its chain.
#[derive(Clone, Copy)]
struct Cand {
    w: u64,
    v: f64,
    range: u32,
    large: u32,
    chain: u32,
}

/// The approximate front of `inst` (plain items only, see [`applies`]), or `None` when the
/// items are large in so many ranges that the engine alone is expected to be faster.
pub(crate) fn front(
    inst: &Instance,
    epsilon: f64,
    max_weight: Option<u64>,
) -> Result<Option<Merged>, KnapsackError> {
    construct(inst, epsilon, max_weight, false)
}

/// [`front`]; with `always`, builds the front whatever the number of large items.
fn construct(
    inst: &Instance,
    epsilon: f64,
    max_weight: Option<u64>,
    always: bool,
) -> Result<Option<Merged>, KnapsackError> {
    let lower = LowerBound::new(inst);
    let (e1, e2) = (SMALL_SHARE * epsilon, LARGE_SHARE * epsilon);
    let (t, e3, e4) = (
        CHAIN_SHARE * epsilon,
        BUCKET_SHARE * epsilon,
        FINAL_SHARE * epsilon,
    );
    let total = inst
        .groups
        .iter()
        .fold(0u64, |acc, g| acc.saturating_add(g.options[0].w));
    let top = max_weight.map_or(total, |m| m.min(total));

    // All items in ratio order, once.
    let mut order: Vec<usize> = (0..inst.groups.len()).collect();
    let opt = |g: usize| inst.groups[g].options[0];
    order.sort_by(|&a, &b| ratio(opt(b).w, opt(b).v).total_cmp(&ratio(opt(a).w, opt(a).v)));

    // The capacity ranges `[lo, hi]`, with the smallness limit of each.
    let mut bounds: Vec<(u64, f64, f64)> = Vec::new();
    let mut lo = 1u64;
    loop {
        let hi = lo.saturating_mul(RANGE_FACTOR).saturating_sub(1).min(top);
        let lb = lower.value_at(lo);
        bounds.push((hi, lb, e1 * lb));
        if hi >= top {
            break;
        }
        lo = hi + 1;
    }
    // A speed choice only (both ways keep the guarantee): when the items are large in too
    // many ranges, the repeated engine runs cost more than one run over everything.
    let large_total: usize = bounds
        .iter()
        .map(|&(hi, _, limit)| {
            inst.groups
                .iter()
                .filter(|g| g.options[0].w <= hi && g.options[0].v > limit)
                .count()
        })
        .sum();
    if !always && large_total as f64 > MAX_LARGE_PER_ITEM * inst.groups.len() as f64 {
        return Ok(None);
    }

    let mut ranges: Vec<Range> = Vec::new();
    let mut cands: Vec<Cand> = Vec::new();
    for &(hi, lb, small_limit) in &bounds {
        let mut sub = Instance {
            groups: Vec::new(),
            base_value: inst.base_value,
            base_picks: inst.base_picks.clone(),
        };
        sub.groups.extend(
            inst.groups
                .iter()
                .filter(|g| g.options[0].w <= hi && g.options[0].v > small_limit)
                .cloned(),
        );
        let large = merge_all_with(
            &sub,
            MergeOptions {
                capacity: Some(hi),
                epsilon: e2,
                bound: false,
            },
            TrimOptions {
                lower: Some(&lower),
                final_share: Some(ENGINE_FINAL_SHARE),
            },
        )?;
        // The chain of ratio-order prefixes of the small items, up to weight `hi`.
        let mut small = Vec::new();
        let mut chain = vec![(0u64, 0.0f64, 0u32)];
        let (mut w, mut v) = (0u64, 0.0f64);
        for &g in &order {
            let o = opt(g);
            if o.w > hi || o.v > small_limit {
                continue;
            }
            w = w.saturating_add(o.w);
            if w > hi {
                break;
            }
            v += o.v;
            small.push(o.flat);
            let last = chain.last().map_or(0.0, |c| c.1);
            if v - last > t * v.max(lb) {
                chain.push((w, v, small.len() as u32));
            }
        }
        // Candidates, the lightest per value bucket.
        let range = ranges.len() as u32;
        let mut buckets: Vec<Option<Cand>> = Vec::new();
        let linear = (1.0 / e3).ceil() as usize;
        let log_step = e3.ln_1p();
        for (i, (&rw, &rv)) in large.w.iter().zip(&large.v).enumerate() {
            let fit = chain.partition_point(|c| c.0 <= hi - rw);
            for (j, &(cw, cv, _)) in chain[..fit].iter().enumerate() {
                let (w, v) = (rw + cw, rv + cv);
                let b = if lb <= 0.0 {
                    // No value below `lo` at all: no bucketing (there are no small items).
                    buckets.len()
                } else if v < lb {
                    ((v / (e3 * lb)) as usize).min(linear)
                } else {
                    linear + 1 + ((v / lb).ln() / log_step) as usize
                };
                if b >= buckets.len() {
                    buckets.resize(b + 1, None);
                }
                let c = Cand {
                    w,
                    v,
                    range,
                    large: i as u32,
                    chain: j as u32,
                };
                match &mut buckets[b] {
                    Some(old) if old.w < w || (old.w == w && old.v >= v) => {}
                    slot => *slot = Some(c),
                }
            }
        }
        cands.extend(buckets.into_iter().flatten());
        ranges.push(Range {
            large,
            small,
            chain,
        });
    }

    // Pool, drop dominated points, trim once.
    cands.sort_by(|a, b| a.w.cmp(&b.w).then(b.v.total_cmp(&a.v)));
    let mut kept: Vec<Cand> = Vec::new();
    let mut cursor = lower.cursor();
    for c in cands {
        let last = kept.last().map_or(f64::NEG_INFINITY, |k| k.v);
        if c.v - last > e4 * c.v.max(cursor.at(c.w)) {
            kept.push(c);
        }
    }

    // Materialise: each range's small prefixes as one shared path, then the large picks.
    let mut arena = Arena::default();
    let mut paths: Vec<Vec<u32>> = vec![vec![ROOT]; ranges.len()];
    // Reported as approximate: the construction does not track whether it dropped anything.
    let mut out = Merged {
        trimmed: true,
        ..Merged::default()
    };
    for c in &kept {
        let r = &ranges[c.range as usize];
        let len = r.chain[c.chain as usize].2 as usize;
        let path = &mut paths[c.range as usize];
        while path.len() <= len {
            let parent = *path.last().unwrap_or(&ROOT);
            path.push(arena.push(parent, r.small[path.len() - 1])?);
        }
        let mut node = path[len];
        let picks: Vec<u32> = r
            .large
            .arena
            .picks(r.large.node[c.large as usize])
            .collect();
        for &p in picks.iter().rev() {
            node = arena.push(node, p)?;
        }
        out.w.push(c.w);
        out.v.push(c.v);
        out.node.push(node);
    }
    arena.compact(&mut out.node);
    out.arena = arena;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Item;
    use proptest::prelude::*;

    /// The optimum at every capacity as a step function: (weight, best value up to it).
    fn brute_steps(items: &[Item]) -> Vec<(u64, f64)> {
        let mut all = vec![(0u64, 0.0f64)];
        for it in items {
            let shifted: Vec<(u64, f64)> = all
                .iter()
                .map(|&(w, v)| (w + it.weight, v + it.value))
                .collect();
            all.extend(shifted);
        }
        all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut steps: Vec<(u64, f64)> = Vec::new();
        for (w, v) in all {
            if steps.last().is_none_or(|&(_, best)| v > best) {
                steps.push((w, v));
            }
        }
        steps
    }

    fn item() -> impl Strategy<Value = Item> {
        let weight = prop_oneof![
            1 => Just(0u64),
            4 => (0.0f64..6.0).prop_map(|e| 10f64.powf(e) as u64),
            1 => prop::sample::select(vec![1u64, 768, 3072]),
        ];
        let value = prop_oneof![
            1 => Just(0.0),
            4 => (-4.0f64..4.0).prop_map(f64::exp),
            1 => prop::sample::select(vec![0.5, 1.0, 2.0]),
        ];
        (weight, value).prop_map(|(w, v)| Item::new(w, v))
    }

    proptest! {
        /// The construction itself (called directly, whatever the number of items) against
        /// brute force: the guarantee at every capacity where the optimum or the front steps,
        /// up to the weight limit; every point achieved by its selection; the size bound.
        #[test]
        fn split_front_against_brute_force(
            items in prop::collection::vec(item(), 0..=13),
            epsilon in prop_oneof![Just(0.001f64), 0.001f64..0.9],
            max_weight in prop_oneof![Just(None), (0u64..2_000_000).prop_map(Some)],
        ) {
            let inst = Instance::from_items(&items, max_weight).unwrap();
            let front = construct(&inst, epsilon, max_weight, true).unwrap().unwrap();
            let steps = brute_steps(&items);
            let opt = |c: u64| steps[steps.partition_point(|s| s.0 <= c) - 1].1;
            let tol = |x: f64| 1e-9 * x.abs().max(1.0);
            for k in 0..front.w.len() {
                if k > 0 {
                    prop_assert!(front.w[k] > front.w[k - 1] && front.v[k] > front.v[k - 1]);
                }
                let picks: Vec<u32> = front.arena.picks(front.node[k]).collect();
                let mut sorted = picks.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), picks.len(), "an item picked twice");
                let (w, v) = picks.iter().fold((0u64, 0.0), |(w, v), &i| {
                    (w + items[i as usize].weight, v + items[i as usize].value)
                });
                prop_assert_eq!(w, front.w[k]);
                prop_assert!((v - front.v[k]).abs() <= tol(v));
                prop_assert!(front.v[k] <= opt(w) + tol(v), "beats the optimum");
            }
            let limit = max_weight.unwrap_or(u64::MAX);
            let caps = steps.iter().map(|s| s.0).chain(front.w.iter().copied());
            for c in caps.filter(|&c| c <= limit) {
                let k = front.w.partition_point(|&w| w <= c);
                prop_assert!(k > 0, "no point within {}", c);
                let got = front.v[k - 1];
                prop_assert!(got >= (1.0 - epsilon) * opt(c) - tol(got),
                    "capacity {}: {} < (1 - {}) * {}", c, got, epsilon, opt(c));
            }
            if let (Some(&v1), Some(&v_max)) =
                (front.v.iter().find(|&&v| v > 0.0), front.v.last())
            {
                let bound = (v_max / v1).ln() / (FINAL_SHARE * epsilon) + 2.0;
                prop_assert!(front.w.len() as f64 <= bound + 1e-6);
            }
        }
    }
}
