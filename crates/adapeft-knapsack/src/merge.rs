//! Nemhauser-Ullmann list merging: the engine behind the fronts and the exact solvers.
//!
//! The state is a list of non-dominated (weight, value) points, sorted by strictly increasing
//! weight and strictly increasing value, each with the arena node of a subset achieving it.
//! Merging a group replaces the list `L` by the non-dominated points of
//! `L ∪ (L + option_1) ∪ ... ∪ (L + option_m)` (without `L` itself when the group's first
//! option is weightless and so beats taking nothing). Every shifted list is still sorted, so
//! the union is a k-way merge by weight, and dominance pruning is a single pass that keeps a
//! point only when its value beats the last kept one.
//!
//! Three optional prunings ride on the same pass:
//! - a capacity drops points heavier than it (the exact solvers and bounded fronts);
//! - trimming with a tolerance `delta > 0` also drops a point `(w, v)` whose value is within
//!   `delta * max(v, LB(w))` of the last kept one, which bounds the list's length
//!   (approximate fronts; see [`crate::trim`] for the rule, its proof, and when and by how
//!   much);
//! - with the LP bound, a point whose value plus the bound of the groups still to come cannot
//!   reach the best value known to be feasible is dropped (the exact solvers).

use crate::arena::{Arena, ROOT};
use crate::bound::LpBound;
use crate::error::KnapsackError;
use crate::instance::Instance;
use crate::lower::{Cursor, LowerBound};
use crate::trim::Schedule;

/// How to merge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MergeOptions {
    /// Drop points heavier than this.
    pub capacity: Option<u64>,
    /// Approximation guarantee of the result, as in `FrontOptions` (0 = exact).
    pub epsilon: f64,
    /// Prune with the LP bound (requires a capacity and `epsilon == 0`).
    pub bound: bool,
    /// With `bound`: also prune every point whose bound is below the greedy fill's value
    /// divided by `1 - gap` (the greedy fill is the one selection the caller keeps beside the
    /// list). The pruning against the incumbent alone keeps an optimal point; if this one
    /// drops it, the greedy fill is within the gap. So the better of the list's best point
    /// and the greedy fill is worth at least `(1 - gap)` times the optimum. 0: exact.
    pub gap: f64,
    /// With `bound`: the value of a feasible selection the caller keeps (for example the
    /// optimum of a core problem), pruned against like the greedy fill's; `NEG_INFINITY`
    /// when there is none. Points that tie with it are kept, so an optimal point survives.
    pub incumbent: f64,
    /// Stop after merging this many groups (in the merge order: the heaviest first when
    /// bounded) and return the list then; `usize::MAX`: merge all.
    pub stop_after: usize,
}

/// How an approximate merge run trims (see [`crate::trim`]): against which lower bound, and
/// with which share of the budget kept for the final trim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrimOptions<'a> {
    /// A lower bound on the optimum of an instance containing the merged one; `None`: the
    /// merged instance's own. Any such bound keeps the guarantee relative to that
    /// instance's optimum, since the proof in [`crate::trim`] only uses
    /// `LB(w) <= OPT(w)`.
    pub lower: Option<&'a LowerBound>,
    /// Share of `epsilon` for the final trim; `None`: the default schedule's.
    pub final_share: Option<f64>,
}

/// The final list of a merge run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Merged {
    pub w: Vec<u64>,
    pub v: Vec<f64>,
    pub node: Vec<u32>,
    pub arena: Arena,
    /// Whether trimming dropped any point.
    pub trimmed: bool,
}

/// The arena is compacted once it holds at least [`GC_MIN`] links and [`GC_GROWTH`] times as
/// many as the last compaction kept, which keeps compaction's cost amortised `O(1)` per link
/// (at most `GC_GROWTH / (GC_GROWTH - 1)` link visits per link created).
const GC_MIN: usize = 1 << 20;
const GC_GROWTH: usize = 4;

/// Merges all groups of `inst`, starting from the base selection.
pub(crate) fn merge_all(inst: &Instance, opts: MergeOptions) -> Result<Merged, KnapsackError> {
    merge_all_with(
        inst,
        opts,
        TrimOptions {
            lower: None,
            final_share: None,
        },
    )
}

