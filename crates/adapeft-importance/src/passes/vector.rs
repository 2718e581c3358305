//! Per-parameter vectors and their algebra: a [`ParamVec`] holds one flattened tensor per
//! parameter of [`Groups::params`], and the helpers here add, dot, restrict and combine them
//! by group. No pass over the data happens here.

use burn::tensor::Tensor;

use crate::params::grouping::Groups;

/// One flattened tensor per parameter of [`Groups::params`]; `None` where a parameter takes no
/// part (not grouped, or not perturbed).
pub(crate) type ParamVec = Vec<Option<Tensor<1>>>;

/// The finite-difference step `e` that moves weights of squared norm `w2` along a direction
/// of squared norm `v2` by the relative amount `step`: `e sqrt(v2) = step sqrt(w2)`, or
/// `e sqrt(v2) = step` for all-zero weights.
pub(crate) fn relative_step(step: f64, w2: f64, v2: f64) -> f64 {
    if w2 > 0.0 {
        step * (w2 / v2).sqrt()
    } else {
        step / v2.sqrt()
    }
}

/// The summed loss and summed gradient of per-batch results, in batch order.
pub(crate) fn sum_of(per_batch: Vec<(f64, ParamVec)>) -> (f64, ParamVec) {
    let mut iter = per_batch.into_iter();
    let (mut loss, mut grad) = iter.next().expect("at least one batch");
    for (l, g) in iter {
        loss += l;
        for (acc, x) in grad.iter_mut().zip(g) {
            if let (Some(a), Some(x)) = (acc.as_mut(), x) {
                *a = a.clone() + x;
            }
        }
    }
    (loss, grad)
}

/// The mean loss and mean gradient of per-batch results.
pub(crate) fn mean_of(per_batch: Vec<(f64, ParamVec)>) -> (f64, ParamVec) {
    let n = per_batch.len() as f64;
    let (loss, mut grad) = sum_of(per_batch);
    if n > 1.0 {
        for g in grad.iter_mut().flatten() {
            *g = g.clone().div_scalar(n);
        }
    }
    (loss / n, grad)
}

/// `sum(x_i * y_i)` for every parameter where both are present, read back in one transfer.
/// Entries where either side is `None` are `0`.
pub(crate) fn dots(x: &ParamVec, y: &ParamVec) -> Vec<f64> {
    let mut which = Vec::new();
    let mut parts = Vec::new();
    for (i, (a, b)) in x.iter().zip(y).enumerate() {
        if let (Some(a), Some(b)) = (a, b) {
            which.push(i);
            parts.push((a.clone() * b.clone()).sum());
        }
    }
    let mut out = vec![0.0; x.len()];
    if parts.is_empty() {
        return out;
    }
    let values: Vec<f64> = Tensor::cat(parts, 0).into_data().iter::<f64>().collect();
    for (i, v) in which.into_iter().zip(values) {
        out[i] = v;
    }
    out
}

/// Sums per-parameter numbers into per-group numbers.
pub(crate) fn per_group(groups: &Groups, per_param: &[f64]) -> Vec<f64> {
    groups
        .groups()
        .iter()
        .map(|g| g.members.iter().map(|&m| per_param[m]).sum())
        .collect()
}

/// `coef * x` restricted to the members of one group (other entries `None`).
pub(crate) fn restrict(groups: &Groups, g: usize, x: &ParamVec, coef: f64) -> ParamVec {
    let mut out: ParamVec = vec![None; x.len()];
    for &m in &groups.groups()[g].members {
        out[m] = x[m].as_ref().map(|t| t.clone().mul_scalar(coef));
    }
    out
}

/// `sum_g coef_g * x` over the groups, each group's members scaled by its coefficient
/// (`0` leaves a group out).
pub(crate) fn combine(groups: &Groups, x: &ParamVec, coefs: &[f64]) -> ParamVec {
    let mut out: ParamVec = vec![None; x.len()];
    for (group, &c) in groups.groups().iter().zip(coefs) {
        if c == 0.0 {
            continue;
        }
        for &m in &group.members {
            out[m] = x[m].as_ref().map(|t| t.clone().mul_scalar(c));
        }
    }
    out
}
