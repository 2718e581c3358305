//! The error budget of approximate fronts: when to trim, and by how much.
//!
//! # The trimming rule
//!
//! Trimming a list with tolerance `delta` walks it by increasing weight and drops a point
//! `(w, v)` when the last kept point (lighter, since the list is sorted) has a value of at
//! least `v - delta * max(v, LB(w))`, where `LB` is a lower bound on the optimum at every
//! capacity ([`crate::lower`]). With `LB = 0` this is the classic geometric trim (keep a point
//! only if it beats the last kept one by a factor `1 / (1 - delta)`); the `LB` term lets
//! trimming be coarse where the list's points are poor compared with what the instance can
//! achieve at their weight (the heavy end of a list of light items, typically), and that is
//! where most of a list's points are.
//!
//! # Why the front keeps its guarantee
//!
//! Fix any selection `S` and follow it through the merges: `S_t` is its part among the groups
//! merged so far, and `R_t` a point of the list after merge `t` that *represents* it, with
//! `w(R_t) <= w(S_t)`. Merge `t` forms the candidate `C_t = R_{t-1}` plus `S`'s option of
//! group `t` (if any), which is in the merged list before pruning, and `w(C_t) <= w(S_t)`.
//! - If `C_t` survives, `R_t = C_t`.
//! - If a lighter point beats it (dominance), that point is `R_t`, and it loses nothing.
//! - If trimming drops it, the last kept point is `R_t`: lighter, and
//!   `v(R_t) >= v(C_t) - delta_t * max(v(C_t), LB(w(C_t)))`.
//!
//! Both `v(C_t)` (the value of a real selection of weight `w(C_t)`) and `LB(w(C_t))` are at
//! most `OPT(w(C_t)) <= OPT(w(S))`, so each trim loses at most `delta_t * OPT(w(S))`, and
//! values add up along the way: `v(R_end) >= v(S) - (sum_t delta_t) * OPT(w(S))`. For the
//! optimal selection `S` at a capacity `c`, `OPT(w(S)) = OPT(c) = v(S)`, and the front's
//! best point within `c` (weight `w(R_end) <= w(S) <= c`) is worth at least
//! `(1 - sum_t delta_t) * OPT(c)`. The schedule below keeps `sum_t delta_t <= epsilon`,
//! whatever the number and timing of the trims, which is the guarantee of
//! [`crate::FrontOptions::epsilon`].
//!
//! # The schedule
//!
//! The textbook schedule trims after every one of the `K` merges with `delta = epsilon / K`,
//! which keeps lists at resolution `epsilon / K`: slow for thousands of items. Here the budget
//! `epsilon` is split in two halves:
//!
//! - the first half accrues evenly over the merges, and is spent by a trim only when the list
//!   has at least doubled since the previous trim (and holds at least [`MIN_TRIM_LEN`]
//!   points), each trim spending everything accrued since the previous one. Trims are then few
//!   and coarse, lists stay short, and the budget can never run out before the last merge;
//! - the second half, with whatever the first left unspent, goes to one final trim of the
//!   result. Since a kept point beats the last kept one by more than `delta * v`, the front
//!   has at most about `2 ln(V / v_1) / epsilon + 2` points (`V` the largest value, `v_1` the
//!   smallest positive one).

/// Lists shorter than this are cheap to merge and never trimmed before the end.
pub(crate) const MIN_TRIM_LEN: usize = 1024;

/// A list is trimmed again once it has grown by this factor since the last trim.
const GROWTH: usize = 2;

/// Share of the budget kept for the final trim.
const FINAL_SHARE: f64 = 0.5;

/// The trimming schedule of one merge run.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// Total budget, `epsilon`: the sum of all trims' tolerances.
    budget: f64,
    /// Budget accrued per merge for intermediate trims.
    per_merge: f64,
    spent: f64,
    /// Merges done at the last trim.
    accrued_from: usize,
    /// List length right after the last trim.
    last_len: usize,
}

impl Schedule {
    /// The schedule for `merges` merges with the guarantee `1 - epsilon` (`0` for none).
    pub fn new(epsilon: f64, merges: usize) -> Self {
        Self::with_final_share(epsilon, merges, FINAL_SHARE)
    }

    /// [`Schedule::new`] keeping the share `final_share` of the budget (in `[0, 1]`) for the
    /// final trim instead of [`FINAL_SHARE`].
    pub fn with_final_share(epsilon: f64, merges: usize, final_share: f64) -> Self {
        let per_merge = (1.0 - final_share) * epsilon / merges.max(1) as f64;
        Self {
            budget: epsilon,
            per_merge,
            spent: 0.0,
            accrued_from: 0,
            last_len: 0,
        }
    }

    /// For merge number `step` (from 0) of a list of `len` points: the tolerance `delta` to
    /// trim it with, `0.0` for no trimming.
    pub fn delta(&mut self, step: usize, len: usize) -> f64 {
        if self.budget == 0.0 || len < MIN_TRIM_LEN || len < GROWTH * self.last_len {
            return 0.0;
        }
        let spend = self.per_merge * (step + 1 - self.accrued_from) as f64;
        self.accrued_from = step + 1;
        self.spent += spend;
        spend
    }

    /// Records the length of a list just trimmed.
    pub fn trimmed(&mut self, len: usize) {
        self.last_len = len;
    }

    /// The tolerance of the final trim: everything not yet spent (`0.0` when exact).
    pub fn final_delta(&self) -> f64 {
        (self.budget - self.spent).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_budget_is_spent_and_no_more() {
        let epsilon = 0.05;
        let mut s = Schedule::new(epsilon, 10);
        let mut sum = 0.0;
        for (step, len) in [10, 2000, 2500, 4100, 5000, 9000, 100, 20000, 30000, 90000]
            .into_iter()
            .enumerate()
        {
            let delta = s.delta(step, len);
            if delta > 0.0 {
                s.trimmed(len / 2);
            }
            sum += delta;
        }
        sum += s.final_delta();
        assert!((sum - epsilon).abs() < 1e-15, "{sum}");
        let exact = Schedule::new(0.0, 10);
        assert_eq!(exact.final_delta(), 0.0);
    }
}
