//! Checkpoint and resume, by killing runs: train N steps straight, versus train k steps,
//! checkpoint, drop every object, restore from the folder onto a freshly built base model
//! (with new parameter ids) and a freshly built trainer, and train the N - k steps left. The
//! final parameters (values and require-grad), the optimizer state (decoded from burn's
//! record, by parameter path) and the trainer's own state must be bit-identical, for
//! `Masked` with AdamW (with whole tensors, and with cells of units below the tensor), `Gen`
//! around it, and `Reselect` (alone and inside `Gen`) with the checkpoint before, between and
//! after re-selections.
//!
//! Then the refusals: a checkpoint of another model, optimizer, trainer kind or settings,
//! damaged files, an unknown version; and what saving over a checkpoint leaves behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use adapeft::importance::{ParamMapper, map_params, set_require_grad};
use adapeft::importance::{Unit, UnitRules};
use adapeft::optim::checkpoint::{
    CheckpointError, MANIFEST_FILE, Resumable, load_checkpoint, save_checkpoint,
};
use adapeft::optim::{
    Gen, GenConfig, GenProbe, GradientMask, HistoryEntry, Masked, Reselect, StepOptimizer,
};
use adapeft::selection::integrity::IntegrityError;
use adapeft::{AdaPeft, Budget, Objective, Selection};
use adapeft_testing::*;
use burn::module::{Param, ParamGroup, ParamId};
use burn::optim::grad_clipping::GradientClipping;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, SgdConfig};
use burn::store::burn_pack::{Reader, Scalar};
use burn::store::{ModuleStore, SafetensorsStore};
use burn::tensor::{Device, Tensor};

const D_IN: usize = 6;
const HIDDEN: usize = 16;
const D_OUT: usize = 3;
const LR: f64 = 1e-2;

// ---------------------------------------------------------------------------------------------
// What is compared

/// The optimizer state of `masked`, decoded from burn's record with each parameter id
/// replaced by the parameter's path: tensors as (dtype, shape, raw bytes), scalars as stored.
#[derive(Debug, PartialEq)]
struct State {
    tensors: BTreeMap<String, String>,
    scalars: BTreeMap<String, Scalar>,
}

fn state(masked: &Masked) -> State {
    let bytes = masked.inner().to_record().into_bytes().expect("record");
    let reader = Reader::from_bytes(bytes).expect("burn reads its record");
    let paths: BTreeMap<String, String> = reader.metadata().clone();
    let by_path = |key: &str| {
        let (id, rest) = key.split_once('.').expect("`{id}.{field}`");
        format!("{}.{rest}", paths.get(id).expect("every state has a path"))
    };
    let scalars = reader
        .scalars()
        .iter()
        .map(|(key, value)| (by_path(key), *value))
        .collect();
    let tensors = reader
        .into_tensors()
        .expect("tensors")
        .into_iter()
        .map(|t| {
            let (name, dtype, shape, _, bytes) = t.into_parts().expect("bytes");
            (
                by_path(&name),
                format!("{dtype:?} {shape:?} {:?}", &bytes[..]),
            )
        })
        .collect();
    State { tensors, scalars }
}

/// A GeN probe, every float as its bits (NaN included).
fn probe_bits(p: &GenProbe) -> Vec<u64> {
    let mut bits = vec![p.step as u64, p.lr_before.to_bits(), p.lr_after.to_bits()];
    bits.extend(
        p.losses
            .iter()
            .flat_map(|(t, l)| [t.to_bits(), l.to_bits()]),
    );
    bits.extend([
        p.b.to_bits(),
        p.a.to_bits(),
        p.r2.to_bits(),
        p.clipped as u64,
    ]);
    bits.push(p.proposal.map_or(u64::MAX, f64::to_bits));
    bits.push(format!("{:?}", p.rejected).len() as u64);
    bits
}

fn gen_bits<O: StepOptimizer>(g: &Gen<O>) -> (u64, usize, Vec<Vec<u64>>) {
    let history = g.history().iter().map(probe_bits).collect();
    (g.lr().to_bits(), g.steps(), history)
}

