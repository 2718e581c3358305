//! Per-parameter vectors and their algebra: a [`ParamVec`] holds one flattened tensor per
//! parameter of [`Groups::params`], and the helpers here add, dot, restrict and combine them
//! by group. No pass over the data happens here.

use burn::tensor::Tensor;

use crate::params::grouping::Groups;
use crate::params::units::Tiling;

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

/// `sum(x_i * y_i)` per group, over its whole members and over the cells of its parts, read
/// back in one transfer (`docs/algorithm.md`, section 8: a sum over coordinates credits any
/// partition of them). Where either side is `None` a parameter adds `0`. A group of whole
/// tensors gets exactly [`per_group`] of [`dots`], bit for bit.
pub(crate) fn group_dots(groups: &Groups, x: &ParamVec, y: &ParamVec) -> Vec<f64> {
    let products: ParamVec = x
        .iter()
        .zip(y)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => Some(a.clone() * b.clone()),
            _ => None,
        })
        .collect();
    group_sums(groups, &products)
}

/// The sum of `x` per group, over its whole members and over the cells of its parts, read
/// back in one transfer; a parameter that is `None` adds `0`.
pub(crate) fn group_sums(groups: &Groups, x: &ParamVec) -> Vec<f64> {
    let tilings = groups.tilings();
    // Per parameter: where its sums start in the readback (one value, or one per cell).
    let mut start: Vec<Option<usize>> = vec![None; x.len()];
    let mut sums = Vec::new();
    let mut len = 0;
    for (i, t) in x.iter().enumerate() {
        let Some(t) = t else { continue };
        start[i] = Some(len);
        match tilings[i] {
            None => {
                sums.push(t.clone().sum());
                len += 1;
            }
            Some(tiling) => {
                sums.push(cell_sums(t.clone(), &tiling));
                len += tiling.cells();
            }
        }
    }
    let values: Vec<f64> = if sums.is_empty() {
        Vec::new()
    } else {
        Tensor::cat(sums, 0).into_data().iter::<f64>().collect()
    };
    let at = |param: usize, offset: usize| start[param].map_or(0.0, |s| values[s + offset]);
    groups
        .groups()
        .iter()
        .map(|g| {
            let whole: f64 = g.members.iter().map(|&m| at(m, 0)).sum();
            if g.parts.is_empty() {
                whole
            } else {
                whole
                    + g.parts
                        .iter()
                        .map(|p| at(p.param as usize, p.cell as usize))
                        .sum::<f64>()
            }
        })
        .collect()
}

/// The sums of a flattened tensor over the cells of `tiling`, row-major over its grid, on the
/// device: each region of equal bands (the full bands, then the shorter last row or column of
/// them) is reshaped to `[bands, band_rows, bands, band_cols]` and summed over the bands' rows
/// and columns.
pub(crate) fn cell_sums(x: Tensor<1>, tiling: &Tiling) -> Tensor<1> {
    let Tiling {
        rows,
        cols,
        band_rows,
        band_cols,
    } = *tiling;
    // The segments of one axis: `(start, end, band)`, the full bands and then the remainder.
    let segments = |len: usize, band: usize| {
        let full = len / band * band;
        let mut out = Vec::with_capacity(2);
        if full > 0 {
            out.push((0, full, band));
        }
        if full < len {
            out.push((full, len, len - full));
        }
        out
    };
    let matrix: Tensor<2> = x.reshape([rows, cols]);
    let col_segments = segments(cols, band_cols);
    let mut row_blocks = Vec::with_capacity(2);
    for (r0, r1, rb) in segments(rows, band_rows) {
        let nr = (r1 - r0) / rb;
        let mut pieces = Vec::with_capacity(2);
        for &(c0, c1, cb) in &col_segments {
            let nc = (c1 - c0) / cb;
            let region = matrix.clone().slice([r0..r1, c0..c1]);
            let summed = region
                .reshape([nr, rb, nc, cb])
                .sum_dim(1)
                .sum_dim(3)
                .reshape([nr, nc]);
            pieces.push(summed);
        }
        row_blocks.push(Tensor::cat(pieces, 1));
    }
    Tensor::cat(row_blocks, 0).reshape([tiling.cells()])
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
