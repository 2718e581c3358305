//! burn-train's `Learner` with adapeft's masking.
//!
//! The `Learner` takes a plain `ModuleOptimizer`, so adapeft's `Masked` optimizer cannot be
//! plugged in. The documented way to get the masking there anyway is a
//! [`GradientMask`] kept in the model as a `#[module(skip)]` field and applied to the gradients
//! in the model's `TrainStep`. These tests train through the real `Learner` (AdamW with weight
//! decay, the default single-device strategy and CLI renderer) and check, bit for bit, that
//! nothing outside the mask moved:
//!
//! - with a model that is *not* frozen (every parameter requires gradients), the filter alone
//!   keeps the other parameters exactly as they were, weight decay included; a control run
//!   with `GradientMask::all()` shows that they would have moved otherwise;
//! - with a model frozen by `Selection::apply` and the mask built from the same selection,
//!   exactly the selection's chosen parameters change;
//! - the `Learner`'s own checkpointing keeps working with the mask: a run killed after one
//!   epoch and resumed from burn-train's checkpoint onto a freshly built model ends with the
//!   same parameters and optimizer state, bit for bit, as a run that was not interrupted,
//!   and the optimizer state holds the masked parameters only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use adapeft::optim::GradientMask;
use adapeft::{AdaPeft, Budget, Objective};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::{Module, ParamGroup};
use burn::optim::AdamWConfig;
use burn::store::burn_pack::Reader;
use burn::tensor::Device;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::LossMetric;
use burn::train::{Learner, SupervisedTraining};

use adapeft_testing::learner::{self, Batch, Net, Sample, SampleBatcher};
use adapeft_testing::{backends, snapshot, temp_dir};

const SAMPLES: usize = 96;
const BATCH: usize = 16;
const EPOCHS: usize = 2;

// ---------------------------------------------------------------------------------------------
// The model (two linear layers and the mask of the parameters that train, filtered in its
// `TrainStep`) and the data (a fixed nonlinear teacher, in memory) are the test-support
// crate's, shared with `tests/multi_device.rs`.

fn samples(seed: u64) -> Vec<Sample> {
    learner::samples(SAMPLES, seed)
}

/// The whole data set as one batch on `device`.
fn full_batch(data: &[Sample], device: &Device) -> Batch {
    SampleBatcher.batch(data.to_vec(), device)
}

/// The model's loss on `batch`, read back.
fn loss_on(model: &Net, batch: &Batch) -> f64 {
    model.loss(batch).into_scalar::<f64>()
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The paths whose bytes differ between two snapshots of the same model.
fn changed(
    before: &[(String, Vec<u8>, bool)],
    after: &[(String, Vec<u8>, bool)],
) -> BTreeSet<String> {
    assert_eq!(before.len(), after.len());
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| {
            assert_eq!(b.0, a.0, "parameter order changed");
            b.1 != a.1
        })
        .map(|(b, _)| b.0.clone())
        .collect()
}

