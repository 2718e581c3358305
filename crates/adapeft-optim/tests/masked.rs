//! `Masked` against an independent truth: the same optimizer on a frozen copy, and a fresh
//! optimizer for parameters that join the mask.

use adapeft_optim::{GradientMask, Masked, OptimError};
use burn::module::{Module, Param, ParamGroup};
use burn::nn::{Linear, LinearConfig};
use burn::optim::grad_clipping::GradientClipping;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
struct Net {
    first: Linear,
    second: Linear,
    third: Linear,
}

impl Net {
    fn new(device: &Device) -> Self {
        Net {
            first: LinearConfig::new(4, 8).init(device),
            second: LinearConfig::new(8, 8).init(device),
            third: LinearConfig::new(8, 2).init(device),
        }
    }

    fn loss(&self, step: usize, device: &Device) -> Tensor<1> {
        let x = data(step, 16, 4, device);
        let y = data(step + 1000, 16, 2, device);
        let h = self.first.forward(x).tanh();
        let h = self.second.forward(h).tanh();
        (self.third.forward(h) - y).square().mean()
    }

    fn grads(&self, step: usize, device: &Device) -> GradientsParams {
        GradientsParams::from_grads(self.loss(step, device).backward(), self)
    }
}

/// Deterministic, well-spread data for `step`.
fn data(step: usize, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((step * 7919 + i * 104_729) as f32 * 0.618).sin() * 1.5)
        .collect();
    Tensor::<1>::from_floats(values.as_slice(), device).reshape([rows, cols])
}

/// Every float parameter as `(path, raw bytes)`.
fn snapshot<M: Module>(model: &M) -> Vec<(String, Vec<u8>)> {
    adapeft_testing::snapshot(model)
        .into_iter()
        .map(|(path, bytes, _)| (path, bytes))
        .collect()
}

fn value(snapshot: &[(String, Vec<u8>)], path: &str) -> Vec<u8> {
    snapshot
        .iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no parameter {path}"))
        .1
        .clone()
}

fn adamw() -> burn::optim::AdamW {
    AdamWConfig::new().with_weight_decay(0.1).build()
}

const SELECTED: [&str; 2] = ["second.weight", "third.bias"];

#[test]
fn adamw_with_decay_and_clipping_updates_only_the_mask() {
    let device = Device::flex().autodiff();
    let start = Net::new(&device);
    let before = snapshot(&start);
    let clipping = GradientClipping::Norm(0.05);

    // Masked AdamW on a model that is not frozen: every parameter has a gradient.
    let mut masked = Masked::new(adamw(), ParamGroup::from_paths(SELECTED.to_vec()))
        .with_grad_clipping(clipping.clone());
    let mut model = start.clone();
    for step in 0..20 {
        let grads = model.grads(step, &device);
        assert_eq!(grads.len(), 6, "every parameter has a gradient");
        model = masked.step(1e-2, model, grads);
    }

    // The truth: the same optimizer on a copy where only the selected parameters train.
    let mut reference = start
        .clone()
        .no_grad()
        .set_require_grad_group(ParamGroup::from_paths(SELECTED.to_vec()), true);
    let mut bare = ModuleOptimizer::from(adamw()).with_grad_clipping(clipping);
    for step in 0..20 {
        let grads = reference.grads(step, &device);
        assert_eq!(grads.len(), 2);
        reference = bare.step(1e-2, reference, grads);
    }

    let after = snapshot(&model);
    let truth = snapshot(&reference);
    for (path, bytes) in &before {
        if SELECTED.contains(&path.as_str()) {
            assert_ne!(&value(&after, path), bytes, "{path} should have trained");
            let got: Vec<f32> = bytemuck_f32(&value(&after, path));
            let want: Vec<f32> = bytemuck_f32(&value(&truth, path));
            for (g, w) in got.iter().zip(&want) {
                approx::assert_relative_eq!(g, w, epsilon = 1e-6, max_relative = 1e-5);
            }
        } else {
            assert_eq!(
                &value(&after, path),
                bytes,
                "{path} must stay bit-identical"
            );
        }
    }

    // Optimizer state: only for the two selected tensors.
    let mut full = ModuleOptimizer::from(adamw());
    let everything = full.step(1e-2, start.clone(), start.grads(0, &device));
    drop(everything);
    let per_tensor = full.to_record().len() / 6;
    assert!(per_tensor >= 1, "AdamW keeps state per tensor");
    assert_eq!(masked.state_tensors(), per_tensor * SELECTED.len());
    assert_eq!(bare.to_record().len(), per_tensor * SELECTED.len());
}

