//! Models with closed-form curvature (a quadratic, a multinomial logistic regression), a
//! small MLP with a dense finite-difference Hessian, and host-side (f64) reference math.
//! Everything here is independent of the estimators under test.
// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use adapeft_importance::Objective;
use burn::module::{Module, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::host::{
    flat_params, gradient_at, host, tensor1, tensor2, with_params, with_random_params,
};

// ---------------------------------------------------------------------------------------------
// The quadratic model L(w) = 1/2 w^T A w - c^T w, its vector split into groups.

#[derive(Module, Debug)]
pub struct Quadratic {
    pub parts: Vec<Param<Tensor<1>>>,
}

#[derive(Debug, Clone)]
pub struct QuadraticBatch {
    pub a: Tensor<2>,
    pub c: Tensor<1>,
    /// Multiplies the loss (to test scale invariance).
    pub scale: f64,
}

impl Objective<QuadraticBatch> for Quadratic {
    fn loss(&self, batch: &QuadraticBatch) -> Tensor<1> {
        let w = Tensor::cat(self.parts.iter().map(|p| p.val()).collect(), 0);
        let n = w.dims()[0];
        let aw = batch
            .a
            .clone()
            .matmul(w.clone().reshape([n, 1]))
            .reshape([n]);
        ((w.clone() * aw).sum().mul_scalar(0.5) - (batch.c.clone() * w).sum())
            .mul_scalar(batch.scale)
    }
}

/// A problem instance: sizes of the groups, the matrix `A` (row-major), `c` and `w`.
pub struct QuadraticProblem {
    pub sizes: Vec<usize>,
    pub a: Vec<f64>,
    pub c: Vec<f64>,
    pub w: Vec<f64>,
}

impl QuadraticProblem {
    /// A random symmetric positive-definite `A`; block-diagonal (no cross-group terms) when
    /// `coupled` is false.
    pub fn random(sizes: &[usize], coupled: bool, seed: u64) -> Self {
        let n: usize = sizes.iter().sum();
        let mut rng = StdRng::seed_from_u64(seed);
        let group_of: Vec<usize> = sizes
            .iter()
            .enumerate()
            .flat_map(|(g, &s)| std::iter::repeat_n(g, s))
            .collect();
        // A = M M^T / n + I, masked to blocks when uncoupled.
        let m: Vec<f64> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                if !coupled && group_of[i] != group_of[j] {
                    continue;
                }
                let mut s = 0.0;
                for k in 0..n {
                    s += m[i * n + k] * m[j * n + k];
                }
                a[i * n + j] = s / n as f64 + if i == j { 1.0 } else { 0.0 };
            }
        }
        let c = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        QuadraticProblem {
            sizes: sizes.to_vec(),
            a,
            c,
            w,
        }
    }

    pub fn n(&self) -> usize {
        self.sizes.iter().sum()
    }

    pub fn model(&self, device: &Device) -> Quadratic {
        let mut offset = 0;
        let parts = self
            .sizes
            .iter()
            .map(|&s| {
                let p = Param::from_tensor(tensor1(&self.w[offset..offset + s], device));
                offset += s;
                p
            })
            .collect();
        Quadratic { parts }
    }

    pub fn batch(&self, device: &Device, scale: f64) -> QuadraticBatch {
        QuadraticBatch {
            a: tensor2(&self.a, self.n(), self.n(), device),
            c: tensor1(&self.c, device),
            scale,
        }
    }

    /// The gradient `A w - c` at the problem's weights.
    pub fn gradient(&self) -> Vec<f64> {
        self.gradient_at(&self.w)
    }

    /// The gradient `A w - c` at any weights `w` (host f64).
    pub fn gradient_at(&self, w: &[f64]) -> Vec<f64> {
        let n = self.n();
        (0..n)
            .map(|i| (0..n).map(|j| self.a[i * n + j] * w[j]).sum::<f64>() - self.c[i])
            .collect()
    }

    /// The loss `1/2 w^T A w - c^T w` at any weights `w` (host f64).
    pub fn loss_at(&self, w: &[f64]) -> f64 {
        let n = self.n();
        let quad: f64 = (0..n)
            .map(|i| w[i] * (0..n).map(|j| self.a[i * n + j] * w[j]).sum::<f64>())
            .sum();
        0.5 * quad - self.c.iter().zip(w).map(|(c, w)| c * w).sum::<f64>()
    }

    /// The whole cross-group curvature `A_kl = g_k^T A_kl g_l` for the direction `g`
    /// (row-major `K x K`; its diagonal is [`QuadraticProblem::truth`]'s `a_k`).
    pub fn cross_truth(&self, dir: &[f64]) -> Vec<f64> {
        let n = self.n();
        let k = self.sizes.len();
        let mut starts = vec![0];
        for s in &self.sizes {
            starts.push(starts.last().unwrap() + s);
        }
        let mut out = vec![0.0; k * k];
        for g in 0..k {
            for l in 0..k {
                let mut v = 0.0;
                for i in starts[g]..starts[g + 1] {
                    for j in starts[l]..starts[l + 1] {
                        v += dir[i] * self.a[i * n + j] * dir[j];
                    }
                }
                out[g * k + l] = v;
            }
        }
        out
    }

    /// `(b_k, a_k)` per group for the direction `g` (closed form: `b = G.g`, `a = g^T A_kk g`).
    pub fn truth(&self, dir: &[f64]) -> Vec<(f64, f64)> {
        let n = self.n();
        let grad = self.gradient();
        let mut out = vec![];
        let mut start = 0;
        for &s in &self.sizes {
            let r = start..start + s;
            let b: f64 = r.clone().map(|i| grad[i] * dir[i]).sum();
            let mut a = 0.0;
            for i in r.clone() {
                for j in r.clone() {
                    a += dir[i] * self.a[i * n + j] * dir[j];
                }
            }
            out.push((b, a));
            start += s;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Multinomial logistic regression: one Linear layer and cross-entropy.

#[derive(Module, Debug)]
pub struct Logistic {
    pub linear: Linear,
}

#[derive(Debug, Clone)]
pub struct LabelledBatch {
    pub x: Tensor<2>,
    pub y: Tensor<1, Int>,
    pub scale: f64,
}

impl Objective<LabelledBatch> for Logistic {
    fn loss(&self, batch: &LabelledBatch) -> Tensor<1> {
        let logits = self.linear.forward(batch.x.clone());
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, batch.y.clone())
            .mul_scalar(batch.scale)
    }
}

/// Fixed data for the logistic regression: `n` samples of `d` features, `classes` labels.
pub struct LogisticProblem {
    pub seed: u64,
    pub n: usize,
    pub d: usize,
    pub classes: usize,
    pub x: Vec<f64>,
    pub y: Vec<usize>,
}

impl LogisticProblem {
    pub fn random(n: usize, d: usize, classes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = (0..n * d).map(|_| rng.random_range(-1.5..1.5)).collect();
        let y = (0..n).map(|_| rng.random_range(0..classes)).collect();
        LogisticProblem {
            seed,
            n,
            d,
            classes,
            x,
            y,
        }
    }

    /// The model, with weights drawn from the problem's seed (uniform in `+-1 / sqrt(d)`, as
    /// burn's default initialisation), so that every test run sees the same instance: burn's
    /// own initialisation is not seeded per test.
    pub fn model(&self, device: &Device) -> Logistic {
        let model = Logistic {
            linear: LinearConfig::new(self.d, self.classes).init(device),
        };
        let bound = 1.0 / (self.d as f64).sqrt();
        with_random_params(&model, self.seed ^ 0x5eed, bound, device)
    }

    pub fn batch(&self, device: &Device, scale: f64) -> LabelledBatch {
        let y: Vec<i64> = self.y.iter().map(|&v| v as i64).collect();
        LabelledBatch {
            x: tensor2(&self.x, self.n, self.d, device),
            y: Tensor::from_data(TensorData::new(y, [self.n]), device),
            scale,
        }
    }

    /// The softmax probabilities `p_i` and the gradients `G_W` (`[d, c]` row-major) and `G_b`,
    /// in f64 from the model's weights.
    fn probabilities_and_gradients(&self, model: &Logistic) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
        let w = host(model.linear.weight.val()); // [d, c]
        let bias = host(model.linear.bias.as_ref().expect("bias").val());
        self.probabilities_and_gradients_at(&w, &bias)
    }

    /// The gradients `G_W` (`[d, c]` row-major) and `G_b` at the model's weights, in f64.
    pub fn gradients(&self, model: &Logistic) -> (Vec<f64>, Vec<f64>) {
        let (_, gw, gb) = self.probabilities_and_gradients(model);
        (gw, gb)
    }

    /// The gradients `G_W` (`[d, c]` row-major) and `G_b` at weights `w` (`[d, c]` row-major)
    /// and `bias`, in f64: the closed form, for runs computed on the host.
    pub fn gradients_at(&self, w: &[f64], bias: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (_, gw, gb) = self.probabilities_and_gradients_at(w, bias);
        (gw, gb)
    }

    /// The model with its bias moved by gradient descent on the bias alone (in f64, the
    /// weight kept) until the bias gradient's norm is at most `norm`: a bias group of small
    /// value `v = ||G_b||^4 / 2a`, whose optimum the loss-change step overshoots.
    pub fn with_small_bias_gradient(
        &self,
        model: &Logistic,
        norm: f64,
        device: &Device,
    ) -> Logistic {
        let w = host(model.linear.weight.val());
        let mut bias = host(model.linear.bias.as_ref().expect("bias").val());
        for _ in 0..100_000 {
            let (_, _, gb) = self.probabilities_and_gradients_at(&w, &bias);
            if gb.iter().map(|g| g * g).sum::<f64>().sqrt() <= norm {
                break;
            }
            for (b, g) in bias.iter_mut().zip(&gb) {
                *b -= 0.5 * g;
            }
        }
        with_params(model, &[w, bias], device)
    }

    fn probabilities_and_gradients_at(
        &self,
        w: &[f64],
        bias: &[f64],
    ) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
        let (d, c, n) = (self.d, self.classes, self.n);
        let probs: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let logits: Vec<f64> = (0..c)
                    .map(|k| {
                        bias[k]
                            + (0..d)
                                .map(|j| self.x[i * d + j] * w[j * c + k])
                                .sum::<f64>()
                    })
                    .collect();
                let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(|v| v / s).collect()
            })
            .collect();
        // Gradients: G_W = (1/n) sum_i x_i (p_i - y_i)^T, G_b = (1/n) sum_i (p_i - y_i).
        let mut gw = vec![0.0; d * c];
        let mut gb = vec![0.0; c];
        for i in 0..n {
            for k in 0..c {
                let r = probs[i][k] - if self.y[i] == k { 1.0 } else { 0.0 };
                gb[k] += r / n as f64;
                for j in 0..d {
                    gw[j * c + k] += self.x[i * d + j] * r / n as f64;
                }
            }
        }
        (probs, gw, gb)
    }

    /// The logit change of sample `i` along the weight direction `G_W`: `z_i = G_W^T x_i`.
    fn weight_logit_change(&self, gw: &[f64], i: usize) -> Vec<f64> {
        let (d, c) = (self.d, self.classes);
        (0..c)
            .map(|k| (0..d).map(|j| self.x[i * d + j] * gw[j * c + k]).sum())
            .collect()
    }

    /// Closed-form `(b, a)` for the weight and the bias group along the gradient (`g = G`),
    /// from the model's weights, in f64.
    pub fn truth(&self, model: &Logistic) -> [(f64, f64); 2] {
        let n = self.n;
        let (probs, gw, gb) = self.probabilities_and_gradients(model);
        let mut aw = 0.0;
        let mut ab = 0.0;
        for (i, p) in probs.iter().enumerate() {
            let z = self.weight_logit_change(&gw, i);
            aw += softmax_form(p, &z, &z) / n as f64;
            ab += softmax_form(p, &gb, &gb) / n as f64;
        }
        let bw = gw.iter().map(|v| v * v).sum();
        let bb = gb.iter().map(|v| v * v).sum();
        [(bw, aw), (bb, ab)]
    }

    /// The closed-form cross term between the weight and the bias along the gradient:
    /// `A_Wb = G_W^T H_Wb G_b = (1/n) sum_i z_W,i^T (diag p_i - p_i p_i^T) z_b`, with `z` the
    /// logit changes along each group's direction (`z_W,i = G_W^T x_i`, `z_b = G_b`).
    pub fn cross_truth(&self, model: &Logistic) -> f64 {
        let (probs, gw, gb) = self.probabilities_and_gradients(model);
        probs
            .iter()
            .enumerate()
            .map(|(i, p)| softmax_form(p, &self.weight_logit_change(&gw, i), &gb))
            .sum::<f64>()
            / self.n as f64
    }
}