/// [`merge_all`] with the trimming set by `trim`.
pub(crate) fn merge_all_with(
    inst: &Instance,
    opts: MergeOptions,
    trim: TrimOptions<'_>,
) -> Result<Merged, KnapsackError> {
    let lower = trim.lower;
    debug_assert!(!opts.bound || (opts.capacity.is_some() && opts.epsilon == 0.0));
    let mut arena = Arena::default();
    let mut base = ROOT;
    for &pick in &inst.base_picks {
        base = arena.push(base, pick)?;
    }
    let mut cur = Merged {
        w: vec![0],
        v: vec![inst.base_value],
        node: vec![base],
        arena,
        trimmed: false,
    };
    let (mut next_w, mut next_v, mut next_node) = (Vec::new(), Vec::new(), Vec::new());

    let mut lp = opts.bound.then(|| LpBound::new(inst));
    let price = lp
        .as_ref()
        .map_or(0.0, |lp| lp.break_slope(opts.capacity.unwrap_or(0)));
    let greedy = lp.as_ref().map_or(0.0, |lp| {
        inst.base_value + greedy_value(inst, lp, opts.capacity.unwrap_or(0))
    });
    let mut prune = lp.as_ref().map(|_| Prune {
        capacity: opts.capacity.unwrap_or(0),
        incumbent: greedy.max(opts.incumbent),
        greedy,
        slack: 1e-9 * (inst.base_value + total_value(inst)),
        price,
        rest: 0.0,
        gap: opts.gap,
    });
    let order = merge_order(inst, lp.is_some());
    // The Lagrangian bound's share of the groups after each step (see `Prune::rest`).
    let rest: Vec<f64> = if lp.is_some() {
        let mut rest = vec![0.0; order.len() + 1];
        for (i, &g) in order.iter().enumerate().rev() {
            rest[i] = rest[i + 1] + best_contribution(&inst.groups[g], price).max(0.0);
        }
        rest
    } else {
        Vec::new()
    };
    let mut schedule = match trim.final_share {
        Some(share) => Schedule::with_final_share(opts.epsilon, inst.groups.len(), share),
        None => Schedule::new(opts.epsilon, inst.groups.len()),
    };
    let own = (opts.epsilon > 0.0 && lower.is_none()).then(|| LowerBound::new(inst));
    let lower = if opts.epsilon > 0.0 {
        lower.or(own.as_ref())
    } else {
        None
    };
    let mut gc_at = GC_MIN;

    for (step, g) in order.into_iter().enumerate().take(opts.stop_after) {
        let delta = schedule.delta(step, cur.w.len());
        let group = &inst.groups[g];
        if let Some(lp) = lp.as_mut() {
            lp.remove(g);
        }
        if let Some(prune) = prune.as_mut() {
            prune.rest = rest[step + 1];
        }
        next_w.clear();
        next_v.clear();
        next_node.clear();
        let list = List {
            w: &cur.w,
            v: &cur.v,
            node: &cur.node,
        };
        if lp.is_none() {
            // Fronts: no bound to consult, so the tight loops of `front_merge_*`.
            let mut out = Out {
                w: &mut next_w,
                v: &mut next_v,
                node: &mut next_node,
                arena: &mut cur.arena,
            };
            let mut keep = Keep::new(trim_state(delta, lower));
            match group.options.as_slice() {
                [o] if group.none_allowed => {
                    front_merge_one(list, (o.w, o.v, o.flat), opts.capacity, &mut keep, &mut out)?
                }
                _ => {
                    let shifts = shifts_of(group);
                    front_merge_many(list, &shifts, opts.capacity, &mut keep, &mut out)?;
                }
            }
            cur.trimmed |= keep.trimmed;
            if delta > 0.0 {
                schedule.trimmed(next_w.len());
            }
            std::mem::swap(&mut cur.w, &mut next_w);
            std::mem::swap(&mut cur.v, &mut next_v);
            std::mem::swap(&mut cur.node, &mut next_node);
            if cur.arena.len() >= gc_at {
                cur.arena.compact(&mut cur.node);
                gc_at = cur.arena.len().saturating_mul(GC_GROWTH).max(GC_MIN);
            }
            continue;
        }
        let mut sink = Sink {
            w: &mut next_w,
            v: &mut next_v,
            node: &mut next_node,
            arena: &mut cur.arena,
            last_v: f64::NEG_INFINITY,
            trim: trim_state(delta, lower),
            trimmed: false,
            bound: lp.as_ref().zip(prune.as_mut()),
        };
        match group.options.as_slice() {
            [o] if group.none_allowed => {
                merge_one(list, (o.w, o.v, o.flat), opts.capacity, &mut sink)?
            }
            _ => merge_many(list, &shifts_of(group), opts.capacity, &mut sink)?,
        }
        cur.trimmed |= sink.trimmed;
        if delta > 0.0 {
            schedule.trimmed(next_w.len());
        }
        std::mem::swap(&mut cur.w, &mut next_w);
        std::mem::swap(&mut cur.v, &mut next_v);
        std::mem::swap(&mut cur.node, &mut next_node);
        if cur.arena.len() >= gc_at {
            cur.arena.compact(&mut cur.node);
            gc_at = cur.arena.len().saturating_mul(GC_GROWTH).max(GC_MIN);
        }
    }
    if let Some(trim) = trim_state(schedule.final_delta(), lower) {
        cur.trimmed |= trim_list(&mut cur, trim);
    }
    cur.arena.compact(&mut cur.node);
    Ok(cur)
}

