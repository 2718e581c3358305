//! Several devices: data-parallel selection statistics and masked training under burn-train's
//! `MultiDevice` strategy.
//!
//! On this machine the devices are one backend's default device listed twice (burn accepts
//! that: `MultiDevice` starts one worker thread per entry, and a `Shard` is one worker
//! thread each), so the code paths are the multi-device ones while the arithmetic runs on
//! the same backend as the one-device reference.
//!
//! - `select_sharded` / `estimate_sharded` on two shards against `estimate_with` on all the
//!   batches, for every estimator: `b`, `a`, values and the cross-group curvature agree to a
//!   relative `2e-3` (the mean gradient is summed in f64 and rounded once across workers, in
//!   f32 on one device, and each worker dots its own sum in a Hessian-vector product;
//!   finite-difference curvature divides that rounding by the step: measured at most `4e-4`
//!   on flex and wgpu, below `1e-6` for the first-order scores), and the chosen parameters
//!   are the same;
//! - the data-parallel short run on shards `[b0, b2]` and `[b1, b3]` against a one-device run
//!   on the concatenated batches `[b0 | b1, b2 | b3]` (equal sizes, mean losses: the same
//!   gradients);
//! - a worker whose batch has a non-finite loss stops every worker (no hang) with the error
//!   naming the global batch index; empty shards and a mismatched collective are typed errors;
//! - burn-train's `Learner` with `MultiDevice` (both `OptimMainDevice` and `OptimSharded`) and
//!   `GradientMask::filter` in the `TrainStep` ends at the parameters of a hand-written
//!   one-device loop on the same batch pairs (relative `1e-5`), with the tensors outside the
//!   mask bit-identical to their initial values; `Masked::step_multi` against
//!   `Masked::step` on the accumulated gradients likewise;
//! - with the `cuda` feature, on two CUDA GPUs only: `DeviceReduce` (burn's `all_reduce`)
//!   against `HostReduce`, bit for bit (`scripts/gpu-run.sh` runs it where there are two).

use std::collections::BTreeSet;

use adapeft::importance::{
    AnyEstimator, Collective, EstimateError, GroupScore, HostReduce, NewtonProbe, ReduceError,
    Shard, SlopeEstimate, discover,
};
use adapeft::optim::GradientMask;
use adapeft::{
    AdaPeftConfig, Baseline, Budget, Data, Estimator, ForwardProbe, GradientProbe, Grouping,
    Masked, Objective, ProbeMode, SelectError, ShortRun,
};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, MultiGradientsParams};
use burn::tensor::Device;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::LossMetric;
use burn::train::{
    ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining, TrainingStrategy,
};

use adapeft_testing::learner::{Batch, Net, Sample, SampleBatcher, samples};
use adapeft_testing::{backends, snapshot, temp_dir};

const BATCH: usize = 16;

/// Relative tolerance of sharded statistics against one device's.
const STAT_TOL: f64 = 2e-3;
/// Relative tolerance of trained parameters against the one-device loop.
const TRAIN_TOL: f64 = 1e-5;

// The model (two linear layers and the mask of the parameters that train, filtered in its
// `TrainStep`) and the data are the test-support crate's, shared with `tests/learner.rs`.

/// `n` batches of `BATCH` samples on `device`.
fn batches(data: &[Sample], device: &Device) -> Vec<Batch> {
    data.chunks(BATCH)
        .map(|c| SampleBatcher.batch(c.to_vec(), device))
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    let rel = (a - b).abs() / a.abs().max(b.abs()).max(1e-6);
    WORST.with(|w| w.set(w.get().max(rel)));
    rel <= tol
}

thread_local! {
    /// The largest relative difference `close` has seen on this test's thread (reported with
    /// `--nocapture`, for the tolerances above).
    static WORST: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

/// `a` and `b` side by side, after checking that they are equally long: `zip` alone stops at
/// the shorter one and would compare nothing beyond it.
fn pairs<'a, A, B>(
    a: &'a [A],
    b: &'a [B],
    what: &str,
) -> std::iter::Zip<std::slice::Iter<'a, A>, std::slice::Iter<'a, B>> {
    assert_eq!(
        a.len(),
        b.len(),
        "{what}: {} against {} entries",
        a.len(),
        b.len()
    );
    a.iter().zip(b)
}

