//! A cheap lower bound on the optimum at every capacity, used by approximate fronts to trim
//! relative to what is achievable rather than to a point's own value.
//!
//! `LB(c)` is the value of the best of a few feasible selections of weight at most `c`:
//!
//! - the prefixes of the LP's greedy path (hull segments of all groups in order of decreasing
//!   slope; for plain items, the items by decreasing value/weight), which are feasible since
//!   each group's segments come in its own hull order;
//! - every option alone (with the other groups at their hull start).
//!
//! Each is a real selection, so `LB(c) <= OPT(c)` for every `c`; for plain items the two
//! together are the ratio greedy with its fix, so `LB(c) >= OPT(c) / 2` as well (the latter
//! only matters for speed, never for correctness). Both include the forced base picks.

use crate::bound::LpBound;
use crate::instance::Instance;

/// `LB` as a staircase: weights and values strictly increasing, first weight 0.
#[derive(Debug, Clone)]
pub(crate) struct LowerBound {
    w: Vec<u64>,
    v: Vec<f64>,
}

impl LowerBound {
    pub fn new(inst: &Instance) -> Self {
        let lp = LpBound::new(inst);
        let mut cand = lp.chain();
        for (g, group) in inst.groups.iter().enumerate() {
            let others = lp.base() - lp.start_value(g);
            cand.extend(group.options.iter().map(|o| (o.w, others + o.v)));
        }
        cand.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let (mut w, mut v) = (vec![0u64], vec![inst.base_value]);
        for (cw, cv) in cand {
            let cv = cv + inst.base_value;
            if cv > *v.last().unwrap_or(&f64::NEG_INFINITY) {
                if *w.last().unwrap_or(&u64::MAX) == cw {
                    *v.last_mut().unwrap_or(&mut 0.0) = cv;
                } else {
                    w.push(cw);
                    v.push(cv);
                }
            }
        }
        Self { w, v }
    }

    /// `LB(w)`, by binary search.
    pub fn value_at(&self, w: u64) -> f64 {
        let k = self.w.partition_point(|&x| x <= w);
        self.v[k.saturating_sub(1)]
    }

    /// A lookup for weights offered in non-decreasing order.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor { lb: self, at: 0 }
    }
}

/// Reads `LB(w)` for non-decreasing `w` in amortised `O(1)`.
pub(crate) struct Cursor<'a> {
    lb: &'a LowerBound,
    at: usize,
}

impl Cursor<'_> {
    /// `LB(w)`; `w` must not be smaller than in the previous call.
    #[inline]
    pub fn at(&mut self, w: u64) -> f64 {
        let ws = &self.lb.w;
        while self.at + 1 < ws.len() && ws[self.at + 1] <= w {
            self.at += 1;
        }
        self.lb.v[self.at]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Class, Item};

    #[test]
    fn greedy_prefixes_and_single_items() {
        // Ratios 2, 1.125, 1: prefixes (0, 0), (1, 2), (5, 6.5), (7, 8.5); the single item
        // (4, 4.5) beats the prefixes at 4.
        let items = [Item::new(1, 2.0), Item::new(2, 2.0), Item::new(4, 4.5)];
        let inst = Instance::from_items(&items, None).unwrap();
        let lb = LowerBound::new(&inst);
        let mut c = lb.cursor();
        let got: Vec<f64> = [0, 1, 3, 4, 5, 6, 7, 100]
            .iter()
            .map(|&w| c.at(w))
            .collect();
        assert_eq!(got, vec![0.0, 2.0, 2.0, 4.5, 6.5, 6.5, 8.5, 8.5]);
    }

    #[test]
    fn never_above_the_optimum_with_forced_picks_and_classes() {
        let classes = [
            Class::new(vec![Item::new(0, 1.0), Item::new(10, 4.0)]),
            Class::new(vec![Item::new(5, 3.0), Item::new(8, 3.5)]),
            Class::new(vec![Item::new(0, 2.0)]),
        ];
        let inst = Instance::from_classes(&classes, None).unwrap();
        let lb = LowerBound::new(&inst);
        let mut c = lb.cursor();
        // OPT: 0 -> 3, 5 -> 6, 8 -> 6.5, 10 -> 6, 15 -> 9, 18 -> 9.5.
        for (w, opt) in [
            (0, 3.0),
            (5, 6.0),
            (8, 6.5),
            (10, 6.5),
            (15, 9.0),
            (18, 9.5),
        ] {
            let got = c.at(w);
            assert!(got <= opt + 1e-12, "LB({w}) = {got} > {opt}");
            assert!(got >= opt / 2.0, "LB({w}) = {got}");
        }
    }
}
