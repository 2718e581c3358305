//! Helpers shared by the crate's unit tests.

use crate::class::Class;

/// The optimum at every capacity as a step function, by enumerating every selection of at
/// most one option per class: (weight, best value up to it), lightest first, starting at
/// `(0, 0.0)`.
pub(crate) fn brute_steps(classes: &[Class]) -> Vec<(u64, f64)> {
    let mut all = vec![(0u64, 0.0f64)];
    for c in classes {
        let mut next = all.clone();
        for o in c.options() {
            next.extend(all.iter().map(|&(w, v)| (w + o.weight, v + o.value)));
        }
        all = next;
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