/// Asserts that two estimates' groups agree: the same names and reliability, and `b`, `a` and
/// the value within [`STAT_TOL`] (`left` and `right` name the two sides in a failure).
fn assert_groups_close(a: &[GroupScore], b: &[GroupScore], label: &str, sides: (&str, &str)) {
    let (left, right) = sides;
    for (x, y) in pairs(a, b, label) {
        assert_eq!(x.name, y.name, "{label}");
        for (what, p, q) in [
            ("b", x.b, y.b),
            ("a", x.a, y.a),
            ("value", x.value, y.value),
        ] {
            assert!(
                close(p, q, STAT_TOL),
                "{label}: group {} {what}: {left} {p} vs {right} {q}",
                x.name
            );
        }
        assert_eq!(
            x.unreliable.is_some(),
            y.unreliable.is_some(),
            "{label}: group {} reliability",
            x.name
        );
    }
}

/// Prints and resets the largest relative difference seen so far.
fn report(what: &str) {
    let worst = WORST.with(|w| w.replace(0.0));
    eprintln!("{what}: largest relative difference {worst:.2e}");
}

fn estimators() -> Vec<AnyEstimator> {
    vec![
        GradientProbe::exact().into(),
        GradientProbe {
            mode: ProbeMode::RandomSigns,
            probes: 4,
            ..Default::default()
        }
        .into(),
        GradientProbe {
            slope: SlopeEstimate::TwoBatch,
            ..GradientProbe::exact()
        }
        .into(),
        ForwardProbe::new().into(),
        NewtonProbe::new().into(),
        Baseline::GradientNorm.into(),
        Baseline::Fisher.into(),
        Baseline::Taylor.into(),
        Baseline::Magnitude.into(),
        AnyEstimator::default(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Selection statistics

#[test]
fn sharded_statistics_equal_one_device_for_every_estimator() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(5);
        let model = Net::new(GradientMask::all(), &device);
        let before = snapshot(&model);
        let all = batches(&samples(4 * BATCH, 1), &device);
        let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
        for estimator in estimators() {
            // The data-parallel short run is tested on its own below: it sees two batches
            // per step where one device sees one.
            if matches!(estimator, AnyEstimator::ShortRun(_)) {
                continue;
            }
            let shards = [
                Shard::new(device.clone(), all[..2].to_vec()),
                Shard::new(device.clone(), all[2..].to_vec()),
            ];
            let one = estimator
                .estimate_with(&model, &all, &groups, &adapeft::importance::ModelObjective)
                .unwrap();
            let spread = estimator
                .estimate_sharded(
                    &model,
                    &shards,
                    &groups,
                    &adapeft::importance::ModelObjective,
                    &HostReduce::new(2).unwrap(),
                )
                .unwrap();
            assert_eq!(spread.estimator, one.estimator);
            match (spread.loss, one.loss) {
                (Some(x), Some(y)) => assert!(
                    close(x, y, 1e-6),
                    "{}: {estimator}: loss {x} vs {y}",
                    be.name
                ),
                // Only the data-free baseline evaluates no loss, on either side.
                (None, None) => assert!(
                    matches!(estimator, AnyEstimator::Baseline(Baseline::Magnitude)),
                    "{}: {estimator}: no loss reported",
                    be.name
                ),
                (x, y) => panic!("{}: {estimator}: loss {x:?} vs {y:?}", be.name),
            }
            assert_groups_close(
                &spread.groups,
                &one.groups,
                &format!("{}: {estimator}", be.name),
                ("sharded", "one device"),
            );
            match (spread.curvature(), one.curvature()) {
                (Some(c), Some(d)) => {
                    for k in 0..c.len() {
                        for l in 0..c.len() {
                            assert!(
                                close(c.get(k, l), d.get(k, l), STAT_TOL),
                                "{}: {estimator}: curvature ({k}, {l}): {} vs {}",
                                be.name,
                                c.get(k, l),
                                d.get(k, l)
                            );
                        }
                    }
                }
                (None, None) => {}
                _ => panic!("{}: {estimator}: curvature on one side only", be.name),
            }
            // Every worker's passes are counted.
            assert_eq!(spread.cost.backward_passes, one.cost.backward_passes);
            report(&format!("{}: {estimator}", be.name));
        }
        assert_eq!(snapshot(&model), before, "{}: the model changed", be.name);

        // The selector on top: the same chosen parameters.
        let config = AdaPeftConfig::new().with_estimator(GradientProbe::exact());
        let shards = [
            Shard::new(device.clone(), all[..1].to_vec()),
            Shard::new(device.clone(), all[1..].to_vec()),
        ];
        let spread = config
            .select_sharded(&model, &shards, Budget::Fraction(0.3))
            .unwrap();
        let one = config.select(&model, &all, Budget::Fraction(0.3)).unwrap();
        assert_eq!(spread.chosen_paths(), one.chosen_paths(), "{}", be.name);
        assert_eq!(spread.settings().batches, 4);
    }
}

#[test]
fn data_parallel_short_run_equals_one_device_on_the_concatenated_batches() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(8);
        let model = Net::new(GradientMask::all(), &device);
        let data = samples(4 * BATCH, 2);
        let b = batches(&data, &device);
        let joined: Vec<Batch> = [(0, 1), (2, 3)]
            .iter()
            .map(|&(i, j)| {
                let items = [
                    &data[i * BATCH..(i + 1) * BATCH],
                    &data[j * BATCH..(j + 1) * BATCH],
                ]
                .concat();
                SampleBatcher.batch(items, &device)
            })
            .collect();
        let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
        let run: AnyEstimator = ShortRun::new().with_steps(6).into();
        let one = run
            .estimate_with(
                &model,
                &joined,
                &groups,
                &adapeft::importance::ModelObjective,
            )
            .unwrap();
        let shards = [
            Shard::new(device.clone(), vec![b[0].clone(), b[2].clone()]),
            Shard::new(device.clone(), vec![b[1].clone(), b[3].clone()]),
        ];
        let spread = run
            .estimate_sharded(
                &model,
                &shards,
                &groups,
                &adapeft::importance::ModelObjective,
                &HostReduce::new(2).unwrap(),
            )
            .unwrap();
        assert!(close(spread.loss.unwrap(), one.loss.unwrap(), 1e-6));
        for (s, o) in pairs(&spread.groups, &one.groups, "short run groups") {
            assert!(
                close(s.b, o.b, STAT_TOL),
                "{}: {}: data-parallel credit {} vs one device {}",
                be.name,
                s.name,
                s.b,
                o.b
            );
        }
        report(&format!("{}: data-parallel short run", be.name));
        // The default selection runs data-parallel too.
        let selection = AdaPeftConfig::new()
            .select_sharded(&model, &shards, Budget::Fraction(0.3))
            .unwrap();
        assert!(!selection.chosen_paths().is_empty());
    }
}

