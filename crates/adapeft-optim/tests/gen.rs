//! The GeN learning rate against hand-tuned fixed rates, on a small regression and a small
//! classification task, from a rate ten times too small and ten times too large.

use adapeft_optim::{Gen, GenConfig, Masked, Rejection};
use burn::module::{Module, ParamGroup};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor};

/// Deterministic pseudo-random values in [-1, 1].
fn noise(seed: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((seed * 7919 + i * 104_729) as f64 * 0.618_033_988).sin() * 43_758.545).fract() as f32
        })
        .collect()
}

/// A task: a model constructor and its full-batch loss.
trait Task {
    type Model: Module;
    fn model(&self) -> Self::Model;
    fn loss(&self, model: &Self::Model) -> Tensor<1>;
    fn optimizer(&self) -> ModuleOptimizer;
}

struct Regression {
    device: Device,
    x: Tensor<2>,
    y: Tensor<2>,
}

impl Regression {
    fn new() -> Self {
        let device = Device::flex().autodiff();
        let (n, d) = (128, 8);
        let scales: Vec<f32> = (0..d).map(|j| 0.75 + 0.1 * j as f32).collect();
        let x: Vec<f32> = noise(1, n * d)
            .iter()
            .enumerate()
            .map(|(i, v)| v * scales[i % d])
            .collect();
        let w: Vec<f32> = noise(2, d);
        let e = noise(3, n);
        let y: Vec<f32> = (0..n)
            .map(|i| (0..d).map(|j| x[i * d + j] * w[j]).sum::<f32>() + 0.3 + 0.05 * e[i])
            .collect();
        Regression {
            x: Tensor::<1>::from_floats(x.as_slice(), &device).reshape([n, d]),
            y: Tensor::<1>::from_floats(y.as_slice(), &device).reshape([n, 1]),
            device,
        }
    }
}

impl Task for Regression {
    type Model = Linear;
    fn model(&self) -> Linear {
        // A fixed start, so every run begins from the same weights.
        let m: Linear = LinearConfig::new(8, 1).init(&self.device);
        m.map(&mut Zero)
    }
    fn loss(&self, model: &Linear) -> Tensor<1> {
        (model.forward(self.x.clone()) - self.y.clone())
            .square()
            .mean()
    }
    fn optimizer(&self) -> ModuleOptimizer {
        SgdConfig::new().init()
    }
}

#[derive(Module, Debug)]
struct Mlp {
    hidden: Linear,
    out: Linear,
}

struct Classification {
    device: Device,
    x: Tensor<2>,
    labels: Tensor<1, Int>,
}

impl Classification {
    fn new() -> Self {
        let device = Device::flex().autodiff();
        let (n, d, classes) = (150, 4, 3);
        let centres = noise(11, classes * d);
        let jitter = noise(12, n * d);
        let mut x = Vec::with_capacity(n * d);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % classes;
            labels.push(c as i64);
            for j in 0..d {
                x.push(2.0 * centres[c * d + j] + 0.8 * jitter[i * d + j]);
            }
        }
        Classification {
            x: Tensor::<1>::from_floats(x.as_slice(), &device).reshape([n, d]),
            labels: Tensor::<1, Int>::from_ints(labels.as_slice(), &device),
            device,
        }
    }
}

impl Task for Classification {
    type Model = Mlp;
    fn model(&self) -> Mlp {
        let m = Mlp {
            hidden: LinearConfig::new(4, 16).init(&self.device),
            out: LinearConfig::new(16, 3).init(&self.device),
        };
        m.map(&mut Fixed)
    }
    fn loss(&self, model: &Mlp) -> Tensor<1> {
        let logits = model
            .out
            .forward(model.hidden.forward(self.x.clone()).tanh());
        CrossEntropyLossConfig::new()
            .init(&self.device)
            .forward(logits, self.labels.clone())
    }
    fn optimizer(&self) -> ModuleOptimizer {
        AdamConfig::new().init()
    }
}

/// Sets every parameter to zero.
struct Zero;
impl burn::module::ModuleMapper for Zero {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        param.map(|t| t.zeros_like().require_grad())
    }
}

/// Sets every parameter to fixed pseudo-random values of scale 0.5.
struct Fixed;
impl burn::module::ModuleMapper for Fixed {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        param.map(|t| {
            let shape = t.shape();
            let n = shape.num_elements();
            let v: Vec<f32> = noise(n + D, n).iter().map(|v| 0.5 * v).collect();
            Tensor::<1>::from_floats(v.as_slice(), &t.device())
                .reshape(shape)
                .require_grad()
        })
    }
}