/// Trains `model` for `EPOCHS` epochs with burn-train's `Learner`: AdamW with weight decay 0.1
/// at a constant learning rate of 1e-2, the loss as train and valid metric, metrics kept in
/// memory, and the default renderer (the CLI one: burn-train's `tui` feature is off).
fn train_with_learner(model: Net, data: &[Sample], name: &str) -> Net {
    let dir = temp_dir(&format!("learner-{name}"));
    let train = DataLoaderBuilder::new(SampleBatcher)
        .batch_size(BATCH)
        .shuffle(7)
        .build(InMemDataset::new(data.to_vec()));
    let valid = DataLoaderBuilder::new(SampleBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(data.to_vec()));
    let optim = AdamWConfig::new().with_weight_decay(0.1).init();
    let result = SupervisedTraining::new(dir.path(), train, valid)
        .num_epochs(EPOCHS)
        .metrics((LossMetric::new(),))
        .with_metric_logger(InMemoryMetricLogger::new())
        // No global log capture into `experiment.log`: tests share the process.
        .with_application_logger(None)
        .launch(Learner::new(model, optim, 1e-2));
    result.model
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn gradient_mask_in_train_step_keeps_an_unfrozen_model_outside_the_mask_bit_identical() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(11);
        let data = samples(1);
        let trained_paths = ["head.weight", "head.bias"];
        let mask = GradientMask::from(ParamGroup::from_paths(trained_paths.to_vec()));
        let model = Net::new(mask, &device);

        let before = snapshot(&model);
        assert_eq!(before.len(), 4);
        assert!(
            before.iter().all(|(_, _, grad)| *grad),
            "{}: the model must not be frozen for this test",
            be.name
        );
        let batch = full_batch(&data, &device);
        let loss_before = loss_on(&model, &batch);

        // Control: the same model with a mask that lets everything train. Every parameter,
        // the hidden layer included, moves: without the filter, they would not stay put.
        let control = model.clone();
        let control = Net {
            mask: GradientMask::all(),
            ..control
        };
        let control = train_with_learner(control, &data, "control");
        assert_eq!(
            changed(&before, &snapshot(&control)).len(),
            before.len(),
            "{}: with GradientMask::all every parameter should train",
            be.name
        );

        let trained = train_with_learner(model, &data, "unfrozen");
        let after = snapshot(&trained);
        let moved = changed(&before, &after);
        let want: BTreeSet<String> = trained_paths.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            moved, want,
            "{}: exactly the masked parameters should change (the rest bit-identical, weight \
             decay included)",
            be.name
        );

        // The Learner returns the model in validation mode; `train()` restores the configured
        // gradient tracking, which the mask never touched.
        let restored = trained.clone().train();
        assert!(
            snapshot(&restored).iter().all(|(_, _, grad)| *grad),
            "{}: the mask must not freeze anything",
            be.name
        );

        let batch = full_batch(&data, &trained.devices()[0]);
        let loss_after = loss_on(&trained, &batch);
        assert!(
            loss_after < loss_before,
            "{}: training the head did not reduce the loss: {loss_before} -> {loss_after}",
            be.name
        );
    }
}

#[test]
fn selection_frozen_model_with_its_mask_changes_exactly_the_chosen_parameters() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(23);
        let data = samples(2);
        let batch = full_batch(&data, &device);
        let model = Net::new(GradientMask::all(), &device);

        let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.3)).unwrap();
        let chosen: BTreeSet<String> = selection.chosen_paths().into_iter().collect();
        assert!(!chosen.is_empty(), "{}: nothing chosen", be.name);
        assert!(
            chosen.len() < 4,
            "{}: a 30% budget cannot hold every tensor",
            be.name
        );

        let mask = GradientMask::from(&selection);
        let model = Net {
            mask: mask.clone(),
            ..selection.apply(model)
        };
        assert_eq!(
            mask.trainable_params(&model) as u64,
            selection.trainable_params(),
            "{}: the mask and the selection disagree",
            be.name
        );
        let before = snapshot(&model);
        let requiring: BTreeSet<String> = before
            .iter()
            .filter(|(_, _, grad)| *grad)
            .map(|(path, _, _)| path.clone())
            .collect();
        assert_eq!(requiring, chosen, "{}: apply froze the wrong set", be.name);
        let loss_before = loss_on(&model, &batch);

        let trained = train_with_learner(model, &data, "selection");
        let moved = changed(&before, &snapshot(&trained));
        assert_eq!(
            moved, chosen,
            "{}: exactly the selection's chosen parameters should change",
            be.name
        );

        let batch = full_batch(&data, &trained.devices()[0]);
        let loss_after = loss_on(&trained, &batch);
        assert!(
            loss_after < loss_before,
            "{}: training the selection did not reduce the loss: {loss_before} -> {loss_after}",
            be.name
        );
    }
}

