//! The LP (Dantzig) upper bound for the classes not merged yet, and the greedy incumbent.
//!
//! For one class, the LP relaxation may mix options; its best mixtures lie on the upper
//! convex hull of `{none} ∪ options` in the (weight, value) plane. The LP relaxation of the
//! whole multiple-choice problem is solved greedily (Sinha and Zoltners): walk the hull
//! segments of all classes in order of decreasing slope, taking each whole while it fits and
//! a fraction of the first one that does not. For plain items each hull is one segment and
//! this is Dantzig's bound for items sorted by value/weight.
//!
//! The solver merges classes one at a time and needs, for every partial selection, the bound
//! over the classes still to come. The segments are sorted by slope once and kept in a
//! Fenwick tree of (weight, value) sums; merging a class deletes its segments, and the bound
//! for a residual capacity is one `O(log S)` descent of the tree.

use crate::instance::{Group, Instance};

/// The upper convex hull of one group: pushes onto `vertices` the indices of the options at
/// its vertices after the start, and returns the value of the start (0 for "none", else the
/// weightless first option).
fn hull(group: &Group, vertices: &mut Vec<u32>) -> f64 {
    let opts = &group.options;
    let (start, base, first) = if group.none_allowed {
        ((0u64, 0.0), 0.0, 0)
    } else {
        ((opts[0].w, opts[0].v), opts[0].v, 1)
    };
    let from = vertices.len();
    let point = |i: u32| (opts[i as usize].w, opts[i as usize].v);
    for (i, o) in opts.iter().enumerate().skip(first) {
        let p = (o.w, o.v);
        // Pop the last vertex while it lies on or below the segment from its predecessor to p.
        while vertices.len() > from {
            let len = vertices.len();
            let a = if len - from >= 2 {
                point(vertices[len - 2])
            } else {
                start
            };
            let b = point(vertices[len - 1]);
            let slope_ab = (b.1 - a.1) / (b.0 - a.0) as f64;
            let slope_bp = (p.1 - b.1) / (p.0 - b.0) as f64;
            if slope_ab <= slope_bp {
                vertices.pop();
            } else {
                break;
            }
        }
        vertices.push(i as u32);
    }
    base
}

/// One hull segment: moving group `group` from hull vertex `step` to `step + 1`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    w: u64,
    v: f64,
    slope: f64,
    group: u32,
    step: u32,
}

/// The LP bound over a shrinking set of groups.
///
/// Per-group data is flat (one allocation for all groups, not one per group): a million
/// plain items build it in a fraction of the time.
#[derive(Debug, Clone)]
pub(crate) struct LpBound {
    /// Value of each group's hull start.
    starts: Vec<f64>,
    /// Group `g`'s hull vertices are `vertices[first[g]..first[g + 1]]` (option indices), and
    /// its segments sit at `positions[first[g]..first[g + 1]]` in `segments`.
    first: Vec<u32>,
    vertices: Vec<u32>,
    positions: Vec<u32>,
    segments: Vec<Segment>,
    tree_w: Vec<u128>,
    tree_v: Vec<f64>,
    top: usize,
    base: f64,
}