/// The current list, read-only.
#[derive(Clone, Copy)]
struct List<'a> {
    w: &'a [u64],
    v: &'a [f64],
    node: &'a [u32],
}

impl List<'_> {
    /// Number of points that stay within `capacity` after a shift by `shift` (the list is
    /// sorted by weight; every point is within the capacity itself).
    fn fitting(&self, shift: u64, capacity: Option<u64>) -> usize {
        match capacity {
            Some(c) => self.w.partition_point(|&w| w <= c - shift),
            None => self.w.len(),
        }
    }
}

/// State of the LP-bound pruning.
#[derive(Debug)]
struct Prune {
    capacity: u64,
    /// The best value known to be feasible.
    incumbent: f64,
    /// Absorbs rounding in the bound, so that ties with the incumbent are never pruned.
    slack: f64,
    /// The price of capacity of the cheap bound: the LP's break slope at the start.
    price: f64,
    /// Sum over the groups not merged yet of their best contribution at `price`,
    /// `max(0, max_o v_o - price w_o)`. For any price, a point `(w, v)` completed within the
    /// capacity is worth at most `v + price (capacity - w) + rest` (Lagrangian relaxation; see
    /// [`crate::reduce`]): a bound in `O(1)`, looser than the LP's, consulted first.
    rest: f64,
    /// `MergeOptions::gap`.
    gap: f64,
    /// The greedy fill's value, which the caller keeps (see `MergeOptions::gap`).
    greedy: f64,
}

/// Receives merged points in order of weight and keeps the ones that survive pruning.
struct Sink<'a> {
    w: &'a mut Vec<u64>,
    v: &'a mut Vec<f64>,
    node: &'a mut Vec<u32>,
    arena: &'a mut Arena,
    last_v: f64,
    /// Trimming, if this merge trims.
    trim: Option<Trim<'a>>,
    trimmed: bool,
    bound: Option<(&'a LpBound, &'a mut Prune)>,
}

impl Sink<'_> {
    /// Offers the point `(w, v)`: the subset of `parent` plus `pick` (none if `ROOT`).
    #[inline(always)]
    fn offer(&mut self, w: u64, v: f64, parent: u32, pick: u32) -> Result<(), KnapsackError> {
        if v <= self.last_v {
            return Ok(()); // dominated
        }
        if let Some(trim) = self.trim.as_mut()
            && trim.drops(w, v, self.last_v)
        {
            self.trimmed = true;
            return Ok(());
        }
        if let Some((lp, prune)) = self.bound.as_mut() {
            let residual = prune.capacity - w;
            let floor = prune.incumbent.max(prune.greedy / (1.0 - prune.gap)) - prune.slack;
            if v + prune.price * residual as f64 + prune.rest < floor {
                // Hopeless by the cheap bound, and so is everything it dominates (heavier,
                // no more valuable: a bound no larger).
                self.last_v = v;
                return Ok(());
            }
            let (lower, upper) = lp.bounds(residual);
            if v + upper < floor {
                // Hopeless, and so is everything it dominates.
                self.last_v = v;
                return Ok(());
            }
            // Completing the point with the whole LP segments that fit is feasible.
            prune.incumbent = prune.incumbent.max(v + lower);
        }
        let node = if pick == ROOT {
            parent
        } else {
            self.arena.push(parent, pick)?
        };
        self.w.push(w);
        self.v.push(v);
        self.node.push(node);
        self.last_v = v;
        Ok(())
    }
}