fn entries_bits(entries: &[HistoryEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {:?} {} {:x} {:?} {:?} {:x}",
                e.step,
                e.chosen,
                e.trainable_params,
                e.predicted_reduction.to_bits(),
                e.dropped,
                e.added,
                e.seconds.to_bits()
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The runs

fn batches(n: usize, device: &Device) -> Vec<RegressionBatch> {
    (0..n)
        .map(|i| regression_batch(24, D_IN, D_OUT, 100 + i as u64, device))
        .collect()
}

fn grads(model: &Mlp, batch: &RegressionBatch) -> GradientsParams {
    GradientsParams::from_grads(model.loss(batch).backward(), model)
}

/// `model` with a new `ParamId` on every parameter: a base model built afresh, in another
/// process, would not have the ids the optimizer state was keyed by.
fn fresh_ids(model: Mlp) -> Mlp {
    struct Fresh;
    impl ParamMapper for Fresh {
        fn map<const D: usize>(&mut self, _: &str, mut p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            p.id = ParamId::new();
            p
        }
    }
    map_params(model, &mut Fresh)
}

fn ids(model: &Mlp) -> Vec<ParamId> {
    adapeft::importance::layout(model)
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// How one kind of trainer is built, stepped and compared.
struct Kind<'a, T> {
    /// A fresh trainer, as the user builds it for the first run and again to resume.
    make: &'a dyn Fn() -> T,
    /// The model the first run starts from (the base, maybe frozen by a selection).
    prepare: &'a dyn Fn(Mlp) -> Mlp,
    /// Step `i` (0-based) of the run.
    step: &'a dyn Fn(&mut T, Mlp, usize) -> Mlp,
    /// The masked optimizer inside.
    masked: &'a dyn Fn(&T) -> &Masked,
    /// The selection saved with the checkpoint after `k` steps.
    selection: &'a dyn Fn(usize) -> Option<Selection>,
}

struct Outcome<T> {
    model: Mlp,
    trainer: T,
}

/// Runs `n` steps straight, then `k` steps, a checkpoint, and `n - k` steps after restoring.
fn straight_and_resumed<T: Resumable>(
    kind: &Kind<T>,
    base: &Mlp,
    n: usize,
    k: usize,
    name: &str,
) -> (Outcome<T>, Outcome<T>) {
    let mut trainer = (kind.make)();
    let mut model = (kind.prepare)(base.clone());
    for i in 0..n {
        model = (kind.step)(&mut trainer, model, i);
    }
    let straight = Outcome { model, trainer };

    let dir = temp_dir(&format!("checkpoint-{name}"));
    let saved_ids = {
        let mut trainer = (kind.make)();
        let mut model = (kind.prepare)(base.clone());
        for i in 0..k {
            model = (kind.step)(&mut trainer, model, i);
        }
        let saved = save_checkpoint(dir.path(), &model, &trainer, (kind.selection)(k).as_ref())
            .expect("save");
        assert!(saved.bytes > 0);
        assert_eq!(
            saved.state_tensors,
            (kind.masked)(&trainer).state_tensors(),
            "{name}"
        );
        ids(&model)
        // Every object of the first run is dropped here.
    };

    let base = fresh_ids(base.clone());
    assert!(
        ids(&base).iter().all(|id| !saved_ids.contains(id)),
        "the new base must not share ids with the saved run"
    );
    let mut trainer = (kind.make)();
    let resumed = load_checkpoint(dir.path(), base, &mut trainer).expect("load");
    if let Some(selection) = (kind.selection)(k) {
        assert_eq!(
            resumed.selection.expect("saved selection").to_json(),
            selection.to_json()
        );
    }
    let mut model = resumed.model;
    for i in k..n {
        model = (kind.step)(&mut trainer, model, i);
    }
    (straight, Outcome { model, trainer })
}

fn assert_same<T>(kind: &Kind<T>, a: &Outcome<T>, b: &Outcome<T>, what: &str) {
    assert_eq!(
        snapshot(&a.model),
        snapshot(&b.model),
        "{what}: parameters (values and require-grad)"
    );
    let (sa, sb) = (
        state((kind.masked)(&a.trainer)),
        state((kind.masked)(&b.trainer)),
    );
    assert!(
        !sa.tensors.is_empty(),
        "{what}: no optimizer state to compare"
    );
    assert_eq!(sa, sb, "{what}: optimizer state");
    // `ParamGroup` has no `PartialEq`: compare its `Debug`.
    assert_eq!(
        format!("{:?}", (kind.masked)(&a.trainer).mask()),
        format!("{:?}", (kind.masked)(&b.trainer).mask()),
        "{what}: mask"
    );
}

// ---------------------------------------------------------------------------------------------
// Bit-identical resume

#[test]
fn masked_adamw_resumes_bit_identically() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(3);
        let base = Mlp::new(D_IN, HIDDEN, D_OUT, &device);
        let data = batches(6, &device);
        let mask = || ParamGroup::from_paths(vec!["hidden.weight", "out.bias"]);
        let make = || {
            Masked::new(AdamWConfig::new().with_weight_decay(0.1).build(), mask())
                .with_grad_clipping(GradientClipping::Norm(1.0))
        };
        let step = |t: &mut Masked, model: Mlp, i: usize| {
            let g = grads(&model, &data[i]);
            t.step(LR, model, g)
        };
        let kind = Kind {
            make: &make,
            prepare: &|m| m,
            step: &step,
            masked: &|t| t,
            selection: &|_| None,
        };
        for k in [1, 3, 5] {
            let (a, b) = straight_and_resumed(&kind, &base, 6, k, "masked");
            assert_same(&kind, &a, &b, &format!("{}: masked, k = {k}", be.name));
            assert_eq!(
                state(&a.trainer).scalars["hidden.weight.momentum.time"],
                Scalar::UInt(6),
                "AdamW's step count continues"
            );
        }

        // Control: the same resume with the optimizer state thrown away ends elsewhere, so
        // the comparison above would see a lost state.
        let (a, _) = straight_and_resumed(&kind, &base, 6, 3, "masked-control");
        let dir = temp_dir("checkpoint-control");
        let mut trainer = make();
        let mut model = (kind.prepare)(base.clone());
        for i in 0..3 {
            model = step(&mut trainer, model, i);
        }
        save_checkpoint(dir.path(), &model, &trainer, None).unwrap();
        let mut trainer = make();
        let mut model = load_checkpoint(dir.path(), fresh_ids(base.clone()), &mut trainer)
            .unwrap()
            .model;
        let mut trainer = make(); // the state is lost
        for i in 3..6 {
            model = step(&mut trainer, model, i);
        }
        assert_ne!(snapshot(&a.model), snapshot(&model), "{}: control", be.name);
    }
}