impl LpBound {
    /// The bound over all groups of `inst` (the base picks are not included).
    pub fn new(inst: &Instance) -> Self {
        let groups = inst.groups.len();
        let mut starts = Vec::with_capacity(groups);
        let mut first = Vec::with_capacity(groups + 1);
        let mut vertices = Vec::with_capacity(groups);
        for group in &inst.groups {
            first.push(vertices.len() as u32);
            starts.push(hull(group, &mut vertices));
        }
        first.push(vertices.len() as u32);
        let mut segments = Vec::with_capacity(vertices.len());
        for (g, group) in inst.groups.iter().enumerate() {
            let mut prev = (0u64, starts[g]);
            let own = &vertices[first[g] as usize..first[g + 1] as usize];
            for (step, &i) in own.iter().enumerate() {
                let o = group.options[i as usize];
                let (w, v) = (o.w - prev.0, o.v - prev.1);
                segments.push(Segment {
                    w,
                    v,
                    slope: v / w as f64,
                    group: g as u32,
                    step: step as u32,
                });
                prev = (o.w, o.v);
            }
        }
        // Decreasing slope; ties by group and step, so a group's own segments (already of
        // decreasing slope) keep their order and the result does not depend on the sort.
        segments.sort_unstable_by(|a, b| {
            b.slope
                .total_cmp(&a.slope)
                .then(a.group.cmp(&b.group))
                .then(a.step.cmp(&b.step))
        });
        let mut positions = vec![0u32; segments.len()];
        for (p, s) in segments.iter().enumerate() {
            positions[(first[s.group as usize] + s.step) as usize] = p as u32;
        }
        let n = segments.len();
        let mut tree_w = vec![0u128; n + 1];
        let mut tree_v = vec![0.0; n + 1];
        for (p, s) in segments.iter().enumerate() {
            tree_w[p + 1] += s.w as u128;
            tree_v[p + 1] += s.v;
            let parent = (p + 1) + ((p + 1) & (p + 1).wrapping_neg());
            if parent <= n {
                tree_w[parent] += tree_w[p + 1];
                tree_v[parent] += tree_v[p + 1];
            }
        }
        let top = if n == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - n.leading_zeros())
        };
        let base = starts.iter().sum();
        Self {
            starts,
            first,
            vertices,
            positions,
            segments,
            tree_w,
            tree_v,
            top,
            base,
        }
    }

    /// The option indices of group `g`'s hull vertices after its start.
    fn vertices_of(&self, g: usize) -> &[u32] {
        &self.vertices[self.first[g] as usize..self.first[g + 1] as usize]
    }

    /// Removes a group from the bound (it has been merged).
    pub fn remove(&mut self, group: usize) {
        self.base -= self.starts[group];
        let n = self.segments.len();
        let own = self.first[group] as usize..self.first[group + 1] as usize;
        for &p in &self.positions[own] {
            let s = self.segments[p as usize];
            let mut i = p as usize + 1;
            while i <= n {
                self.tree_w[i] -= s.w as u128;
                self.tree_v[i] -= s.v;
                i += i & i.wrapping_neg();
            }
        }
    }

    /// Bounds on the value the remaining groups can add within `residual` weight:
    /// `(lower, upper)`. `upper` is the LP bound; `lower` is the value of its integer part
    /// (the whole segments taken before the fractional one), which is a feasible selection.
    #[inline]
    pub fn bounds(&self, residual: u64) -> (f64, f64) {
        let (pos, acc_w, acc_v) = self.prefix(residual);
        let n = self.segments.len();
        // The maximal prefix that fits: the next segment is live (a removed one weighs 0 and
        // would have fitted) and is taken fractionally.
        let frac = if pos < n {
            (residual as u128 - acc_w) as f64 * self.segments[pos].slope
        } else {
            0.0
        };
        let lower = self.base + acc_v;
        (lower, lower + frac)
    }

    /// The slope of the segment the LP takes fractionally at `residual` (the LP's dual price
    /// of capacity), or 0 when every remaining segment fits.
    pub fn break_slope(&self, residual: u64) -> f64 {
        self.break_position(residual)
            .map_or(0.0, |p| self.segments[p].slope)
    }

    /// The position, in slope order (as in [`LpBound::path`]), of the segment the LP takes
    /// fractionally at `residual`, or `None` when every remaining segment fits.
    pub fn break_position(&self, residual: u64) -> Option<usize> {
        let (pos, _, _) = self.prefix(residual);
        (pos < self.segments.len()).then_some(pos)
    }

    /// The maximal prefix of live segments (in slope order) that fits `residual`: its end
    /// position, weight and value.
    #[inline]
    fn prefix(&self, residual: u64) -> (usize, u128, f64) {
        let r = residual as u128;
        let n = self.segments.len();
        let (mut pos, mut acc_w, mut acc_v) = (0usize, 0u128, 0.0);
        let mut step = self.top;
        while step > 0 {
            let next = pos + step;
            if next <= n && acc_w + self.tree_w[next] <= r {
                pos = next;
                acc_w += self.tree_w[next];
                acc_v += self.tree_v[next];
            }
            step >>= 1;
        }
        (pos, acc_w, acc_v)
    }

    /// The feasible selections along the LP's greedy path, before any group is removed:
    /// `(weight, value)` of the hull start of every group (`self.base`) plus each prefix of
    /// the segments in slope order (a group's segments come in its own hull order, so every
    /// prefix takes at most one option per group). Weights saturate at `u64::MAX`.
    pub fn chain(&self) -> Vec<(u64, f64)> {
        let mut out = Vec::with_capacity(self.segments.len() + 1);
        let (mut w, mut v) = (0u64, self.base);
        out.push((w, v));
        for s in &self.segments {
            w = w.saturating_add(s.w);
            v += s.v;
            out.push((w, v));
        }
        out
    }

    /// The LP's greedy path, before any group is removed: for each hull segment in order of
    /// decreasing slope, its weight and value increments, its group and the option (index
    /// into the group's options) the group moves to. Every prefix of the path, each group at
    /// the last option it reached (or at its hull start), is a feasible selection.
    pub fn path(&self) -> impl ExactSizeIterator<Item = (u64, f64, usize, usize)> + '_ {
        self.segments.iter().map(|s| {
            let g = s.group as usize;
            (s.w, s.v, g, self.vertices_of(g)[s.step as usize] as usize)
        })
    }

    /// Value of the hull start of `group` (0, or its weightless first option's value).
    pub fn start_value(&self, group: usize) -> f64 {
        self.starts[group]
    }

    /// Sum of the hull starts of all groups still in the bound.
    pub fn base(&self) -> f64 {
        self.base
    }

    /// The LP bound alone; see [`LpBound::bounds`].
    #[cfg(test)]
    pub fn upper_bound(&self, residual: u64) -> f64 {
        self.bounds(residual).1
    }

    /// Greedy feasible selection within `capacity` along the hull segments: take each
    /// segment in slope order if it fits and is its group's next one, else freeze that group.
    /// Returns, per group, the chosen option index (`None` for nothing).
    pub fn greedy(&self, inst: &Instance, capacity: u64) -> Vec<Option<usize>> {
        let mut reached = vec![0u32; self.starts.len()];
        let mut frozen = vec![false; self.starts.len()];
        let mut residual = capacity;
        for s in &self.segments {
            let g = s.group as usize;
            if frozen[g] || reached[g] != s.step {
                continue;
            }
            if s.w <= residual {
                residual -= s.w;
                reached[g] += 1;
            } else {
                frozen[g] = true;
            }
        }
        inst.groups
            .iter()
            .zip(reached)
            .enumerate()
            .map(|(g, (group, k))| match k {
                0 if group.none_allowed => None,
                0 => Some(0),
                k => Some(self.vertices_of(g)[k as usize - 1] as usize),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Class, Item};

    #[test]
    fn dantzig_bound_for_items() {
        let items = [Item::new(10, 10.0), Item::new(10, 5.0), Item::new(20, 4.0)];
        let inst = Instance::from_items(&items, Some(100)).unwrap();
        let mut lp = LpBound::new(&inst);
        assert_eq!(lp.upper_bound(0), 0.0);
        assert_eq!(lp.upper_bound(15), 12.5);
        assert_eq!(lp.upper_bound(25), 16.0);
        assert_eq!(lp.upper_bound(1000), 19.0);
        lp.remove(0);
        assert_eq!(lp.upper_bound(15), 6.0);
        assert_eq!(lp.upper_bound(1000), 9.0);
    }

    #[test]
    fn hull_skips_options_below_it() {
        // (10, 1) lies below the chord from (0, 0) to (20, 10).
        let classes = [Class::new(vec![Item::new(10, 1.0), Item::new(20, 10.0)])];
        let inst = Instance::from_classes(&classes, Some(100)).unwrap();
        let lp = LpBound::new(&inst);
        assert_eq!(lp.upper_bound(10), 5.0);
        assert_eq!(lp.greedy(&inst, 15), vec![None]);
        assert_eq!(lp.greedy(&inst, 20), vec![Some(1)]);
    }
}
