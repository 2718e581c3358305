//! Approximate fronts of many items or classes: capacity ranges, each split into a few large
//! groups merged by the list engine and many small ones taken as a prefix of the LP greedy.
//!
//! The list engine ([`crate::merge`]) costs about (number of groups) x (list length), and the
//! lists of approximate fronts over thousands of groups hold tens of thousands of points. Most
//! groups, though, are worth a negligible share of the optimum at the capacities where they
//! can be used at all. This module merges only the others. (A group is an item, or a class
//! of options; see [`crate::instance`].)
//!
//! # The construction
//!
//! The budget `epsilon` is split as `e1 + e2 + t + e3 + e4` (a [`Tuning`] and
//! [`FINAL_SHARE`]). Let
//! `LB` be the lower bound of [`crate::lower`] (feasible, so `LB(w) <= OPT(w)`, and
//! non-decreasing). The capacities `[1, top]` (`top`: the total weight, or `max_weight`) are
//! cut into ranges `[lo, hi]` with `hi + 1 = range_factor * lo`. For each range:
//!
//! 1. each group loses its options heavier than `hi` (they fit no capacity of the range; a
//!    group left without options is dropped). It is **small** if it may be left out (no
//!    weightless option) and every remaining option is worth at most `e1 * LB(lo)`, else
//!    **large**. For plain items: an item with `w <= hi` is small iff `v <= e1 * LB(lo)`;
//! 2. `F`: the engine's front over the large groups (and the forced base picks), with
//!    guarantee `e2` and capacity `hi`;
//! 3. the chain: the prefixes `P_0 = {}, P_1, P_2, ...` of the LP's greedy path over the
//!    small groups (the hull segments of all of them in order of decreasing slope, see
//!    [`crate::bound`]; each prefix takes, in each group, the option its last segment there
//!    leads to; for plain items, the items by decreasing value/weight), up to weight `hi`,
//!    trimmed: a prefix is dropped when its value is within `t * max(V, LB(lo))` of the last
//!    kept one;
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
//! `OPT(c) >= OPT(lo) >= LB(lo)`. Its options weigh at most `c <= hi`, so each is an option
//! of its group as restricted in step 1; let `A` be its picks in large groups with the base
//! picks and `B` its picks in small ones, `v(S) = v(A) + v(B)`.
//!
//! - The engine's guarantee (the proof in [`crate::trim`], for the selection `A` of the
//!   large-group instance, whose optimum never exceeds `OPT`) gives `R` in `F` with
//!   `w(R) <= w(A)` and `v(R) >= v(A) - e2 OPT(w(A)) >= v(A) - e2 OPT(c)`.
//! - Let `r = c - w(R) >= w(B)`, and `P` the longest prefix of the path that weighs at most
//!   `r` (a prefix of the chain, since `r <= hi`). The LP relaxation over the small groups at
//!   `r` is at least `v(B)` (`B` takes at most one option per small group, within `r`), and
//!   its optimum is the greedy solution (Dantzig; Sinha and Zoltners for classes): `P` plus a
//!   fraction of the next segment, whose value is at most that of the option it leads to,
//!   at most `e1 LB(lo)`. So `v(P) >= v(B) - e1 OPT(c)`. (This is why smallness is measured
//!   against `LB(lo)` and not against anything depending on the option's weight: the next
//!   segment may not fit `r` at all.)
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
//! served by the weightless point of the first range's `F`, which is optimal there: the base
//! picks and the weightless option of every group that has one (such groups are large). The final trim keeps a point only when it beats the last kept one by more
//! than `e4 v`, so the front has at most `ln(V / v_1) / e4 + 2` points.
//!
//! # Cost
//!
//! Each range runs the engine over its large groups only, with lists cut at `hi`; the pairs
//! of step 4 are cheap next to that. On the bench's model-shaped instances (10,000 items,
//! `epsilon = 0.01`) an item is large in about 1.5 of the 21 ranges on average (0.6 at
//! 100,000 items), against the full engine's single run over all items with lists of tens
//! of thousands of points. At small `epsilon` the smallness limit `e1 LB(lo)` shrinks, items
//! are large in more and more ranges, and the repeated runs cost more than the single one;
//! for plain items [`front`] then declines (more than [`MAX_LARGE_PER_ITEM`] large ranges
//! per item) and the engine runs alone, below [`ALWAYS_SPLIT_GROUPS`] items only. Classes, whose merges cost several times more, are left to the engine
//! only below [`MIN_CLASS_GROUPS`] groups: 10,000 bench classes take about 4 s instead of 44.
//!
//! The ranges share nothing but the instance and `LB`, so they are built on scoped threads,
//! dealt out in turn (range `r` to thread `r mod threads`: the costly ranges are the middle
//! ones, from about `10^3` to `10^6` parameters on the bench) and put back in order, which
//! leaves the result independent of the number of threads. On 10^5 model-shaped items the
//! engine runs were 70% of the time (1.0 to 1.4 s), the candidates 15%, the chains 8%; the
//! pooling and materialising after them stay on one thread.