fn bytemuck_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn changing_the_mask_frees_dropped_state_and_starts_new_groups_fresh() {
    let device = Device::flex().autodiff();
    let mut model = Net::new(&device);
    let first_mask = ParamGroup::from_paths(vec!["first.weight", "second.weight"]);
    let mut masked = Masked::new(adamw(), first_mask);
    for step in 0..5 {
        let grads = model.grads(step, &device);
        model = masked.step(1e-2, model, grads);
    }
    let per_tensor = masked.state_tensors() / 2;
    assert!(per_tensor >= 1);
    let old = masked.clone();

    let change = masked.set_mask(
        ParamGroup::from_paths(vec!["second.weight", "third.weight"]),
        &model,
    );
    assert_eq!(change.dropped, vec!["first.weight".to_string()]);
    assert_eq!(change.added, vec!["third.weight".to_string()]);
    assert_eq!(
        masked.state_tensors(),
        per_tensor,
        "first.weight's state is freed, second.weight's kept"
    );

    let before = snapshot(&model);
    let stepped = masked.step(1e-2, model.clone(), model.grads(5, &device));
    assert_eq!(masked.state_tensors(), 2 * per_tensor);
    let after = snapshot(&stepped);

    // Kept: second.weight moves exactly as under the old optimizer, state and all.
    let mut old = old;
    let continued = snapshot(&old.step(1e-2, model.clone(), model.grads(5, &device)));
    assert_eq!(
        value(&after, "second.weight"),
        value(&continued, "second.weight")
    );
    // New: third.weight moves exactly as under a fresh optimizer.
    let mut fresh = Masked::new(adamw(), ParamGroup::from_paths(vec!["third.weight"]));
    let fresh_step = snapshot(&fresh.step(1e-2, model.clone(), model.grads(5, &device)));
    assert_eq!(
        value(&after, "third.weight"),
        value(&fresh_step, "third.weight")
    );
    // Dropped: first.weight no longer moves.
    assert_eq!(
        value(&after, "first.weight"),
        value(&before, "first.weight")
    );

    // Re-adding a dropped parameter starts it from fresh state too.
    let mut readd = masked.clone();
    readd.set_mask(ParamGroup::from_paths(vec!["first.weight"]), &stepped);
    assert_eq!(readd.state_tensors(), 0);
    let readded = snapshot(&readd.step(1e-2, stepped.clone(), stepped.grads(6, &device)));
    let mut fresh = Masked::new(adamw(), ParamGroup::from_paths(vec!["first.weight"]));
    let want = snapshot(&fresh.step(1e-2, stepped.clone(), stepped.grads(6, &device)));
    assert_eq!(
        value(&readded, "first.weight"),
        value(&want, "first.weight")
    );
}

#[test]
fn gradient_mask_filters_by_path_and_id() {
    let device = Device::flex().autodiff();
    let model = Net::new(&device);
    let by_path = GradientMask::from(ParamGroup::from_paths(vec!["first.bias", "third.weight"]));
    let grads = by_path.filter(model.grads(0, &device), &model);
    assert_eq!(grads.len(), 2);
    assert!(
        grads
            .get::<1>(model.first.bias.as_ref().unwrap().id)
            .is_some()
    );
    assert!(grads.get::<2>(model.third.weight.id).is_some());
    assert_eq!(by_path.trainable_params(&model), 8 + 8 * 2);

    let by_id = GradientMask::from(ParamGroup::ids_from_module(model.second.clone()));
    let trainable = by_id.trainable(&model);
    let paths: Vec<&str> = trainable.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["second.weight", "second.bias"]);
    assert_eq!(by_id.filter(model.grads(0, &device), &model).len(), 2);

    assert_eq!(
        GradientMask::all()
            .filter(model.grads(0, &device), &model)
            .len(),
        6
    );
}

/// The trainable ids are cached between steps; a module with other parameter ids (another
/// model of the same shape) must be resolved again, by path.
#[test]
fn a_new_module_is_resolved_again() {
    let device = Device::flex().autodiff();
    let mut masked = Masked::new(adamw(), ParamGroup::from_paths(vec!["third.bias"]));
    let a = Net::new(&device);
    let _ = masked.step(1e-2, a.clone(), a.grads(0, &device));
    let b = Net::new(&device);
    let before = snapshot(&b);
    let after = snapshot(&masked.step(1e-2, b.clone(), b.grads(0, &device)));
    for ((path, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(path == "third.bias", old != new, "{path}");
    }
}

/// A model with a rank-9 parameter, which burn's optimizers cannot step (they dispatch the
/// state on ranks 1 to 8) but which a mask may leave out.
#[derive(Module, Debug)]
struct Deep {
    wide: Param<Tensor<9>>,
    head: Linear,
}

impl Deep {
    fn new(device: &Device) -> Self {
        Deep {
            wide: Param::from_tensor(Tensor::ones([1, 2, 1, 1, 2, 1, 1, 1, 2], device)),
            head: LinearConfig::new(8, 1).init(device),
        }
    }

    fn grads(&self) -> GradientsParams {
        let x = self.wide.val().reshape([1, 8]);
        let loss = self.head.forward(x).sum() + self.wide.val().sum();
        GradientsParams::from_grads(loss.backward(), self)
    }
}

/// Masking used to dispatch on the rank and panic above 8, even for a parameter outside the
/// mask. Now every rank is filtered, and a rank burn cannot train inside a mask is a typed
/// error naming the parameter and its rank.
#[test]
fn parameters_of_rank_above_8_are_filtered_and_refused_by_name_inside_a_mask() {
    let device = Device::flex().autodiff();
    let model = Deep::new(&device);
    let head_only = GradientMask::from(ParamGroup::from_paths(vec!["head.weight", "head.bias"]));
    assert_eq!(model.grads().len(), 3);
    let grads = head_only.filter(model.grads(), &model);
    assert_eq!(grads.len(), 2);
    assert!(grads.get::<9>(model.wide.id).is_none());
    assert!(head_only.check(&model).is_ok());

    let before = snapshot(&model);
    let mut masked = Masked::new(adamw(), head_only);
    let after = snapshot(&masked.step(1e-2, model.clone(), model.grads()));
    for ((path, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(path.starts_with("head."), old != new, "{path}");
    }
    assert_eq!(masked.state_tensors(), 4);

    match GradientMask::all().check(&model) {
        Err(e @ OptimError::UnsupportedRank { .. }) => {
            assert_eq!(
                e,
                OptimError::UnsupportedRank {
                    path: "wide".into(),
                    rank: 9
                }
            );
            assert!(e.to_string().contains("`wide` has rank 9"), "{e}");
        }
        other => panic!("expected UnsupportedRank, got {other:?}"),
    }
}