/// A mask that trains some tensors only in some cells (units below the tensor: two output
/// neurons of the hidden layer, a 2 x 2 block of the output weight): the checkpoint stores
/// those cells and their tiling (version 2), and the resumed run is the straight one, bit for
/// bit, AdamW's decay included.
#[test]
fn masked_adamw_with_cells_resumes_bit_identically() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(3);
        let base = Mlp::new(D_IN, HIDDEN, D_OUT, &device);
        let data = batches(6, &device);
        let rules = UnitRules::new()
            .with("^hidden$", Unit::Outputs)
            .unwrap()
            .with("^out$", Unit::Blocks { rows: 2, cols: 2 })
            .unwrap();
        let units = per_tensor(&base).split(&rules).unwrap();
        let chosen: Vec<usize> = [
            "hidden.out[1]",
            "hidden.out[7]",
            "out.block[3,1]",
            "out.bias",
        ]
        .iter()
        .map(|name| units.groups().iter().position(|g| g.name == *name).unwrap())
        .collect();
        let make = || {
            Masked::new(
                AdamWConfig::new().with_weight_decay(0.1).build(),
                GradientMask::from_groups(&units, &chosen),
            )
        };
        let step = |t: &mut Masked, model: Mlp, i: usize| {
            let g = grads(&model, &data[i]);
            t.step(LR, model, g)
        };
        let kind = Kind {
            make: &make,
            prepare: &|m| m,
            step: &step,
            masked: &|t| t,
            selection: &|_| None,
        };
        for k in [1, 4] {
            let (a, b) = straight_and_resumed(&kind, &base, 6, k, "cells");
            assert_same(&kind, &a, &b, &format!("{}: cells, k = {k}", be.name));
            let mask = b.trainer.mask();
            assert_eq!(mask.cells("hidden.weight").unwrap().cells(), [1, 7]);
            assert_eq!(mask.cells("out.weight").unwrap().cells(), [7]);
        }

        // The files: version 2, the cells in the manifest, and only the cells' values stored.
        let dir = temp_dir("checkpoint-cells");
        let mut trainer = make();
        let model = step(&mut trainer, base.clone(), 0);
        save_checkpoint(dir.path(), &model, &trainer, None).unwrap();
        let (value, trained, _) = manifest(dir.path());
        assert_eq!(value["version"], 2);
        let cells = &value["body"]["state"]["cells"];
        assert_eq!(cells["hidden.weight"]["cells"], serde_json::json!([1, 7]));
        let stored = SafetensorsStore::from_file(&trained).keys().unwrap();
        assert_eq!(
            stored,
            [
                "hidden.bias#cells",
                "hidden.weight#cells",
                "out.bias",
                "out.weight#cells"
            ],
            "{}",
            be.name
        );
        // Without cells, the version builds before cells read.
        let plain = temp_dir("checkpoint-plain");
        save_checkpoint(plain.path(), &model, &adamw(), None).unwrap();
        assert_eq!(manifest(plain.path()).0["version"], 1);
    }
}