/// Trimming with tolerance `delta` against the lower bound `LB` (see [`crate::trim`]).
struct Trim<'a> {
    delta: f64,
    lower: Cursor<'a>,
}

impl Trim<'_> {
    /// Whether the point `(w, v)` is dropped after a kept point of value `last_v`; points
    /// must come by non-decreasing weight.
    #[inline]
    fn drops(&mut self, w: u64, v: f64, last_v: f64) -> bool {
        // Cheap first: the classic geometric rule already drops it.
        if v - last_v <= self.delta * v {
            return true;
        }
        v - last_v <= self.delta * self.lower.at(w)
    }
}

fn trim_state(delta: f64, lower: Option<&LowerBound>) -> Option<Trim<'_>> {
    match lower {
        Some(lower) if delta > 0.0 => Some(Trim {
            delta,
            lower: lower.cursor(),
        }),
        _ => None,
    }
}

/// Trims a list in place; returns whether it dropped any point.
fn trim_list(list: &mut Merged, mut trim: Trim<'_>) -> bool {
    let mut kept = 0;
    let mut last_v = f64::NEG_INFINITY;
    for i in 0..list.w.len() {
        if !trim.drops(list.w[i], list.v[i], last_v) {
            list.w[kept] = list.w[i];
            list.v[kept] = list.v[i];
            list.node[kept] = list.node[i];
            kept += 1;
            last_v = list.v[i];
        }
    }
    let dropped = kept < list.w.len();
    list.w.truncate(kept);
    list.v.truncate(kept);
    list.node.truncate(kept);
    dropped
}

/// The shifts of a multi-option merge: the list itself (`pick == ROOT`) when taking nothing
/// is allowed, then the list shifted by each option.
fn shifts_of(group: &crate::instance::Group) -> Vec<(u64, f64, u32)> {
    let mut shifts: Vec<(u64, f64, u32)> = Vec::with_capacity(group.options.len() + 1);
    if group.none_allowed {
        shifts.push((0, 0.0, ROOT));
    }
    shifts.extend(group.options.iter().map(|o| (o.w, o.v, o.flat)));
    shifts
}

/// Where the fronts' merges write the new list.
struct Out<'a> {
    w: &'a mut Vec<u64>,
    v: &'a mut Vec<f64>,
    node: &'a mut Vec<u32>,
    arena: &'a mut Arena,
}

impl Out<'_> {
    /// Room for `points` more points, `links` of them new links, so that the loop's pushes
    /// never fail (the arena's size limit is checked here, once per merge).
    fn reserve(&mut self, points: usize, links: usize) -> Result<(), KnapsackError> {
        self.w.reserve(points);
        self.v.reserve(points);
        self.node.reserve(points);
        self.arena.reserve(links)
    }

    #[inline(always)]
    fn push(&mut self, w: u64, v: f64, node: u32) {
        self.w.push(w);
        self.v.push(v);
        self.node.push(node);
    }
}

/// The pruning of the fronts' merges, dominance and trimming in one test: a point `(w, v)`
/// arriving by non-decreasing weight is kept iff `v - last_v > delta * max(v, LB(w))`
/// (`delta = 0`: iff `v > last_v`), the rule of [`Sink::offer`] without the bound.
struct Keep<'a> {
    delta: f64,
    lower: Option<Cursor<'a>>,
    last_v: f64,
    trimmed: bool,
}

impl<'a> Keep<'a> {
    fn new(trim: Option<Trim<'a>>) -> Self {
        let (delta, lower) = trim.map_or((0.0, None), |t| (t.delta, Some(t.lower)));
        Self {
            delta,
            lower,
            last_v: f64::NEG_INFINITY,
            trimmed: false,
        }
    }