use crate::arena::{Arena, ROOT};
use crate::bound::LpBound;
use crate::error::KnapsackError;
use crate::instance::{Group, Instance};
use crate::lower::LowerBound;
use crate::merge::{MergeOptions, Merged, TrimOptions, merge_all_with};

/// How a construction spends its budget and cuts its capacities: the shares of `epsilon`
/// for smallness (`e1`), the large groups' engine (`e2`), the chain trim (`t`) and the
/// buckets (`e3`), which sum to `1 - FINAL_SHARE`, and the range factor (ranges of
/// capacities `[lo, range_factor * lo - 1]`).
#[derive(Debug, Clone, Copy)]
struct Tuning {
    small: f64,
    large: f64,
    chain: f64,
    bucket: f64,
    range_factor: u64,
}

/// Plain items. The smallness share buys the most (every item it moves out of the large
/// groups leaves a list merge), and narrower ranges make fewer items large in each (`LB(lo)`
/// is closer to the optimum across the range) at the price of more ranges. Measured on the
/// bench's instances at `epsilon = 0.01` (seeds 1 to 3, 10,000 and 100,000 items, while the
/// machine was otherwise loaded): with the shares and factor of [`CLASSES`], 100,000 items
/// took 9.8 s; these shares at factor 8, 3.9 s; at factor 3, 2.1 s, the fastest of 2, 3, 4,
/// 8 and 16 (and 0.53 s against 0.99 s at 10,000).
const ITEMS: Tuning = Tuning {
    small: 0.36,
    large: 0.1,
    chain: 0.02,
    bucket: 0.02,
    range_factor: 3,
};

/// Classes of several options, whose engine merges cost several times more: the earlier
/// tuning, which the same change made 1.3 to 1.7 times slower on the bench's classes.
const CLASSES: Tuning = Tuning {
    small: 0.2,
    large: 0.2,
    chain: 0.05,
    bucket: 0.05,
    range_factor: 8,
};

/// Share of the final trim; it sets the size bound `ln(V / v_1) / (FINAL_SHARE epsilon) + 2`.
pub(crate) const FINAL_SHARE: f64 = 0.5;

/// Share of `e2` the engine keeps for its final trim: little, since the candidates are
/// bucketed anyway (its final trim only makes the list, and so the pairs, shorter).
const ENGINE_FINAL_SHARE: f64 = 0.05;

/// The construction is used only when the items are large, summed over the ranges, at most
/// this many times per item (see [`front`]). Measured on the bench's instances (500 to 10,000
/// items, `epsilon` from 0.003 to 0.03), it is then faster than the engine alone; the
/// break-even lies between 2 (1,000 items) and 2.5 (3,000 and more).
const MAX_LARGE_PER_ITEM: f64 = 2.0;

/// From this many groups on the construction is always used: the engine alone merges every
/// item into lists of thousands of points (100,000 bench items had not finished after 10
/// minutes).
const ALWAYS_SPLIT_GROUPS: usize = 20_000;

/// Instances of plain items with fewer groups than this use the engine alone.
const MIN_GROUPS: usize = 200;

/// Instances with classes of several options and fewer groups than this use the engine
/// alone (measured on the bench's classes at `epsilon = 0.01`: twice slower at 300 classes,
/// a quarter faster at 1,000, three times faster at 3,000).
const MIN_CLASS_GROUPS: usize = 1000;