#[test]
fn gen_around_masked_resumes_bit_identically() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(5);
        let base = Mlp::new(D_IN, HIDDEN, D_OUT, &device);
        let data = batches(7, &device);
        let make = || {
            let masked = Masked::new(
                AdamWConfig::new().with_weight_decay(0.1).build(),
                ParamGroup::from_paths(vec!["hidden.bias", "out.weight"]),
            );
            Gen::new(masked, 1e-3, GenConfig::new().with_lazy_every(2)).unwrap()
        };
        let step = |t: &mut Gen<Masked>, model: Mlp, i: usize| {
            let batch = &data[i];
            let g = grads(&model, batch);
            t.step(model, g, |m: &Mlp| m.loss(batch)).unwrap()
        };
        let kind = Kind {
            make: &make,
            prepare: &|m| m,
            step: &step,
            masked: &|t| t.optimizer(),
            selection: &|_| None,
        };
        for k in [2, 3] {
            let (a, b) = straight_and_resumed(&kind, &base, 7, k, "gen");
            let what = format!("{}: gen<masked>, k = {k}", be.name);
            assert_same(&kind, &a, &b, &what);
            assert!(a.trainer.history().len() >= 4, "{what}: probes ran");
            assert_ne!(a.trainer.lr(), 1e-3, "{what}: the rate moved");
            assert_eq!(
                gen_bits(&a.trainer),
                gen_bits(&b.trainer),
                "{what}: GeN state"
            );
        }
    }
}

/// Selections of 20 and 70 parameters of the start model, and the schedule of a run that
/// re-selects every 3 steps: the larger one first, the smaller at step 3 (dropping tensors
/// that trained), the larger again at step 6.
fn schedule(base: &Mlp, device: &Device) -> Vec<Selection> {
    let batch = regression_batch(32, D_IN, D_OUT, 5, device);
    let small = AdaPeft::select(base, &batch, Budget::Params(20)).unwrap();
    let large = AdaPeft::select(base, &batch, Budget::Params(70)).unwrap();
    let (s, l) = (small.chosen_paths(), large.chosen_paths());
    assert!(
        l.iter().any(|p| !s.contains(p)),
        "the schedule must drop a trained tensor: {l:?} -> {s:?}"
    );
    vec![large.clone(), small, large]
}

const EVERY: usize = 3;

#[test]
fn reselect_resumes_bit_identically_before_between_and_after_reselections() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(7);
        let base = Mlp::new(D_IN, HIDDEN, D_OUT, &device);
        let data = batches(8, &device);
        let plan = schedule(&base, &device);
        let make = || {
            let masked = Masked::new(AdamWConfig::new().with_weight_decay(0.1).build(), &plan[0]);
            Reselect::new(masked, &plan[0], EVERY).unwrap()
        };
        let step = |t: &mut Reselect, model: Mlp, i: usize| {
            let g = grads(&model, &data[i]);
            let model = t.step(LR, model, g);
            if t.due() {
                t.update(model, plan[t.steps() / EVERY].clone())
            } else {
                model
            }
        };
        let current = |k: usize| Some(plan[k / EVERY].clone());
        let kind = Kind {
            make: &make,
            prepare: &|m| plan[0].apply(m),
            step: &step,
            masked: &|t| t.optimizer(),
            selection: &current,
        };
        for k in [2, 4, 7] {
            let (a, b) = straight_and_resumed(&kind, &base, 8, k, "reselect");
            let what = format!("{}: reselect, k = {k}", be.name);
            assert_same(&kind, &a, &b, &what);
            assert_eq!(a.trainer.history().entries().len(), 3, "{what}");
            assert!(
                !a.trainer.history().entries()[1].dropped.is_empty(),
                "{what}"
            );
            assert_eq!(b.trainer.steps(), 8, "{what}");
            assert_eq!(
                entries_bits(a.trainer.history().entries()),
                entries_bits(b.trainer.history().entries()),
                "{what}: history"
            );
        }
    }
}