    #[inline(always)]
    fn keeps(&mut self, w: u64, v: f64) -> bool {
        let gain = v - self.last_v;
        if gain > self.delta * v {
            if let Some(lower) = self.lower.as_mut()
                && gain <= self.delta * lower.at(w)
            {
                self.trimmed = true;
                return false;
            }
            self.last_v = v;
            true
        } else {
            // Dropped by the trim rather than by dominance only if it beats the last point.
            self.trimmed |= gain > 0.0;
            false
        }
    }
}

/// [`merge_one`] for fronts.
fn front_merge_one(
    list: List<'_>,
    (sw, sv, pick): (u64, f64, u32),
    capacity: Option<u64>,
    keep: &mut Keep<'_>,
    out: &mut Out<'_>,
) -> Result<(), KnapsackError> {
    let (n, m) = (list.w.len(), list.fitting(sw, capacity));
    out.reserve(n + m, m)?;
    let (lw, lv, ln) = (&list.w[..n], &list.v[..n], &list.node[..n]);
    let (bw, bv, bn) = (&lw[..m], &lv[..m], &ln[..m]);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        let (wa, va) = (lw[i], lv[i]);
        let (wb, vb) = (bw[j] + sw, bv[j] + sv);
        if wa < wb || (wa == wb && va >= vb) {
            if keep.keeps(wa, va) {
                out.push(wa, va, ln[i]);
            }
            i += 1;
        } else {
            if keep.keeps(wb, vb) {
                let node = out.arena.push_reserved(bn[j], pick);
                out.push(wb, vb, node);
            }
            j += 1;
        }
    }
    for i in i..n {
        if keep.keeps(lw[i], lv[i]) {
            out.push(lw[i], lv[i], ln[i]);
        }
    }
    for j in j..m {
        let (wb, vb) = (bw[j] + sw, bv[j] + sv);
        if keep.keeps(wb, vb) {
            let node = out.arena.push_reserved(bn[j], pick);
            out.push(wb, vb, node);
        }
    }
    Ok(())
}

/// [`merge_many`] for fronts: the heads of the shifted lists are cached, so choosing the
/// next point scans a few registers-worth of values.
fn front_merge_many(
    list: List<'_>,
    shifts: &[(u64, f64, u32)],
    capacity: Option<u64>,
    keep: &mut Keep<'_>,
    out: &mut Out<'_>,
) -> Result<(), KnapsackError> {
    let k = shifts.len();
    let end: Vec<usize> = shifts
        .iter()
        .map(|&(sw, _, _)| list.fitting(sw, capacity))
        .collect();
    let total: usize = end.iter().sum();
    out.reserve(total, total)?;
    let mut at = vec![0usize; k];
    // Exhausted lists have head (u64::MAX, -inf): any real point wins against them.
    let head = |x: usize, i: usize| {
        if i < end[x] {
            (list.w[i] + shifts[x].0, list.v[i] + shifts[x].1)
        } else {
            (u64::MAX, f64::NEG_INFINITY)
        }
    };
    let mut hw = Vec::with_capacity(k);
    let mut hv = Vec::with_capacity(k);
    for x in 0..k {
        let (w, v) = head(x, 0);
        hw.push(w);
        hv.push(v);
    }
    loop {
        // The lightest head, most valuable among equal weights, earliest list on ties.
        let mut b = 0;
        for x in 1..k {
            if hw[x] < hw[b] || (hw[x] == hw[b] && hv[x] > hv[b]) {
                b = x;
            }
        }
        let i = at[b];
        if i >= end[b] {
            return Ok(());
        }
        let (w, v) = (hw[b], hv[b]);
        if keep.keeps(w, v) {
            let pick = shifts[b].2;
            let node = if pick == ROOT {
                list.node[i]
            } else {
                out.arena.push_reserved(list.node[i], pick)
            };
            out.push(w, v, node);
        }
        at[b] = i + 1;
        (hw[b], hv[b]) = head(b, i + 1);
    }
}