/// Trains `model` with the `Learner` and burn-train's default checkpointers in `dir` for
/// `epochs` epochs (resuming from epoch `resume` when given): AdamW with weight decay, no
/// shuffling, so that an epoch sees the same batches in a resumed run.
fn train_with_checkpoints(
    model: Net,
    data: &[Sample],
    dir: &Path,
    epochs: usize,
    resume: Option<usize>,
) -> Net {
    let train = DataLoaderBuilder::new(SampleBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(data.to_vec()));
    let valid = DataLoaderBuilder::new(SampleBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(data.to_vec()));
    let optim = AdamWConfig::new().with_weight_decay(0.1).init();
    let mut training = SupervisedTraining::new(dir, train, valid)
        .num_epochs(epochs)
        .metrics((LossMetric::new(),))
        .with_metric_logger(InMemoryMetricLogger::new())
        .with_application_logger(None)
        .with_default_checkpointers();
    if let Some(epoch) = resume {
        training = training.checkpoint(epoch);
    }
    training.launch(Learner::new(model, optim, 1e-2)).model
}

/// burn-train's optimizer checkpoint of `epoch` in `dir`, decoded, each parameter id replaced
/// by the parameter's path: name -> (dtype, shape, bytes) or scalar, in words.
fn optimizer_checkpoint(dir: &Path, epoch: usize) -> BTreeMap<String, String> {
    let file = dir.join("checkpoint").join(format!("optim-{epoch}.bpk"));
    let reader = Reader::from_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let paths = reader.metadata().clone();
    let by_path = |key: &str| {
        let (id, rest) = key.split_once('.').expect("`{id}.{field}`");
        format!("{}.{rest}", paths.get(id).expect("every state has a path"))
    };
    let mut out: BTreeMap<String, String> = reader
        .scalars()
        .iter()
        .map(|(key, value)| (by_path(key), format!("{value:?}")))
        .collect();
    for tensor in reader.into_tensors().expect("tensors") {
        let (name, dtype, shape, _, bytes) = tensor.into_parts().expect("bytes");
        out.insert(
            by_path(&name),
            format!("{dtype:?} {shape:?} {:?}", &bytes[..]),
        );
    }
    out
}

#[test]
fn learner_checkpoints_resume_bit_identically_with_a_gradient_mask() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(31);
        let data = samples(3);
        let trained_paths = ["head.weight", "head.bias"];
        let mask = GradientMask::from(ParamGroup::from_paths(trained_paths.to_vec()));
        let base = Net::new(mask.clone(), &device);
        let before = snapshot(&base);

        let straight_dir = temp_dir("learner-straight");
        let straight = train_with_checkpoints(base.clone(), &data, straight_dir.path(), 2, None);

        // Killed after the first epoch; resumed from its checkpoint onto a model built afresh
        // (other weights, other ids: the checkpoint holds the whole model) with the same mask.
        let dir = temp_dir("learner-resumed");
        train_with_checkpoints(base.clone(), &data, dir.path(), 1, None);
        let fresh = Net::new(mask, &device);
        assert_ne!(
            snapshot(&fresh),
            before,
            "{}: the fresh model must differ",
            be.name
        );
        let resumed = train_with_checkpoints(fresh, &data, dir.path(), 2, Some(1));

        assert_eq!(
            snapshot(&resumed),
            snapshot(&straight),
            "{}: resumed and straight runs differ",
            be.name
        );
        let want: BTreeSet<String> = trained_paths.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            changed(&before, &snapshot(&resumed)),
            want,
            "{}: only the masked parameters may change",
            be.name
        );
        let state = optimizer_checkpoint(dir.path(), 2);
        assert_eq!(
            state,
            optimizer_checkpoint(straight_dir.path(), 2),
            "{}: optimizer state",
            be.name
        );
        let tensors: BTreeSet<&str> = state
            .keys()
            .filter(|k| k.ends_with("moment_1") || k.ends_with("moment_2"))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            tensors,
            [
                "head.bias.momentum.moment_1",
                "head.bias.momentum.moment_2",
                "head.weight.momentum.moment_1",
                "head.weight.momentum.moment_2",
            ]
            .into_iter()
            .collect(),
            "{}: AdamW state for the masked parameters only",
            be.name
        );
    }
}