/// Whether [`front`] applies: approximate, enough groups.
pub(crate) fn applies(inst: &Instance, epsilon: f64) -> bool {
    let plain = inst
        .groups
        .iter()
        .all(|g| g.none_allowed && g.options.len() == 1);
    let min = if plain { MIN_GROUPS } else { MIN_CLASS_GROUPS };
    epsilon > 0.0 && inst.groups.len() >= min
}

/// `group` restricted to its options of weight at most `hi` (`None` if none is left), and
/// whether it is large for the range: its best remaining option is worth more than
/// `small_limit`, or it cannot be left out (a weightless first option).
fn restrict(group: &Group, hi: u64, small_limit: f64) -> Option<(Group, bool)> {
    let k = group.options.partition_point(|o| o.w <= hi);
    let last = group.options[..k].last()?;
    let large = !group.none_allowed || last.v > small_limit;
    Some((
        Group {
            options: group.options[..k].to_vec(),
            none_allowed: group.none_allowed,
        },
        large,
    ))
}

/// One range's pieces.
struct Range {
    large: Merged,
    /// The LP path over the small groups: (small group, flat id of the option it moves to).
    small: Vec<(u32, u32)>,
    /// Whether no group appears twice on the path (then its prefixes share one arena path).
    shared: bool,
    /// Kept prefixes: (weight, value, length).
    chain: Vec<(u64, f64, u32)>,
}

/// One range built: its pieces and its candidates.
type Built = Result<(Range, Vec<Cand>), KnapsackError>;

/// What every range of one construction shares.
struct Piece<'a> {
    inst: &'a Instance,
    lower: &'a LowerBound,
    e2: f64,
    t: f64,
    e3: f64,
}

impl Piece<'_> {
    /// Range number `range`, `[.., hi]` with the lower bound `lb` at its start and the
    /// smallness limit `small_limit` (steps 1 to 4 of the module docs): its pieces and its
    /// candidates, the lightest per value bucket.
    fn build(&self, range: u32, (hi, lb, small_limit): (u64, f64, f64)) -> Built {
        let Piece {
            inst,
            lower,
            e2,
            t,
            e3,
        } = *self;
        let mut sub = Instance {
            groups: Vec::new(),
            base_value: inst.base_value,
            base_picks: inst.base_picks.clone(),
        };
        let mut small_inst = Instance::default();
        for (group, large) in inst
            .groups
            .iter()
            .filter_map(|g| restrict(g, hi, small_limit))
        {
            if large {
                sub.groups.push(group);
            } else {
                small_inst.groups.push(group);
            }
        }
        let large = merge_all_with(
            &sub,
            MergeOptions {
                capacity: Some(hi),
                epsilon: e2,
                bound: false,
                gap: 0.0,
                incumbent: f64::NEG_INFINITY,
                stop_after: usize::MAX,
            },
            TrimOptions {
                lower: Some(lower),
                final_share: Some(ENGINE_FINAL_SHARE),
            },
        )?;
        // The chain: the prefixes of the LP's greedy path over the small groups (for plain
        // items, the items by decreasing value/weight), up to weight `hi`.
        let mut small = Vec::new();
        let mut chain = vec![(0u64, 0.0f64, 0u32)];
        let (mut w, mut v) = (0u64, 0.0f64);
        let lp = LpBound::new(&small_inst);
        let mut seen = vec![false; small_inst.groups.len()];
        let mut shared = true;
        for (sw, sv, g, option) in lp.path() {
            w = w.saturating_add(sw);
            if w > hi {
                break;
            }
            v += sv;
            shared &= !std::mem::replace(&mut seen[g], true);
            small.push((g as u32, small_inst.groups[g].options[option].flat));
            let last = chain.last().map_or(0.0, |c| c.1);
            if v - last > t * v.max(lb) {
                chain.push((w, v, small.len() as u32));
            }
        }
        // Candidates, the lightest per value bucket.
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
        let cands = buckets.into_iter().flatten().collect();
        Ok((
            Range {
                large,
                small,
                shared,
                chain,
            },
            cands,
        ))
    }
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

/// The approximate front of `inst` (see [`applies`]), or `None` when the instance has plain
/// items that are large in so many ranges that the engine alone is expected to be faster.
/// The ranges are built on as many threads as the machine offers
/// ([`std::thread::available_parallelism`]); the result does not depend on their number.
pub(crate) fn front(
    inst: &Instance,
    epsilon: f64,
    max_weight: Option<u64>,
) -> Result<Option<Merged>, KnapsackError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    construct(inst, epsilon, max_weight, false, threads)
}