/// `u^T (diag p - p p^T) v`: the softmax cross-entropy's Hessian in the logits.
fn softmax_form(p: &[f64], u: &[f64], v: &[f64]) -> f64 {
    let pu: f64 = p.iter().zip(u).map(|(p, u)| p * u).sum();
    let pv: f64 = p.iter().zip(v).map(|(p, v)| p * v).sum();
    p.iter()
        .zip(u)
        .zip(v)
        .map(|((p, u), v)| p * u * v)
        .sum::<f64>()
        - pu * pv
}

// ---------------------------------------------------------------------------------------------
// A two-layer MLP with a squared-error loss.

#[derive(Module, Debug)]
pub struct Mlp {
    pub hidden: Linear,
    pub out: Linear,
}

#[derive(Debug, Clone)]
pub struct RegressionBatch {
    pub x: Tensor<2>,
    pub y: Tensor<2>,
}

impl Mlp {
    pub fn new(d_in: usize, d_hidden: usize, d_out: usize, device: &Device) -> Self {
        Mlp {
            hidden: LinearConfig::new(d_in, d_hidden).init(device),
            out: LinearConfig::new(d_hidden, d_out).init(device),
        }
    }
}

impl Objective<RegressionBatch> for Mlp {
    fn loss(&self, batch: &RegressionBatch) -> Tensor<1> {
        let h = self.hidden.forward(batch.x.clone()).tanh();
        let err = self.out.forward(h) - batch.y.clone();
        err.square().mean()
    }
}