#[test]
fn a_failing_worker_stops_every_worker_with_its_error() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = Net::new(GradientMask::all(), &device);
    let mut all = batches(&samples(3 * BATCH, 4), &device);
    all[2].y = all[2].y.clone().mul_scalar(f32::NAN);
    let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
    let shards = [
        Shard::new(device.clone(), all[..1].to_vec()),
        Shard::new(device.clone(), all[1..].to_vec()),
    ];
    for estimator in estimators() {
        if matches!(estimator, AnyEstimator::Baseline(Baseline::Magnitude)) {
            continue; // no pass over the data
        }
        let err = estimator
            .estimate_sharded(
                &model,
                &shards,
                &groups,
                &adapeft::importance::ModelObjective,
                &HostReduce::new(2).unwrap(),
            )
            .unwrap_err();
        match (&estimator, err) {
            // The short run first evaluates the mean loss over every batch (reported as
            // batch 0, as on one device).
            (AnyEstimator::ShortRun(_), EstimateError::NonFiniteLoss { .. }) => {}
            // The others take each batch's gradient and name the global index.
            (_, EstimateError::NonFiniteLoss { batch, .. }) => assert_eq!(batch, 2, "{estimator}"),
            (_, other) => panic!("{estimator}: unexpected error {other}"),
        }
    }

    let config = AdaPeftConfig::new();
    let empty = [
        Shard::new(device.clone(), all[..1].to_vec()),
        Shard::new(device.clone(), Vec::new()),
    ];
    assert!(matches!(
        config.select_sharded(&model, &empty, Budget::Fraction(0.5)),
        Err(SelectError::Estimate(EstimateError::EmptyShard {
            shard: 1
        }))
    ));
    let none: [Shard<Batch>; 0] = [];
    assert!(matches!(
        config.select_sharded(&model, &none, Budget::Fraction(0.5)),
        Err(SelectError::Estimate(EstimateError::NoShard))
    ));
    assert!(matches!(
        config.select_with(
            &model,
            Data::Sharded {
                shards: &shards,
                reduce: &HostReduce::new(3).unwrap()
            },
            Budget::Fraction(0.5),
            &adapeft::importance::ModelObjective,
        ),
        Err(SelectError::Estimate(EstimateError::Workers {
            workers: 3,
            shards: 2
        }))
    ));
}