/// Merges `L ∪ (L + option)`: the common case of a plain item, as a two-way merge.
fn merge_one(
    list: List<'_>,
    (sw, sv, pick): (u64, f64, u32),
    capacity: Option<u64>,
    sink: &mut Sink<'_>,
) -> Result<(), KnapsackError> {
    let (n, m) = (list.w.len(), list.fitting(sw, capacity));
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        let (wa, va) = (list.w[i], list.v[i]);
        let (wb, vb) = (list.w[j] + sw, list.v[j] + sv);
        if wa < wb || (wa == wb && va >= vb) {
            sink.offer(wa, va, list.node[i], ROOT)?;
            i += 1;
        } else {
            sink.offer(wb, vb, list.node[j], pick)?;
            j += 1;
        }
    }
    for i in i..n {
        sink.offer(list.w[i], list.v[i], list.node[i], ROOT)?;
    }
    for j in j..m {
        sink.offer(list.w[j] + sw, list.v[j] + sv, list.node[j], pick)?;
    }
    Ok(())
}

/// Merges the list shifted by each of `shifts` (`pick == ROOT` for the unshifted list): a
/// k-way merge with a linear scan of the heads, fine for the few options a class has.
fn merge_many(
    list: List<'_>,
    shifts: &[(u64, f64, u32)],
    capacity: Option<u64>,
    sink: &mut Sink<'_>,
) -> Result<(), KnapsackError> {
    let mut at = vec![0usize; shifts.len()];
    let end: Vec<usize> = shifts
        .iter()
        .map(|&(sw, _, _)| list.fitting(sw, capacity))
        .collect();
    loop {
        // The lightest head, most valuable among equal weights, earliest list on ties.
        let mut best: Option<(usize, u64, f64)> = None;
        for (k, &(sw, sv, _)) in shifts.iter().enumerate() {
            let i = at[k];
            if i < end[k] {
                let (w, v) = (list.w[i] + sw, list.v[i] + sv);
                if best.is_none_or(|(_, bw, bv)| w < bw || (w == bw && v > bv)) {
                    best = Some((k, w, v));
                }
            }
        }
        let Some((k, w, v)) = best else { return Ok(()) };
        let i = at[k];
        at[k] += 1;
        sink.offer(w, v, list.node[i], shifts[k].2)?;
    }
}

/// The order in which groups are merged. It does not change the result, only the sizes of the
/// intermediate lists, and so the running time.
///
/// - Fronts merge the lightest groups first: the many small items build a dense list over a
///   short weight range, and each heavy group then adds a shifted copy that overlaps little.
/// - The exact solvers merge the heaviest groups first: the LP bound over the light groups
///   still to come is then nearly integral, so it is tight, the completions that it yields are
///   near-optimal incumbents, and nearly every point is pruned.
///
/// Ties go to the better value per weight.
fn merge_order(inst: &Instance, bounded: bool) -> Vec<usize> {
    let heaviest = |g: usize| heaviest(&inst.groups[g]);
    let ratio = |g: usize| {
        let o = inst.groups[g].options[0];
        crate::item::ratio(o.w, o.v)
    };
    let mut order: Vec<usize> = (0..inst.groups.len()).collect();
    order.sort_by(|&a, &b| {
        let by_weight = heaviest(a).cmp(&heaviest(b));
        let by_weight = if bounded {
            by_weight.reverse()
        } else {
            by_weight
        };
        by_weight.then(ratio(b).total_cmp(&ratio(a)))
    });
    order
}

/// The weight of a group's heaviest option (0 for a group without options): the key of the
/// merge order, whose bounded merges take the heaviest groups first.
pub(crate) fn heaviest(group: &crate::instance::Group) -> u64 {
    group.options.last().map_or(0, |o| o.w)
}

/// The best contribution `max_o v_o - price w_o` of a group's options, and 0 when it may take
/// nothing.
pub(crate) fn best_contribution(group: &crate::instance::Group, price: f64) -> f64 {
    let none = if group.none_allowed {
        0.0
    } else {
        f64::NEG_INFINITY
    };
    group
        .options
        .iter()
        .map(|o| o.v - price * o.w as f64)
        .fold(none, f64::max)
}

pub(crate) fn total_value(inst: &Instance) -> f64 {
    inst.groups
        .iter()
        .filter_map(|g| g.options.last())
        .map(|o| o.v)
        .sum()
}

/// Value of the LP-greedy selection (a feasible lower bound on the optimum), base excluded.
pub(crate) fn greedy_value(inst: &Instance, lp: &LpBound, capacity: u64) -> f64 {
    let picks = lp.greedy(inst, capacity);
    inst.groups
        .iter()
        .zip(picks)
        .filter_map(|(g, p)| p.map(|i| g.options[i].v))
        .sum()
}