pub fn regression_batch(
    n: usize,
    d_in: usize,
    d_out: usize,
    seed: u64,
    device: &Device,
) -> RegressionBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * d_in).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f64> = (0..n * d_out)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    RegressionBatch {
        x: tensor2(&x, n, d_in, device),
        y: tensor2(&y, n, d_out, device),
    }
}

/// The dense Hessian of `loss` over the whole parameter vector (visiting order), by central
/// differences of gradients with step `h` per coordinate, symmetrised.
pub fn dense_hessian<M: Module>(
    model: &M,
    device: &Device,
    h: f64,
    loss: impl Fn(&M) -> Tensor<1>,
) -> (Vec<f64>, Vec<usize>) {
    let base = flat_params(model);
    let sizes: Vec<usize> = base.iter().map(Vec::len).collect();
    let n: usize = sizes.iter().sum();
    let locate = |mut j: usize| {
        for (t, &s) in sizes.iter().enumerate() {
            if j < s {
                return (t, j);
            }
            j -= s;
        }
        unreachable!()
    };
    let mut hess = vec![0.0; n * n];
    for j in 0..n {
        let (t, e) = locate(j);
        let mut plus = base.clone();
        plus[t][e] += h;
        let mut minus = base.clone();
        minus[t][e] -= h;
        let gp: Vec<f64> = gradient_at(model, &plus, device, &loss).concat();
        let gm: Vec<f64> = gradient_at(model, &minus, device, &loss).concat();
        for i in 0..n {
            hess[i * n + j] = (gp[i] - gm[i]) / (2.0 * h);
        }
    }
    for i in 0..n {
        for j in 0..i {
            let s = 0.5 * (hess[i * n + j] + hess[j * n + i]);
            hess[i * n + j] = s;
            hess[j * n + i] = s;
        }
    }
    (hess, sizes)
}

/// Maps every parameter id of `model` to its path.
pub fn ids<M: Module>(model: &M) -> HashMap<ParamId, String> {
    adapeft_importance::discover(model)
        .into_iter()
        .map(|p| (p.id, p.path))
        .collect()
}