#[test]
fn host_reduce_sums_in_rank_order_and_aborts_waiting_workers() {
    let reduce = HostReduce::new(3).unwrap();
    let out: Vec<Vec<f64>> = std::thread::scope(|s| {
        let h: Vec<_> = (0..3)
            .map(|rank| {
                let reduce = &reduce;
                s.spawn(move || {
                    let mut v = vec![0.1 * (rank + 1) as f64, 1e16, -1e16];
                    for _ in 0..5 {
                        let mut w = v.clone();
                        reduce.all_reduce_sum(rank, &mut w).unwrap();
                        v = w;
                    }
                    v
                })
            })
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(out[0], out[1]);
    assert_eq!(out[1], out[2]);

    let reduce = HostReduce::new(2).unwrap();
    let err = std::thread::scope(|s| {
        let waiting = s.spawn(|| reduce.all_reduce_sum(0, &mut [1.0]));
        std::thread::sleep(std::time::Duration::from_millis(20));
        reduce.abort(1);
        waiting.join().unwrap()
    });
    assert_eq!(err, Err(ReduceError::Aborted { rank: 1 }));
    assert_eq!(
        HostReduce::new(1).unwrap().all_reduce_sum(1, &mut [0.0]),
        Err(ReduceError::Rank {
            rank: 1,
            workers: 1
        })
    );
    assert_eq!(HostReduce::new(0).unwrap_err(), ReduceError::NoWorkers);
}

/// Two workers that claim one rank: the second to arrive gets `DuplicateRank`, the first is
/// told the collective was abandoned instead of waiting forever for the rank nobody holds.
#[test]
fn two_workers_with_one_rank_are_a_typed_error_not_a_hang() {
    let reduce = HostReduce::new(2).unwrap();
    let mut errors: Vec<Result<(), ReduceError>> = std::thread::scope(|s| {
        let h: Vec<_> = (0..2)
            .map(|_| s.spawn(|| reduce.all_reduce_sum(0, &mut [1.0])))
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect()
    });
    errors.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        errors,
        [
            Err(ReduceError::Aborted { rank: 0 }),
            Err(ReduceError::DuplicateRank { rank: 0 })
        ]
    );
    // The collective stays abandoned: the missing rank gets the same answer.
    assert_eq!(
        reduce.all_reduce_sum(1, &mut [1.0]),
        Err(ReduceError::Aborted { rank: 0 })
    );

    // The same through the estimators' worker entry point.
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = Net::new(GradientMask::all(), &device);
    let batches = batches(&samples(2 * BATCH, 5), &device);
    let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
    let estimator = AnyEstimator::from(Baseline::Fisher);
    let reduce = HostReduce::new(2).unwrap();
    let results: Vec<Result<_, EstimateError>> = std::thread::scope(|s| {
        let h: Vec<_> = [0, 1]
            .map(|first| {
                let (reduce, groups, batches) = (&reduce, &groups, &batches);
                let (estimator, device, model) = (&estimator, device.clone(), model.clone());
                s.spawn(move || {
                    let place = adapeft::importance::WorkerPlace {
                        rank: 0,
                        first_batch: first,
                        total_batches: 2,
                        device,
                    };
                    estimator.estimate_worker(
                        &model,
                        &batches[first..first + 1],
                        place,
                        groups,
                        &adapeft::importance::ModelObjective,
                        reduce,
                    )
                })
            })
            .into_iter()
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        results.iter().any(|r| matches!(
            r,
            Err(EstimateError::Reduce(ReduceError::DuplicateRank {
                rank: 0
            }))
        )),
        "{results:?}"
    );
    assert!(results.iter().all(Result::is_err), "{results:?}");
}

// ---------------------------------------------------------------------------------------------
// Masked training

/// Parameters as f32 values by path.
fn values(model: &Net) -> Vec<(String, Vec<f32>)> {
    snapshot(model)
        .into_iter()
        .map(|(path, bytes, _)| {
            let v = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (path, v)
        })
        .collect()
}

fn grads_of(model: &Net, batch: &Batch) -> GradientsParams {
    let grads = GradientsParams::from_grads(model.loss(batch).backward(), model);
    model.mask.filter(grads, model)
}

const LR: f64 = 1e-2;

#[test]
fn multi_device_learner_trains_like_one_device_and_never_moves_the_frozen_tensors() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let data = samples(96, 6);
        let trained_paths = ["head.weight", "head.bias", "hidden.bias"];
        let mask = GradientMask::from(ParamGroup::from_paths(trained_paths.to_vec()));
        device.seed(17);
        let init = Net::new(mask, &device);
        let before = snapshot(&init);

        // The reference: burn-train's split (first half of the items to device 0, second
        // half to device 1), one step per pair of batches with their summed gradients.
        let half = batches(&data, &device);
        let (first, second) = half.split_at(half.len() / 2);
        let mut model = init.clone();
        let mut optim = AdamWConfig::new().with_weight_decay(0.1).init();
        for _epoch in 0..2 {
            for (a, b) in pairs(first, second, "batch pairs") {
                let mut acc = GradientsAccumulator::new();
                acc.accumulate(&model, grads_of(&model, a));
                acc.accumulate(&model, grads_of(&model, b));
                model = optim.step(LR, model, acc.grads());
            }
        }
        let reference = values(&model);

        for mode in [
            MultiDeviceOptim::OptimMainDevice,
            MultiDeviceOptim::OptimSharded,
        ] {
            let dir = temp_dir(&format!("multi-device-{mode:?}"));
            let train = DataLoaderBuilder::new(SampleBatcher)
                .batch_size(BATCH)
                .build(InMemDataset::new(data.clone()));
            let valid = DataLoaderBuilder::new(SampleBatcher)
                .batch_size(BATCH)
                .build(InMemDataset::new(data.clone()));
            let strategy = ExecutionStrategy::multi(vec![device.clone(), device.clone()], mode);
            let result = SupervisedTraining::new(dir.path(), train, valid)
                .num_epochs(2)
                .metrics((LossMetric::new(),))
                .with_metric_logger(InMemoryMetricLogger::new())
                .with_application_logger(None)
                .with_training_strategy(TrainingStrategy::Default(strategy))
                .launch(Learner::new(
                    init.clone(),
                    AdamWConfig::new().with_weight_decay(0.1).init(),
                    LR,
                ));
            let trained = result.model;
            let after = snapshot(&trained);
            let moved: BTreeSet<String> = pairs(&before, &after, "parameters")
                .filter(|(b, a)| b.1 != a.1)
                .map(|(b, _)| b.0.clone())
                .collect();
            let want: BTreeSet<String> = trained_paths.iter().map(|p| p.to_string()).collect();
            assert_eq!(
                moved, want,
                "{}: {mode:?}: exactly the masked tensors move, the others stay bit-identical",
                be.name
            );
            for ((path, got), (ref_path, expect)) in
                pairs(&values(&trained), &reference, "parameters")
            {
                assert_eq!(path, ref_path, "{}: {mode:?}: parameter order", be.name);
                for (x, y) in pairs(got, expect, path) {
                    assert!(
                        close(*x as f64, *y as f64, TRAIN_TOL),
                        "{}: {mode:?}: {path}: Learner {x} vs one-device loop {y}",
                        be.name
                    );
                }
            }
            report(&format!("{}: Learner {mode:?}", be.name));
        }
    }
}

