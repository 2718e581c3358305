//! The error budget of approximate fronts: when to trim, and by how much.
//!
//! Trimming a list with factor `delta` keeps, walking it by increasing weight, only the points
//! whose value exceeds the last kept value divided by `1 - delta`. Every dropped point is then
//! dominated within `1 - delta` by a lighter kept point, and since merging preserves such
//! domination, a sequence of trims with factors `delta_t` leaves every selection dominated
//! within `prod_t (1 - delta_t)` by a point of the result. The front's guarantee holds as long
//! as that product stays at least `1 - epsilon`, whatever the number and timing of the trims.
//!
//! The textbook schedule trims after every one of the `K` merges with `delta = epsilon / K`,
//! which keeps lists at resolution `epsilon / K`: slow for thousands of items. Here the budget
//! `ln(1 / (1 - epsilon))` (a sum, in log space) is split in two halves:
//!
//! - the first half accrues evenly over the merges, and is spent by a trim only when the list
//!   has at least doubled since the previous trim (and holds at least [`MIN_TRIM_LEN`]
//!   points), each trim spending everything accrued since the previous one. Trims are then few
//!   and coarse, lists stay short, and the budget can never run out before the last merge;
//! - the second half, with whatever the first left unspent, goes to one final trim of the
//!   result, so that the front has at most about `2 ln(V / v_1) / epsilon + 2` points (`V`
//!   the largest value, `v_1` the smallest positive one).

/// Lists shorter than this are cheap to merge and never trimmed before the end.
pub(crate) const MIN_TRIM_LEN: usize = 1024;

/// A list is trimmed again once it has grown by this factor since the last trim.
const GROWTH: usize = 2;

/// Share of the budget kept for the final trim.
const FINAL_SHARE: f64 = 0.5;

/// The trimming schedule of one merge run.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// Total budget, `-ln(1 - epsilon)`.
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
        let budget = -(-epsilon).ln_1p();
        let per_merge = (1.0 - FINAL_SHARE) * budget / merges.max(1) as f64;
        Self {
            budget,
            per_merge,
            spent: 0.0,
            accrued_from: 0,
            last_len: 0,
        }
    }

    /// For merge number `step` (from 0) of a list of `len` points: the trimming scale
    /// `1 / (1 - delta)` to apply to it, `1.0` for no trimming.
    pub fn scale(&mut self, step: usize, len: usize) -> f64 {
        if self.budget == 0.0 || len < MIN_TRIM_LEN || len < GROWTH * self.last_len {
            return 1.0;
        }
        let spend = self.per_merge * (step + 1 - self.accrued_from) as f64;
        self.accrued_from = step + 1;
        self.spent += spend;
        spend.exp()
    }

    /// Records the length of a list just trimmed.
    pub fn trimmed(&mut self, len: usize) {
        self.last_len = len;
    }

    /// The scale of the final trim: everything not yet spent (`1.0` when exact).
    pub fn final_scale(&self) -> f64 {
        (self.budget - self.spent).max(0.0).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_budget_is_spent_and_no_more() {
        let epsilon = 0.05;
        let mut s = Schedule::new(epsilon, 10);
        let mut product = 1.0;
        for (step, len) in [10, 2000, 2500, 4100, 5000, 9000, 100, 20000, 30000, 90000]
            .into_iter()
            .enumerate()
        {
            let scale = s.scale(step, len);
            if scale > 1.0 {
                s.trimmed(len / 2);
            }
            product /= scale;
        }
        product /= s.final_scale();
        assert!((product - (1.0 - epsilon)).abs() < 1e-12, "{product}");
        let exact = Schedule::new(0.0, 10);
        assert_eq!(exact.final_scale(), 1.0);
    }
}