#[test]
fn gen_around_reselect_resumes_bit_identically_after_a_reselection() {
    let device = Device::flex().autodiff();
    device.seed(9);
    let base = Mlp::new(D_IN, HIDDEN, D_OUT, &device);
    let data = batches(8, &device);
    let plan = schedule(&base, &device);
    let make = || {
        let masked = Masked::new(AdamWConfig::new().build(), &plan[0]);
        let reselect = Reselect::new(masked, &plan[0], EVERY).unwrap();
        Gen::new(reselect, 1e-3, GenConfig::new().with_lazy_every(2)).unwrap()
    };
    let step = |t: &mut Gen<Reselect>, model: Mlp, i: usize| {
        let batch = &data[i];
        let g = grads(&model, batch);
        let model = t.step(model, g, |m: &Mlp| m.loss(batch)).unwrap();
        if t.optimizer().due() {
            let next = plan[t.optimizer().steps() / EVERY].clone();
            t.optimizer_mut().update(model, next)
        } else {
            model
        }
    };
    let kind = Kind {
        make: &make,
        prepare: &|m| plan[0].apply(m),
        step: &step,
        masked: &|t| t.optimizer().optimizer(),
        selection: &|_| None,
    };
    let (a, b) = straight_and_resumed(&kind, &base, 8, 4, "gen-reselect");
    assert_same(&kind, &a, &b, "gen<reselect>, k = 4");
    assert_eq!(gen_bits(&a.trainer), gen_bits(&b.trainer), "GeN state");
    assert_eq!(
        entries_bits(a.trainer.optimizer().history().entries()),
        entries_bits(b.trainer.optimizer().history().entries()),
        "re-selection history"
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals

/// A `Masked` AdamW checkpoint of an `Mlp` after two steps of `out.weight` (the only
/// parameter left requiring gradients), in a fresh folder, and the (unfrozen) base.
fn masked_checkpoint(device: &Device) -> (TempDir, Mlp) {
    let base = Mlp::new(D_IN, HIDDEN, D_OUT, device);
    let data = batches(2, device);
    let mut trainer = Masked::new(
        AdamWConfig::new().build(),
        ParamGroup::from_paths(vec!["out.weight"]),
    );
    let mut model = set_require_grad(base.clone(), |path| path == "out.weight");
    for batch in &data {
        let g = grads(&model, batch);
        model = trainer.step(LR, model, g);
    }
    let dir = temp_dir("checkpoint-refusals");
    save_checkpoint(dir.path(), &model, &trainer, None).unwrap();
    (dir, base)
}

/// A fresh `Masked` AdamW with a placeholder mask, to restore into.
fn adamw() -> Masked {
    Masked::new(
        AdamWConfig::new().build(),
        ParamGroup::from_paths(vec!["hidden.bias"]),
    )
}

/// Checks that a failed restore left `trainer` as it was built.
fn untouched(trainer: &Masked) {
    assert_eq!(trainer.state_tensors(), 0, "the trainer got state");
    assert!(
        trainer.mask().matches(&ParamId::new(), "hidden.bias"),
        "the mask changed"
    );
}

#[test]
fn another_model_optimizer_trainer_or_settings_is_refused_and_the_trainer_kept() {
    let device = Device::flex().autodiff();
    let (dir, base) = masked_checkpoint(&device);

    // Another model: a narrower hidden layer.
    let mut trainer = adamw();
    let narrow = Mlp::new(D_IN, HIDDEN - 4, D_OUT, &device);
    match load_checkpoint(dir.path(), narrow, &mut trainer) {
        Err(CheckpointError::ModelMismatch { path, saved, found }) => {
            assert_eq!(path, "hidden.weight");
            assert_eq!(saved, Some(vec![D_IN, HIDDEN]));
            assert_eq!(found, Some(vec![D_IN, HIDDEN - 4]));
        }
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
    untouched(&trainer);

    // Other optimizers: Adam (the same state layout as AdamW), SGD, AdamW with clipping.
    let others = [
        Masked::new(
            AdamConfig::new().build(),
            ParamGroup::from_paths(vec!["hidden.bias"]),
        ),
        Masked::new(
            SgdConfig::new().build(),
            ParamGroup::from_paths(vec!["hidden.bias"]),
        ),
        adamw().with_grad_clipping(GradientClipping::Value(0.5)),
    ];
    for mut other in others {
        match load_checkpoint(dir.path(), base.clone(), &mut other) {
            Err(e @ CheckpointError::OptimizerMismatch { .. }) => {
                assert!(e.to_string().contains("AdamW"), "{e}")
            }
            other => panic!("expected OptimizerMismatch, got {other:?}"),
        }
        untouched(&other);
    }

    // Another trainer kind.
    let mut gen_lr = Gen::new(adamw(), 1e-3, GenConfig::new()).unwrap();
    match load_checkpoint(dir.path(), base.clone(), &mut gen_lr) {
        Err(CheckpointError::AdapterMismatch { saved, given }) => {
            assert_eq!((saved.as_str(), given), ("masked", "gen<masked>"));
        }
        other => panic!("expected AdapterMismatch, got {other:?}"),
    }
    untouched(gen_lr.optimizer());
    assert_eq!(gen_lr.steps(), 0);

    // Other settings: GeN's.
    let dir = temp_dir("checkpoint-settings");
    let gen_lr = Gen::new(adamw(), 1e-3, GenConfig::new().with_lazy_every(3)).unwrap();
    save_checkpoint(dir.path(), &base, &gen_lr, None).unwrap();
    let mut other = Gen::new(adamw(), 1e-3, GenConfig::new().with_lazy_every(4)).unwrap();
    match load_checkpoint(dir.path(), base.clone(), &mut other) {
        Err(CheckpointError::SettingsMismatch { setting, .. }) => assert_eq!(setting, "GenConfig"),
        other => panic!("expected SettingsMismatch, got {other:?}"),
    }
    assert_eq!(other.config().lazy_every, 4);

    // The right trainer loads; the base requires gradients everywhere, the saved model did not.
    let (dir, base) = masked_checkpoint(&device);
    let mut trainer = adamw();
    let resumed = load_checkpoint(dir.path(), base, &mut trainer).unwrap();
    assert_eq!(trainer.state_tensors(), 2);
    assert!(resumed.selection.is_none());
    let trains: Vec<(String, bool)> = snapshot(&resumed.model)
        .into_iter()
        .map(|(p, _, g)| (p, g))
        .collect();
    assert_eq!(
        trains,
        [
            ("hidden.weight".to_string(), false),
            ("hidden.bias".to_string(), false),
            ("out.weight".to_string(), true),
            ("out.bias".to_string(), false),
        ],
        "require-grad as saved, not as the base had it"
    );
}

/// The manifest as JSON, and the paths of the data files it names.
fn manifest(dir: &Path) -> (serde_json::Value, PathBuf, PathBuf) {
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let body = &value["body"];
    let trained = dir.join(body["trained"]["file"].as_str().unwrap());
    let record = dir.join(body["optimizer"]["record"]["file"].as_str().unwrap());
    (value, trained, record)
}

#[test]
fn damaged_files_and_unknown_versions_are_refused_naming_the_file() {
    let device = Device::flex().autodiff();
    let restore = |dir: &Path, base: &Mlp| {
        let mut trainer = adamw();
        let result = load_checkpoint(dir, base.clone(), &mut trainer).map(|_| ());
        untouched(&trainer);
        result
    };

    // A flipped byte in the optimizer state.
    let (dir, base) = masked_checkpoint(&device);
    let (_, _, record) = manifest(dir.path());
    let mut bytes = std::fs::read(&record).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&record, bytes).unwrap();
    match restore(dir.path(), &base) {
        Err(CheckpointError::Integrity(IntegrityError::Mismatch { file, .. })) => {
            assert_eq!(file, record)
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }

    // A truncated trained-tensor file.
    let (dir, base) = masked_checkpoint(&device);
    let (_, trained, _) = manifest(dir.path());
    let bytes = std::fs::read(&trained).unwrap();
    std::fs::write(&trained, &bytes[..bytes.len() - 4]).unwrap();
    match restore(dir.path(), &base) {
        Err(e @ CheckpointError::Integrity(IntegrityError::Corrupt { .. })) => {
            assert!(
                e.to_string().contains(&trained.display().to_string()),
                "{e}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // An edited manifest value (the JSON still parses).
    let (dir, base) = masked_checkpoint(&device);
    let (mut value, _, _) = manifest(dir.path());
    value["body"]["optimizer"]["state_tensors"] = serde_json::json!(1);
    let file = dir.path().join(MANIFEST_FILE);
    std::fs::write(&file, value.to_string()).unwrap();
    match restore(dir.path(), &base) {
        Err(CheckpointError::Integrity(IntegrityError::Mismatch { file: f, .. })) => {
            assert_eq!(f, file)
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }

    // A newer version, and another program's JSON.
    value["version"] = serde_json::json!(3);
    std::fs::write(&file, value.to_string()).unwrap();
    match restore(dir.path(), &base) {
        Err(CheckpointError::UnsupportedVersion {
            found, supported, ..
        }) => assert_eq!((found, supported), (3, 2)),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    std::fs::write(&file, r#"{"format":"something-else","version":1}"#).unwrap();
    match restore(dir.path(), &base) {
        Err(e @ CheckpointError::NotACheckpoint { .. }) => {
            assert!(e.to_string().contains("something-else"), "{e}")
        }
        other => panic!("expected NotACheckpoint, got {other:?}"),
    }

    // No checkpoint at all.
    let empty = temp_dir("checkpoint-empty");
    match restore(empty.path(), &base) {
        Err(CheckpointError::Io { file, .. }) => assert_eq!(file, empty.path().join(MANIFEST_FILE)),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn saving_again_replaces_the_checkpoint_and_a_failed_save_keeps_the_old_one() {
    let device = Device::flex().autodiff();
    let base = Mlp::new(D_IN, HIDDEN, D_OUT, &device);
    let data = batches(3, &device);
    let dir = temp_dir("checkpoint-replace");
    let mut trainer = Reselect::new(
        Masked::new(AdamWConfig::new().build(), ParamGroup::all()),
        &AdaPeft::select(&base, &data[0], Budget::Fraction(1.0)).unwrap(),
        10,
    )
    .unwrap();
    let mut model = base.clone();
    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    for batch in &data {
        let g = grads(&model, batch);
        model = trainer.step(LR, model, g);
        save_checkpoint(dir.path(), &model, &trainer, None).unwrap();
        assert_eq!(listing(dir.path()).len(), 3, "{:?}", listing(dir.path()));
    }
    let before = listing(dir.path());
    let manifest_before = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();

    // The trainer used with another model: its state belongs to no parameter of `other`.
    let other = Mlp::new(D_IN, HIDDEN, D_OUT, &device);
    match save_checkpoint(dir.path(), &other, &trainer, None) {
        Err(CheckpointError::ForeignState { .. }) => {}
        other => panic!("expected ForeignState, got {other:?}"),
    }
    assert_eq!(listing(dir.path()), before, "a failed save writes nothing");
    assert_eq!(
        std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap(),
        manifest_before
    );

    // The folder holds the last save: three steps, and the re-selection period is checked.
    let mut resumed = Reselect::new(
        Masked::new(AdamWConfig::new().build(), ParamGroup::all()),
        &AdaPeft::select(&base, &data[0], Budget::Fraction(1.0)).unwrap(),
        10,
    )
    .unwrap();
    let restored = load_checkpoint(dir.path(), base.clone(), &mut resumed).unwrap();
    assert_eq!(resumed.steps(), 3);
    assert_eq!(snapshot(&restored.model), snapshot(&model));
    let mut every_five = Reselect::new(
        Masked::new(AdamWConfig::new().build(), ParamGroup::all()),
        &AdaPeft::select(&base, &data[0], Budget::Fraction(1.0)).unwrap(),
        5,
    )
    .unwrap();
    match load_checkpoint(dir.path(), base, &mut every_five) {
        Err(CheckpointError::SettingsMismatch {
            setting,
            saved,
            given,
        }) => {
            assert_eq!(
                (setting, saved.as_str(), given.as_str()),
                ("every", "10", "5")
            )
        }
        other => panic!("expected SettingsMismatch, got {other:?}"),
    }
    assert_eq!(every_five.steps(), 0);
}