#[test]
fn masked_step_multi_equals_masked_step_on_the_accumulated_gradients() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        device.seed(29);
        let model = Net::new(GradientMask::all(), &device);
        let before = snapshot(&model);
        let all = batches(&samples(4 * BATCH, 9), &device);
        let mask = ParamGroup::from_paths(vec!["hidden.weight", "head.bias"]);
        let mut one = Masked::new(
            AdamWConfig::new().with_weight_decay(0.1).build(),
            mask.clone(),
        );
        let mut multi = Masked::new(AdamWConfig::new().with_weight_decay(0.1).build(), mask);
        let (mut a, mut b) = (model.clone(), model.clone());
        for pair in all.chunks(2) {
            let mut acc = GradientsAccumulator::new();
            for batch in pair {
                acc.accumulate(
                    &a,
                    GradientsParams::from_grads(a.loss(batch).backward(), &a),
                );
            }
            a = one.step(LR, a, acc.grads());
            let mut grads = MultiGradientsParams::default();
            for batch in pair {
                let g = GradientsParams::from_grads(b.loss(batch).backward(), &b);
                grads.grads.push((g, device.clone()));
            }
            b = multi.step_multi(LR, b, grads);
        }
        report(&format!("{}: Masked::step_multi", be.name));
        assert_eq!(one.state_tensors(), multi.state_tensors());
        assert_eq!(
            multi.state_tensors(),
            4,
            "AdamW state for the two masked tensors only"
        );
        for ((path, x), (path_b, y)) in pairs(&values(&a), &values(&b), "parameters") {
            assert_eq!(path, path_b, "{}: parameter order", be.name);
            for (x, y) in pairs(x, y, path) {
                assert!(
                    close(*x as f64, *y as f64, TRAIN_TOL),
                    "{}: {path}: {x} vs {y}",
                    be.name
                );
            }
        }
        let after = snapshot(&b);
        for (bf, af) in pairs(&before, &after, "parameters") {
            let trained = bf.0 == "hidden.weight" || bf.0 == "head.bias";
            assert_eq!(bf.1 != af.1, trained, "{}: {}", be.name, bf.0);
        }

        // The filter for burn's multi-device gradients.
        let mut grads = MultiGradientsParams::default();
        for batch in &all[..2] {
            let g = GradientsParams::from_grads(model.loss(batch).backward(), &model);
            grads.grads.push((g, device.clone()));
        }
        let mask = GradientMask::from(ParamGroup::from_paths(vec!["head.weight"]));
        let filtered = mask.filter_multi(grads, &model);
        assert!(filtered.grads.iter().all(|(g, _)| g.len() == 1));
    }
}