fn scalar(t: Tensor<1>) -> f64 {
    let v = t.into_scalar::<f64>();
    if v.is_finite() { v } else { f64::INFINITY }
}

/// Final loss after `steps` steps at a fixed rate.
fn fixed_run<T: Task>(task: &T, lr: f64, steps: usize) -> f64 {
    let mut model = task.model();
    let mut optim = task.optimizer();
    for _ in 0..steps {
        let grads = GradientsParams::from_grads(task.loss(&model).backward(), &model);
        model = optim.step(lr, model, grads);
    }
    scalar(task.loss(&model))
}

/// Final loss and rate after `steps` GeN steps from `lr`.
fn gen_run<T: Task>(
    task: &T,
    lr: f64,
    steps: usize,
    config: GenConfig,
) -> (f64, f64, Gen<ModuleOptimizer>) {
    let mut model = task.model();
    let mut gen_lr = Gen::new(task.optimizer(), lr, config).unwrap();
    for _ in 0..steps {
        let grads = GradientsParams::from_grads(task.loss(&model).backward(), &model);
        model = gen_lr
            .step(model, grads, |m: &T::Model| task.loss(m))
            .unwrap();
    }
    (scalar(task.loss(&model)), gen_lr.lr(), gen_lr)
}

/// The hand-tuned rate (best final loss on a grid of quarter decades), its loss, and the range
/// of rates that work: from the smallest to the largest whose final loss is within 10% of the
/// best.
fn hand_tuned<T: Task>(task: &T, steps: usize) -> (f64, f64, f64, f64) {
    let grid: Vec<f64> = (-20..=4).map(|k| 10f64.powf(k as f64 / 4.0)).collect();
    let finals: Vec<f64> = grid.iter().map(|&lr| fixed_run(task, lr, steps)).collect();
    let (best_i, best) = finals
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, l)| (i, *l))
        .unwrap();
    let works: Vec<f64> = grid
        .iter()
        .zip(&finals)
        .filter(|(_, l)| **l <= 1.1 * best)
        .map(|(lr, _)| *lr)
        .collect();
    for (lr, l) in grid.iter().zip(&finals) {
        eprintln!("fixed lr {lr:.2e}: final loss {l:.5e}");
    }
    (grid[best_i], best, works[0], *works.last().unwrap())
}

fn check<T: Task>(task: &T, steps: usize, name: &str) {
    let (lr_star, best, lo, hi) = hand_tuned(task, steps);
    eprintln!(
        "{name}: hand-tuned lr {lr_star:.2e}, loss {best:.5e}, works in [{lo:.2e}, {hi:.2e}]"
    );
    for start in [lr_star / 10.0, lr_star * 10.0] {
        let (loss, lr, gen_lr) = gen_run(task, start, steps, GenConfig::new());
        let rejected = gen_lr
            .history()
            .iter()
            .filter(|p| p.rejected.is_some())
            .count();
        eprintln!(
            "{name}: GeN from {start:.2e}: final lr {lr:.2e}, loss {loss:.5e} ({} probes, {rejected} not trusted)",
            gen_lr.history().len()
        );
        // The rate reaches the working range within the first half of training. (Later it may
        // leave it: once the loss is at its floor the Newton rate along a tiny, noisy update
        // says little, and on an ill-conditioned problem the line-search rate of steepest
        // descent oscillates.)
        let reached = gen_lr
            .history()
            .iter()
            .find(|p| p.lr_after >= lo && p.lr_after <= hi)
            .map(|p| p.step);
        assert!(
            reached.is_some_and(|s| s < steps / 2),
            "{name}: GeN from {start:.2e} reached the working range [{lo:.2e}, {hi:.2e}] at step {reached:?} of {steps}"
        );
        assert!(
            loss <= 1.1 * best,
            "{name}: GeN from {start:.2e} reached loss {loss:.5e}, more than 10% above the hand-tuned {best:.5e}"
        );
    }
}

#[test]
fn gen_matches_a_hand_tuned_rate_on_regression() {
    check(&Regression::new(), 150, "regression");
}

#[test]
fn gen_matches_a_hand_tuned_rate_on_classification() {
    check(&Classification::new(), 120, "classification");
}

