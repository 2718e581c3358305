//! Host-side helpers: tensors to and from f64 vectors, bit-exact snapshots of a model's
//! parameters, and gradients at given parameter values.

use adapeft_importance::{
    GradientProbe, Grouping, Groups, ParamMapper, ParamVisitor, ProbeMode, SignPattern, discover,
    map_params, visit_params,
};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The values of a tensor as f64.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// A rank-1 float32 tensor from f64 values.
pub fn tensor1(values: &[f64], device: &Device) -> Tensor<1> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

/// A `rows x cols` float32 tensor from row-major f64 values.
pub fn tensor2(values: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// `|got - want| / |want|` (with `|want|` floored at `1e-30`).
pub fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1e-30)
}

/// One float parameter as a snapshot holds it: dotted path, raw bytes of its value, whether
/// it requires gradients.
pub type Snap = (String, Vec<u8>, bool);

/// Every float parameter's path, raw bytes and require-grad state, in visiting order: for
/// bit-exact comparisons. A LoRA-adapted weight is read as its effective value (`Param::val`).
pub fn snapshot<M: Module>(model: &M) -> Vec<Snap> {
    snapshot_of(model, false)
}

/// [`snapshot`], reading a LoRA-adapted weight's stored base tensor (`Param::base`) instead
/// of its effective value: what a file of base weights holds.
pub fn snapshot_base<M: Module>(model: &M) -> Vec<Snap> {
    snapshot_of(model, true)
}

fn snapshot_of<M: Module>(model: &M, base: bool) -> Vec<Snap> {
    struct Snapshot {
        base: bool,
        out: Vec<Snap>,
    }
    impl ParamVisitor for Snapshot {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            let value = if self.base { param.base() } else { param.val() };
            let require_grad = value.is_require_grad();
            let bytes = value.into_data().as_bytes().to_vec();
            self.out.push((path.to_string(), bytes, require_grad));
        }
    }
    let mut s = Snapshot {
        base,
        out: Vec::new(),
    };
    visit_params(model, &mut s);
    s.out
}

/// The flattened values of every float parameter, in visiting order.
pub fn flat_params<M: Module>(model: &M) -> Vec<Vec<f64>> {
    struct Flat(Vec<Vec<f64>>);
    impl ParamVisitor for Flat {
        fn visit<const D: usize>(&mut self, _path: &str, param: &Param<Tensor<D>>) {
            self.0.push(host(param.val()));
        }
    }
    let mut f = Flat(vec![]);
    visit_params(model, &mut f);
    f.0
}

/// A copy of `model` whose float parameters are drawn uniformly from `(-bound, bound)` with a
/// seeded generator ([`with_params`] otherwise): a reproducible instance, since burn's own
/// initialisation is not seeded per test.
pub fn with_random_params<M: Module>(model: &M, seed: u64, bound: f64, device: &Device) -> M {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<Vec<f64>> = flat_params(model)
        .iter()
        .map(|t| t.iter().map(|_| rng.random_range(-bound..bound)).collect())
        .collect();
    with_params(model, &values, device)
}

/// A copy of `model` whose float parameters (in visiting order) take the given values, all
/// requiring gradients on the autodiff version of `device`.
pub fn with_params<M: Module>(model: &M, values: &[Vec<f64>], device: &Device) -> M {
    struct Set<'a> {
        values: &'a [Vec<f64>],
        next: usize,
        device: Device,
    }
    impl ParamMapper for Set<'_> {
        fn map<const D: usize>(
            &mut self,
            _path: &str,
            param: Param<Tensor<D>>,
        ) -> Param<Tensor<D>> {
            let v: Vec<f32> = self.values[self.next].iter().map(|&x| x as f32).collect();
            self.next += 1;
            let device = self.device.clone();
            param.map(|t| {
                let shape = t.shape();
                Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device)
                    .reshape(shape)
                    .require_grad()
            })
        }
    }
    map_params(
        model.clone(),
        &mut Set {
            values,
            next: 0,
            device: device.clone().autodiff(),
        },
    )
}

/// The gradients (visiting order, flattened) of `loss(model)` at the given parameter values.
pub fn gradient_at<M: Module>(
    model: &M,
    values: &[Vec<f64>],
    device: &Device,
    loss: impl Fn(&M) -> Tensor<1>,
) -> Vec<Vec<f64>> {
    let m = with_params(model, values, device);
    let grads = loss(&m).backward();
    struct Grads<'g>(&'g burn::tensor::Gradients, Vec<Vec<f64>>);
    impl ParamVisitor for Grads<'_> {
        fn visit<const D: usize>(&mut self, _path: &str, param: &Param<Tensor<D>>) {
            let v = param.val();
            let n = v.shape().num_elements();
            self.1.push(match v.grad(self.0) {
                Some(g) => host(g),
                None => vec![0.0; n],
            });
        }
    }
    let mut g = Grads(&grads, vec![]);
    visit_params(&m, &mut g);
    g.1
}

/// One group per tensor of `model` (the default grouping).
pub fn per_tensor<M: Module>(model: &M) -> Groups {
    Grouping::PerTensor
        .group(discover(model))
        .expect("per-tensor grouping of a model with parameters")
}

/// The gradient probe in random-sign mode with `probes` independent-sign probes
/// ([`SignPattern::Independent`]) and sign seed `seed`.
pub fn random_signs(probes: usize, seed: u64) -> GradientProbe {
    GradientProbe {
        probes,
        mode: ProbeMode::RandomSigns,
        pattern: SignPattern::Independent,
        seed,
        ..Default::default()
    }
}

/// The gradient probe in random-sign mode with `probes` probes in orthogonal sign patterns
/// ([`SignPattern::Orthogonal`], at least `replicates` replicates) and sign seed `seed`.
pub fn orthogonal_signs(probes: usize, replicates: usize, seed: u64) -> GradientProbe {
    GradientProbe {
        probes,
        mode: ProbeMode::RandomSigns,
        pattern: SignPattern::Orthogonal,
        replicates,
        seed,
        ..Default::default()
    }
}