// ---------------------------------------------------------------------------------------------
// Two CUDA GPUs: the device collective

/// `DeviceReduce` (burn's `all_reduce`, NCCL) against `HostReduce` on the same two shards,
/// one on each of two CUDA GPUs: every estimator's statistics agree to [`STAT_TOL`] (a two-term
/// sum in f64 is the same in any order, so only the GPUs' own kernels, if they reduce in a
/// varying order, could tell the two runs apart), and the selector through `Data::Sharded`
/// chooses the same parameters.
///
/// Compiled with the `cuda` feature only (CI compiles and lints it there, step 4); it needs
/// two CUDA GPUs, whose number it reads from `ADAPEFT_TEST_CUDA_DEVICES`
/// (`scripts/gpu-run.sh` sets it from `nvidia-smi -L` and skips this test with fewer than
/// two). Without two it fails rather than passing without having run.
#[cfg(feature = "cuda")]
#[test]
fn device_reduce_on_two_cuda_gpus_equals_host_reduce() {
    use adapeft::distributed::DeviceReduce;

    let gpus: usize = std::env::var("ADAPEFT_TEST_CUDA_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        gpus >= 2,
        "this test needs two CUDA GPUs: set ADAPEFT_TEST_CUDA_DEVICES to their number \
         (scripts/gpu-run.sh does), or leave it out with `-- --skip device_reduce`"
    );
    let devices = [Device::cuda(0).autodiff(), Device::cuda(1).autodiff()];
    devices[0].seed(5);
    let model = Net::new(GradientMask::all(), &devices[0]);
    let data = samples(4 * BATCH, 1);
    let shards = [
        Shard::new(devices[0].clone(), batches(&data[..2 * BATCH], &devices[0])),
        Shard::new(devices[1].clone(), batches(&data[2 * BATCH..], &devices[1])),
    ];
    let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
    let device_reduce = DeviceReduce::new(devices.to_vec());
    for estimator in estimators() {
        let objective = adapeft::importance::ModelObjective;
        let host = estimator
            .estimate_sharded(
                &model,
                &shards,
                &groups,
                &objective,
                &HostReduce::new(2).unwrap(),
            )
            .unwrap();
        let device = estimator
            .estimate_sharded(&model, &shards, &groups, &objective, &device_reduce)
            .unwrap();
        match (device.loss, host.loss) {
            (Some(x), Some(y)) => assert!(close(x, y, STAT_TOL), "{estimator}: loss {x} vs {y}"),
            (x, y) => assert_eq!(x, y, "{estimator}: loss"),
        }
        assert_groups_close(
            &device.groups,
            &host.groups,
            &format!("{estimator}"),
            ("DeviceReduce", "HostReduce"),
        );
        report(&format!("cuda, DeviceReduce: {estimator}"));
    }
    let config = AdaPeftConfig::new().with_estimator(GradientProbe::exact());
    let by_device = config
        .select_with(
            &model,
            Data::Sharded {
                shards: &shards,
                reduce: &device_reduce,
            },
            Budget::Fraction(0.3),
            &adapeft::importance::ModelObjective,
        )
        .unwrap();
    let by_host = config
        .select_sharded(&model, &shards, Budget::Fraction(0.3))
        .unwrap();
    assert_eq!(by_device.chosen_paths(), by_host.chosen_paths());
}