/// Along a concave loss the quadratic has no minimum: the fit is rejected, the rate kept.
#[test]
fn a_failed_fit_keeps_the_rate() {
    let task = Regression::new();
    let model = task.model();
    let concave = |m: &Linear| -(m.forward(task.x.clone()) - task.y.clone()).square().mean();
    let mut gen_lr = Gen::new(SgdConfig::new().init(), 1e-2, GenConfig::new()).unwrap();
    // Gradients of the concave loss: SGD ascends the squared error, and the loss along the
    // update is concave.
    let grads = GradientsParams::from_grads(concave(&model).backward(), &model);
    let model = gen_lr.step(model, grads, concave).unwrap();
    let probe = &gen_lr.history()[0];
    assert_eq!(probe.rejected, Some(Rejection::NonPositiveCurvature));
    assert!(probe.a < 0.0);
    assert_eq!(probe.proposal, None);
    assert_eq!(gen_lr.lr(), 1e-2);
    // The step itself still happened, at the kept rate.
    assert_ne!(
        model.weight.val().into_data(),
        task.model().weight.val().into_data()
    );

    // A loss that turns NaN away from the current point: rejected as non-finite.
    let model = task.model();
    let mut gen_lr = Gen::new(SgdConfig::new().init(), 1e-2, GenConfig::new()).unwrap();
    let grads = GradientsParams::from_grads(task.loss(&model).backward(), &model);
    let reference = model.weight.val().inner();
    // sqrt(-|moved|): 0 at the current weights, NaN anywhere else.
    let nan_off_centre = |m: &Linear| {
        let moved = (m.weight.val().inner() - reference.clone()).abs().sum();
        task.loss(m).inner() + moved.neg().sqrt()
    };
    gen_lr.step(model, grads, nan_off_centre).unwrap();
    assert_eq!(gen_lr.history()[0].rejected, Some(Rejection::NonFinite));
    assert_eq!(gen_lr.lr(), 1e-2);
}

/// Probing advances nothing: with a probe at every step, GeN's trajectory is exactly the
/// plain optimizer's at the rates GeN chose (Adam's moments and step count included).
#[test]
fn probing_leaves_the_model_and_state_alone() {
    let task = Classification::new();
    let start = task.model();
    let config = GenConfig::new().with_lazy_every(1);
    let mut gen_lr = Gen::new(AdamConfig::new().init(), 1e-2, config).unwrap();
    let mut plain = AdamConfig::new().init();
    let (mut a, mut b) = (start.clone(), start.clone());
    for step in 0..4 {
        let grads = GradientsParams::from_grads(task.loss(&a).backward(), &a);
        a = gen_lr.step(a, grads, |m: &Mlp| task.loss(m)).unwrap();
        let lr = gen_lr.lr();
        let _ = step;
        let grads = GradientsParams::from_grads(task.loss(&b).backward(), &b);
        b = plain.step(lr, b, grads);
        assert_eq!(
            a.hidden.weight.val().into_data(),
            b.hidden.weight.val().into_data()
        );
        assert_eq!(
            a.out.bias.as_ref().unwrap().val().into_data(),
            b.out.bias.as_ref().unwrap().val().into_data()
        );
    }
    assert_eq!(
        gen_lr.optimizer().to_record().len(),
        plain.to_record().len()
    );
}

/// GeN around `Masked`: only the masked parameters move, and probes see only their update.
#[test]
fn gen_around_masked_moves_only_the_mask() {
    let task = Classification::new();
    let model = task.model();
    let masked = Masked::new(
        AdamConfig::new().build(),
        ParamGroup::from_paths(vec!["out.weight", "out.bias"]),
    );
    let mut gen_lr = Gen::new(masked, 1e-3, GenConfig::new().with_lazy_every(2)).unwrap();
    let mut m = model.clone();
    for _ in 0..10 {
        let grads = GradientsParams::from_grads(task.loss(&m).backward(), &m);
        m = gen_lr.step(m, grads, |x: &Mlp| task.loss(x)).unwrap();
    }
    assert_eq!(
        m.hidden.weight.val().into_data(),
        model.hidden.weight.val().into_data()
    );
    assert_ne!(
        m.out.weight.val().into_data(),
        model.out.weight.val().into_data()
    );
    assert!(gen_lr.history().iter().any(|p| p.rejected.is_none()));
    assert!(scalar(task.loss(&m)) < scalar(task.loss(&model)));
}

#[test]
fn bad_settings_are_rejected() {
    let optim = || SgdConfig::new().init();
    for (config, name) in [
        (GenConfig::new().with_lazy_every(0), "lazy_every"),
        (GenConfig::new().with_min_r2(1.5), "min_r2"),
        (GenConfig::new().with_smoothing(0.0), "smoothing"),
        (GenConfig::new().with_max_change(0.5), "max_change"),
    ] {
        let err = Gen::new(optim(), 1e-2, config).err().unwrap();
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = Gen::new(optim(), f64::NAN, GenConfig::new()).err().unwrap();
    assert!(err.to_string().contains("lr"), "{err}");
}