/// [`front`]; with `always`, builds the front whatever the number of large items, on at most
/// `threads` threads.
fn construct(
    inst: &Instance,
    epsilon: f64,
    max_weight: Option<u64>,
    always: bool,
    threads: usize,
) -> Result<Option<Merged>, KnapsackError> {
    let lower = LowerBound::new(inst);
    let plain = inst
        .groups
        .iter()
        .all(|g| g.none_allowed && g.options.len() == 1);
    let tuning = if plain { ITEMS } else { CLASSES };
    let (e1, e2) = (tuning.small * epsilon, tuning.large * epsilon);
    let (t, e3, e4) = (
        tuning.chain * epsilon,
        tuning.bucket * epsilon,
        FINAL_SHARE * epsilon,
    );
    let total = inst.groups.iter().fold(0u64, |acc, g| {
        acc.saturating_add(g.options.last().map_or(0, |o| o.w))
    });
    let top = max_weight.map_or(total, |m| m.min(total));

    // The capacity ranges `[lo, hi]`, with the smallness limit of each.
    let mut bounds: Vec<(u64, f64, f64)> = Vec::new();
    let mut lo = 1u64;
    loop {
        let hi = lo
            .saturating_mul(tuning.range_factor)
            .saturating_sub(1)
            .min(top);
        let lb = lower.value_at(lo);
        bounds.push((hi, lb, e1 * lb));
        if hi >= top {
            break;
        }
        lo = hi + 1;
    }
    // A speed choice only (both ways keep the guarantee): when the items are large in too
    // many ranges, the repeated engine runs cost more than one run over everything.
    // (Plain items only: for classes, whose merges cost several times more, the construction
    // was measured faster even with items large in 2.2 ranges each.)
    let large_total: usize = bounds
        .iter()
        .map(|&(hi, _, limit)| {
            inst.groups
                .iter()
                .filter(|g| restrict(g, hi, limit).is_some_and(|r| r.1))
                .count()
        })
        .sum();
    if !always
        && plain
        && inst.groups.len() < ALWAYS_SPLIT_GROUPS
        && large_total as f64 > MAX_LARGE_PER_ITEM * inst.groups.len() as f64
    {
        return Ok(None);
    }

    // The ranges are independent: they run on scoped threads, ranges dealt out in turn so
    // that the costly middle ones spread over the threads, and are put back in order, so the
    // result does not depend on the number of threads.
    let threads = threads.min(bounds.len()).max(1);
    let piece = Piece {
        inst,
        lower: &lower,
        e2,
        t,
        e3,
    };
    let mut built: Vec<Option<Built>> = (0..bounds.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (bounds, piece) = (&bounds, &piece);
                scope.spawn(move || {
                    (k..bounds.len())
                        .step_by(threads)
                        .map(|r| (r, piece.build(r as u32, bounds[r])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            let done = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (r, result) in done {
                built[r] = Some(result);
            }
        }
    });
    let mut ranges: Vec<Range> = Vec::with_capacity(bounds.len());
    let mut cands: Vec<Cand> = Vec::new();
    for result in built.into_iter().flatten() {
        let (range, range_cands) = result?;
        ranges.push(range);
        cands.extend(range_cands);
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

    // Materialise: a range's prefixes as one shared arena path when no group appears twice on
    // it (plain items), else each prefix's options from scratch; then the large picks.
    let mut arena = Arena::default();
    let mut paths: Vec<Vec<u32>> = vec![vec![ROOT]; ranges.len()];
    let mut reached: Vec<Option<u32>> = Vec::new();
    // Reported as approximate: the construction does not track whether it dropped anything.
    let mut out = Merged {
        trimmed: true,
        ..Merged::default()
    };
    for c in &kept {
        let r = &ranges[c.range as usize];
        let len = r.chain[c.chain as usize].2 as usize;
        let mut node = if r.shared {
            let path = &mut paths[c.range as usize];
            while path.len() <= len {
                let parent = *path.last().unwrap_or(&ROOT);
                path.push(arena.push(parent, r.small[path.len() - 1].1)?);
            }
            path[len]
        } else {
            let mut node = ROOT;
            for &(g, flat) in &r.small[..len] {
                let g = g as usize;
                if reached.len() <= g {
                    reached.resize(g + 1, None);
                }
                reached[g] = Some(flat);
            }
            for &(g, _) in &r.small[..len] {
                if let Some(flat) = reached[g as usize].take() {
                    node = arena.push(node, flat)?;
                }
            }
            node
        };
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
    use crate::class::Class;
    use crate::item::Item;
    use crate::testing::brute_steps;
    use proptest::prelude::*;

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

    /// The ranges are built on threads and put back in order: one thread or several give
    /// the same points with the same selections.
    #[test]
    fn the_front_does_not_depend_on_the_number_of_threads() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(3);
        let items: Vec<Item> = (0..5_000)
            .map(|_| {
                let w = (rng.random::<f64>() * 1e6f64.ln()).exp().round().max(1.0);
                Item::new(w as u64, w.sqrt() * (2.0 * rng.random::<f64>()).exp())
            })
            .collect();
        let classes: Vec<Class> = items.iter().map(|&it| Class::from(it)).collect();
        let inst = Instance::from_classes(&classes, None).unwrap();
        let one = construct(&inst, 0.01, None, true, 1).unwrap().unwrap();
        assert!(
            one.w.len() > 100,
            "a front worth comparing: {} points",
            one.w.len()
        );
        for threads in [2, 3, 8] {
            let many = construct(&inst, 0.01, None, true, threads)
                .unwrap()
                .unwrap();
            assert_eq!(one.w, many.w, "{threads} threads");
            assert_eq!(one.v, many.v, "{threads} threads");
            for (a, b) in one.node.iter().zip(&many.node) {
                let picks = |m: &Merged, n: u32| m.arena.picks(n).collect::<Vec<u32>>();
                assert_eq!(picks(&one, *a), picks(&many, *b), "{threads} threads");
            }
        }
    }

    #[test]
    fn each_tuning_spends_exactly_the_budget() {
        for t in [ITEMS, CLASSES] {
            let sum = t.small + t.large + t.chain + t.bucket + FINAL_SHARE;
            assert!((sum - 1.0).abs() < 1e-12, "{t:?}: {sum}");
            assert!(t.range_factor >= 2, "{t:?}");
        }
    }

    proptest! {
        /// The construction itself (called directly, whatever the number of items), on plain
        /// items and on classes of up to three options, against brute force: the guarantee at every capacity where the optimum or the front steps,
        /// up to the weight limit; every point achieved by its selection; the size bound.
        #[test]
        fn split_front_against_brute_force(
            items in prop::collection::vec(item(), 0..=13),
            epsilon in prop_oneof![Just(0.001f64), 0.001f64..0.9],
            max_weight in prop_oneof![Just(None), (0u64..2_000_000).prop_map(Some)],
            as_classes: bool,
        ) {
            let classes = if as_classes {
                items.chunks(3).map(|c| Class::new(c.to_vec())).collect()
            } else {
                items.iter().map(|&it| Class::from(it)).collect::<Vec<_>>()
            };
            let inst = Instance::from_classes(&classes, max_weight).unwrap();
            let front = construct(&inst, epsilon, max_weight, true, 2).unwrap().unwrap();
            let steps = brute_steps(&classes);
            let flat: Vec<(usize, Item)> = classes
                .iter()
                .enumerate()
                .flat_map(|(k, c)| c.options().iter().map(move |&o| (k, o)))
                .collect();
            let opt = |c: u64| steps[steps.partition_point(|s| s.0 <= c) - 1].1;
            let tol = |x: f64| 1e-9 * x.abs().max(1.0);
            for k in 0..front.w.len() {
                if k > 0 {
                    prop_assert!(front.w[k] > front.w[k - 1] && front.v[k] > front.v[k - 1]);
                }
                let picks: Vec<u32> = front.arena.picks(front.node[k]).collect();
                let mut classes_picked: Vec<usize> =
                    picks.iter().map(|&i| flat[i as usize].0).collect();
                classes_picked.sort_unstable();
                classes_picked.dedup();
                prop_assert_eq!(classes_picked.len(), picks.len(), "a class picked twice");
                let (w, v) = picks.iter().fold((0u64, 0.0), |(w, v), &i| {
                    (w + flat[i as usize].1.weight, v + flat[i as usize].1.value)
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
