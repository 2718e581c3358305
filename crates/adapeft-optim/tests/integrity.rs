//! Damaged checkpoints: nothing loads silently.
//!
//! Seeded damage to each file of a checkpoint folder in turn (the trained tensors, burn's
//! optimizer record, `checkpoint.json`), the others intact. No copy may panic or restore
//! anything but the saved run: a restore that succeeds must give the saved model bit for
//! bit and continue exactly as the undamaged checkpoint does. Every change to a data file is
//! refused as an integrity error naming that file (each is checked whole against the length
//! and checksum in the manifest), and a manifest cut short or replaced is refused.
//!
//! The adapter-file side has the same test in `crates/adapeft-selection/tests/integrity.rs`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use adapeft_importance::Objective;
use adapeft_optim::Masked;
use adapeft_optim::checkpoint::{CheckpointError, MANIFEST_FILE, load_checkpoint, save_checkpoint};
use adapeft_selection::integrity::IntegrityError;
use adapeft_testing::damage::{Damage, damage};
use adapeft_testing::{Mlp, RegressionBatch, Snap, regression_batch, snapshot, temp_dir};
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn trainer() -> Masked {
    Masked::new(
        AdamWConfig::new().with_weight_decay(0.1).build(),
        ParamGroup::from_paths(vec!["hidden.weight", "out.bias"]),
    )
}

fn step(optim: &mut Masked, model: Mlp, batch: &RegressionBatch) -> Mlp {
    let grads = GradientsParams::from_grads(model.loss(batch).backward(), &model);
    optim.step(1e-2, model, grads)
}

/// What a restore gives: the model, and the model after one more step (which shows the
/// optimizer state: AdamW's moments and step count).
fn restored(
    dir: &Path,
    base: &Mlp,
    batch: &RegressionBatch,
) -> Result<(Vec<Snap>, Vec<Snap>), CheckpointError> {
    let mut optim = trainer();
    let resumed = load_checkpoint(dir, base.clone(), &mut optim)?;
    let now = snapshot(&resumed.model);
    let next = snapshot(&step(&mut optim, resumed.model, batch));
    Ok((now, next))
}

/// The checkpoint's three files: the trained tensors, the optimizer record, the manifest.
fn files(dir: &Path) -> [PathBuf; 3] {
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let body = &value["body"];
    [
        dir.join(body["trained"]["file"].as_str().unwrap()),
        dir.join(body["optimizer"]["record"]["file"].as_str().unwrap()),
        dir.join(MANIFEST_FILE),
    ]
}

#[test]
fn damaged_checkpoint_files_never_panic_or_restore_another_run() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let base = Mlp::new(6, 8, 3, &device);
    let batch = regression_batch(16, 6, 3, 5, &device);
    let dir = temp_dir("checkpoint-integrity");
    let (mut model, mut optim) = (base.clone(), trainer());
    for _ in 0..3 {
        model = step(&mut optim, model, &batch);
    }
    save_checkpoint(dir.path(), &model, &optim, None).unwrap();
    let reference = restored(dir.path(), &base, &batch).unwrap();
    assert_eq!(
        reference.0,
        snapshot(&model),
        "the undamaged checkpoint restores the run"
    );

    const PER_FILE: usize = 300;
    let mut rng = StdRng::seed_from_u64(2027);
    // (file, damage, outcome) -> copies.
    let mut outcomes: BTreeMap<(usize, Damage, String), usize> = BTreeMap::new();
    let files = files(dir.path());
    for (f, file) in files.iter().enumerate() {
        let original = std::fs::read(file).unwrap();
        for i in 0..PER_FILE {
            let kind = Damage::ALL[i % Damage::ALL.len()];
            let copy = damage(&original, 0..original.len(), kind, &mut rng);
            if copy == original {
                continue;
            }
            std::fs::write(file, &copy).unwrap();
            let result = catch_unwind(AssertUnwindSafe(|| restored(dir.path(), &base, &batch)))
                .unwrap_or_else(|_| {
                    panic!(
                        "restoring panicked on damaged copy {i} of {}",
                        file.display()
                    )
                });
            let outcome = match result {
                Ok(got) => {
                    assert!(
                        got == reference,
                        "copy {i} ({kind:?}) of {} restored another run",
                        file.display()
                    );
                    "restored unchanged".to_string()
                }
                Err(CheckpointError::Integrity(e)) if e.file() == file => {
                    "integrity error naming the file".to_string()
                }
                Err(e) => {
                    let words = format!("{e:?}");
                    words
                        .split(['(', ' ', '{'])
                        .filter(|w| !w.is_empty())
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            };
            *outcomes.entry((f, kind, outcome)).or_default() += 1;
        }
        std::fs::write(file, &original).unwrap();
    }
    for ((f, kind, outcome), n) in &outcomes {
        let name = files[*f].file_name().unwrap().to_string_lossy();
        eprintln!("{name}: {kind:?}: {outcome}: {n}");
    }

    for (f, file) in files.iter().enumerate() {
        for kind in Damage::ALL {
            let of = |pred: &dyn Fn(&str) -> bool| -> usize {
                outcomes
                    .iter()
                    .filter(|((g, k, o), _)| (*g, *k) == (f, kind) && pred(o.as_str()))
                    .map(|(_, n)| n)
                    .sum()
            };
            let total = of(&|_| true);
            let what = format!("{}: {kind:?}", file.display());
            assert!(total > PER_FILE / 10, "{what}: only {total} damaged copies");
            let named = of(&|o| o == "integrity error naming the file");
            let unchanged = of(&|o| o == "restored unchanged");
            if f < 2 {
                // A data file is checked whole: every change is refused, naming it.
                assert_eq!(named, total, "{what}: {outcomes:?}");
            } else if kind.always_refused() {
                assert_eq!(unchanged, 0, "{what}: {outcomes:?}");
            }
        }
    }
    // The manifest's own checksum catches changed values whose JSON still parses.
    let manifest_named: usize = outcomes
        .iter()
        .filter(|((f, _, o), _)| *f == 2 && o == "integrity error naming the file")
        .map(|(_, n)| n)
        .sum();
    assert!(manifest_named > 0, "{outcomes:?}");
}

/// Every checkpoint version records the manifest's checksum: a manifest without one is
/// damaged, never read unverified.
#[test]
fn a_manifest_without_its_checksum_is_refused() {
    let device = Device::flex().autodiff();
    let base = Mlp::new(6, 8, 3, &device);
    let batch = regression_batch(16, 6, 3, 5, &device);
    let dir = temp_dir("checkpoint-integrity");
    let mut optim = trainer();
    let model = step(&mut optim, base.clone(), &batch);
    save_checkpoint(dir.path(), &model, &optim, None).unwrap();
    let file = dir.path().join(MANIFEST_FILE);
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("checksum");
    std::fs::write(&file, value.to_string()).unwrap();
    match restored(dir.path(), &base, &batch) {
        Err(CheckpointError::Integrity(IntegrityError::Missing { file: f, .. })) => {
            assert_eq!(f, file)
        }
        other => panic!("expected a missing checksum, got {other:?}"),
    }
}
