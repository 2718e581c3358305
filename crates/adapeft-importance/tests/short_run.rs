//! `ShortRun` against the same run computed on the host in f64: on the quadratic
//! `L(w) = 1/2 w^T A w - c^T w` the gradient is `A w - c` in closed form, so SGD's and Adam's
//! trajectories, each group's loss-change allocation `sum_t G_k(t) . s_k(t)` and each group's
//! loss drop when trained alone are computed exactly.

use adapeft_importance::{
    Direction, EstimateError, Estimator, GradientProbe, ProbeRun, RunOptimizer, ShortRun,
    ShortRunValue,
};
use adapeft_testing::*;

/// The host run: `steps` optimizer steps moving the coordinates in `moving`; returns the
/// per-group allocation and the final weights.
fn host_run(
    problem: &QuadraticProblem,
    config: &ShortRun,
    moving: &[bool],
) -> (Vec<f64>, Vec<f64>) {
    let rates = vec![config.learning_rate; problem.sizes.len()];
    host_run_at(problem, config, moving, &rates)
}

/// [`host_run`] with group `g` at rate `rates[g]`.
fn host_run_at(
    problem: &QuadraticProblem,
    config: &ShortRun,
    moving: &[bool],
    rates: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let n = problem.n();
    let mut w = problem.w.clone();
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let group_of: Vec<usize> = problem
        .sizes
        .iter()
        .enumerate()
        .flat_map(|(g, &s)| std::iter::repeat_n(g, s))
        .collect();
    let mut credit = vec![0.0; problem.sizes.len()];
    for t in 1..=config.steps {
        let grad = problem.gradient_at(&w);
        for i in (0..n).filter(|&i| moving[i]) {
            let rate = rates[group_of[i]];
            let s = match config.optimizer {
                RunOptimizer::Sgd => rate * grad[i],
                RunOptimizer::Adam {
                    beta_1,
                    beta_2,
                    epsilon,
                } => {
                    m[i] = beta_1 * m[i] + (1.0 - beta_1) * grad[i];
                    v[i] = beta_2 * v[i] + (1.0 - beta_2) * grad[i] * grad[i];
                    let m_hat = m[i] / (1.0 - beta_1.powi(t as i32));
                    let v_hat = v[i] / (1.0 - beta_2.powi(t as i32));
                    rate * m_hat / (v_hat.sqrt() + epsilon)
                }
            };
            credit[group_of[i]] += grad[i] * s;
            w[i] -= s;
        }
    }
    (credit, w)
}

/// The host run's weights after 0, 1, ..., `config.steps` steps.
fn host_trajectory(problem: &QuadraticProblem, config: &ShortRun) -> Vec<Vec<f64>> {
    let all = vec![true; problem.n()];
    (0..=config.steps)
        .map(|t| match t {
            0 => problem.w.clone(),
            t => host_run(problem, &config.clone().with_steps(t), &all).1,
        })
        .collect()
}

/// Each group's trapezoid credit along `trajectory`,
/// `sum_t 1/2 (G(w_t) + G(w_t+1)) . (w_t - w_t+1)`, with `gradient` the gradient `G`.
fn trapezoid_credits(
    sizes: &[usize],
    trajectory: &[Vec<f64>],
    gradient: impl Fn(&[f64]) -> Vec<f64>,
) -> Vec<f64> {
    let mut want = vec![0.0; sizes.len()];
    for pair in trajectory.windows(2) {
        let (g0, g1) = (gradient(&pair[0]), gradient(&pair[1]));
        let mut start = 0;
        for (k, &s) in sizes.iter().enumerate() {
            for i in start..start + s {
                want[k] += 0.5 * (g0[i] + g1[i]) * (pair[0][i] - pair[1][i]);
            }
            start += s;
        }
    }
    want
}

fn check_close(got: f64, want: f64, scale: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-3 * scale,
        "{what}: {got} vs host {want} (scale {scale})"
    );
}

#[test]
fn allocation_matches_the_host_run_for_sgd_and_adam() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 23);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        for optimizer in [RunOptimizer::Sgd, RunOptimizer::adam()] {
            let config = ShortRun {
                steps: 6,
                learning_rate: 0.05,
                optimizer,
                value: ShortRunValue::Allocation,
                held_out: 0,
            };
            let scores = config
                .estimate(&model, std::slice::from_ref(&batch), &groups)
                .unwrap();
            let (credit, w_end) = host_run(&problem, &config, &vec![true; problem.n()]);
            let scale = credit.iter().map(|c| c.abs()).fold(0.0, f64::max);
            // Values are the positive credits, scaled together to at most the loss.
            let loss = scores.loss.unwrap();
            let positive: f64 = scores.groups.iter().map(|s| s.b.max(0.0)).sum();
            let cap = if loss > 0.0 && positive > loss {
                loss / positive
            } else {
                1.0
            };
            for (g, s) in scores.groups.iter().enumerate() {
                let what = format!("{} {optimizer:?} group {g}", be.name);
                check_close(s.b, credit[g], scale, &what);
                assert_eq!(s.value, s.b.max(0.0) * cap);
                assert!(s.is_reliable());
            }
            assert_eq!(scores.cost.backward_passes, 6);
            // The allocation is the first-order share of the run's loss change.
            let drop = problem.loss_at(&problem.w) - problem.loss_at(&w_end);
            let total: f64 = credit.iter().sum();
            assert!(total > 0.0 && drop > 0.0, "the run must learn something");
            assert!(
                (scores.loss.unwrap() - problem.loss_at(&problem.w)).abs()
                    < 1e-4 * problem.loss_at(&problem.w).abs().max(1.0)
            );
        }
    }
}

#[test]
fn a_group_with_its_own_rate_runs_at_it() {
    for be in backends() {
        // Coupled groups: group 1's faster steps change every other group's gradients too.
        let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 29);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model).with_learning_rate(1, 0.2);
        assert_eq!(groups.learning_rate(1), Some(0.2));
        assert_eq!(groups.learning_rate(0), None);
        // Kept through a subset, in the subset's order.
        assert_eq!(groups.subset(&[1, 0]).learning_rate(0), Some(0.2));
        for optimizer in [RunOptimizer::Sgd, RunOptimizer::adam()] {
            let config = ShortRun {
                steps: 5,
                learning_rate: 0.05,
                optimizer,
                value: ShortRunValue::Allocation,
                held_out: 0,
            };
            let scores = config
                .estimate(&model, std::slice::from_ref(&batch), &groups)
                .unwrap();
            let rates = [0.05, 0.2, 0.05, 0.05];
            let (credit, _) = host_run_at(&problem, &config, &vec![true; problem.n()], &rates);
            let (uniform, _) = host_run(&problem, &config, &vec![true; problem.n()]);
            let scale = credit.iter().map(|c| c.abs()).fold(0.0, f64::max);
            for (g, s) in scores.groups.iter().enumerate() {
                check_close(
                    s.b,
                    credit[g],
                    scale,
                    &format!("{} {optimizer:?} group {g}", be.name),
                );
            }
            // And the rate made a difference the check can see.
            assert!(
                (credit[1] - uniform[1]).abs() > 1e-2 * scale,
                "{optimizer:?}"
            );
        }
    }
}

#[test]
fn alone_is_each_groups_own_loss_drop() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2], true, 29);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let config = ShortRun {
            steps: 4,
            learning_rate: 0.05,
            value: ShortRunValue::Alone,
            ..Default::default()
        };
        let scores = config.estimate(&model, &[batch], &groups).unwrap();
        let before = problem.loss_at(&problem.w);
        let mut start = 0;
        let drops: Vec<f64> = problem
            .sizes
            .iter()
            .map(|&s| {
                let moving: Vec<bool> = (0..problem.n())
                    .map(|i| (start..start + s).contains(&i))
                    .collect();
                start += s;
                before - problem.loss_at(&host_run(&problem, &config, &moving).1)
            })
            .collect();
        let scale = drops.iter().map(|d| d.abs()).fold(0.0, f64::max);
        for (g, s) in scores.groups.iter().enumerate() {
            check_close(s.b, drops[g], scale, &format!("{} group {g}", be.name));
        }
        // K runs of 4 steps, and one evaluation per group plus the first.
        assert_eq!(scores.cost.backward_passes, 3 * 4);
        assert_eq!(scores.cost.forward_passes, 3 * 4 + 3 + 1);
    }
}

#[test]
fn bad_settings_and_divergence_are_typed_errors() {
    let problem = QuadraticProblem::random(&[2, 2], false, 3);
    let device = burn::tensor::Device::flex();
    let model = problem.model(&device);
    let batch = problem.batch(&device, 1.0);
    let groups = per_tensor(&model);
    let run = |config: ShortRun| config.estimate(&model, std::slice::from_ref(&batch), &groups);
    for (config, name) in [
        (ShortRun::new().with_steps(0), "steps"),
        (ShortRun::new().with_learning_rate(-1.0), "learning_rate"),
        (
            ShortRun::new().with_optimizer(RunOptimizer::Adam {
                beta_1: 1.0,
                beta_2: 0.999,
                epsilon: 1e-8,
            }),
            "beta_1",
        ),
    ] {
        match run(config) {
            Err(EstimateError::InvalidSetting { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: expected InvalidSetting, got {other:?}"),
        }
    }
    // SGD with a huge rate on a quadratic diverges to infinity within a few steps.
    let diverging = ShortRun {
        steps: 50,
        learning_rate: 1e6,
        optimizer: RunOptimizer::Sgd,
        ..Default::default()
    };
    assert!(matches!(
        run(diverging),
        Err(EstimateError::NonFiniteRun { .. })
    ));
}

/// The one-step value of every group at `w` along Adam's first step, in closed form:
/// `g = G / (|G| + 1e-8)`, `b_k = G_k . g_k`, `a_k = g_k^T A_kk g_k`, `v_k = b_k^2 / 2a_k`.
fn one_step_values(problem: &QuadraticProblem, w: &[f64]) -> Vec<f64> {
    let n = problem.n();
    let grad = problem.gradient_at(w);
    let dir: Vec<f64> = grad.iter().map(|g| g / (g.abs() + 1e-8)).collect();
    let mut start = 0;
    problem
        .sizes
        .iter()
        .map(|&s| {
            let r = start..start + s;
            start += s;
            let b: f64 = r.clone().map(|i| grad[i] * dir[i]).sum();
            let a: f64 = r
                .clone()
                .map(|i| {
                    dir[i]
                        * r.clone()
                            .map(|j| problem.a[i * n + j] * dir[j])
                            .sum::<f64>()
                })
                .sum();
            if b > 0.0 && a > 0.0 {
                b * b / (2.0 * a)
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn probe_run_sums_the_closed_form_values_along_the_host_run() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 31);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let before = snapshot(&model);
        let run = ProbeRun::new()
            .with_steps(6)
            .with_learning_rate(0.05)
            .with_checkpoints(3);
        let scores = run
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        // Checkpoints after 0, 3 and 6 steps of the same Adam run, computed on the host.
        let config = ShortRun {
            steps: 3,
            learning_rate: 0.05,
            ..Default::default()
        };
        let all = vec![true; problem.n()];
        let w3 = host_run(&problem, &config, &all).1;
        let w6 = host_run(&problem, &config.clone().with_steps(6), &all).1;
        let mut want = vec![0.0; problem.sizes.len()];
        for w in [&problem.w, &w3, &w6] {
            for (acc, v) in want.iter_mut().zip(one_step_values(&problem, w)) {
                *acc += v;
            }
        }
        let scale = want.iter().fold(0.0f64, |m, v| m.max(*v));
        for (g, s) in scores.groups.iter().enumerate() {
            assert!(
                (s.value - want[g]).abs() <= 2e-3 * scale,
                "{} group {g}: {} vs host {}",
                be.name,
                s.value,
                want[g]
            );
        }
        // 6 steps, then 3 exact probes of 4 groups.
        assert_eq!(scores.cost.backward_passes, 6 + 3 * (1 + 2 * 4));
        assert_eq!(snapshot(&model), before, "the model must not change");
        // One checkpoint: the exact probe along Adam's step, at the user's weights.
        let single = ProbeRun::new()
            .with_checkpoints(1)
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        let probe = GradientProbe::exact()
            .with_direction(Direction::adam())
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        for (a, b) in single.groups.iter().zip(&probe.groups) {
            assert_eq!(a.value, b.value, "{}", a.name);
        }
        assert!(matches!(
            ProbeRun::new().with_checkpoints(0).estimate(
                &model,
                std::slice::from_ref(&batch),
                &groups
            ),
            Err(EstimateError::InvalidSetting {
                name: "checkpoints",
                ..
            })
        ));
    }
}

#[test]
fn trapezoid_allocation_is_exact_on_a_quadratic() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 37);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        // A rate large enough that some steps overshoot along steep directions.
        let config = ShortRun {
            steps: 8,
            learning_rate: 0.3,
            value: ShortRunValue::Trapezoid,
            ..Default::default()
        };
        let scores = config
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        // The host trajectory, and 1/2 (G(w_t) + G(w_t+1)) . (w_t - w_t+1) per group.
        let trajectory = host_trajectory(&problem, &config);
        let want = trapezoid_credits(&problem.sizes, &trajectory, |w| problem.gradient_at(w));
        let drop = problem.loss_at(&problem.w) - problem.loss_at(&trajectory[config.steps]);
        let scale = want.iter().map(|d| d.abs()).fold(drop.abs(), f64::max);
        for (k, s) in scores.groups.iter().enumerate() {
            check_close(s.b, want[k], scale, &format!("{} group {k}", be.name));
        }
        // Exact for a quadratic: the credits add up to the loss change of the run.
        let total: f64 = want.iter().sum();
        assert!((total - drop).abs() <= 1e-9 * scale, "{total} vs {drop}");
        let got: f64 = scores.groups.iter().map(|g| g.b).sum();
        check_close(got, drop, scale, &format!("{} total", be.name));
        // The first-order allocation is off by the curvature of the steps.
        let first = ShortRun {
            value: ShortRunValue::Allocation,
            ..config.clone()
        }
        .estimate(&model, std::slice::from_ref(&batch), &groups)
        .unwrap();
        let first_total: f64 = first.groups.iter().map(|g| g.b).sum();
        assert!(
            (first_total - drop).abs() > 0.05 * drop.abs(),
            "{first_total} vs {drop}: the instance must make the first-order rule err"
        );
        assert_eq!(scores.cost.backward_passes, config.steps as u64 + 1);
    }
}

#[test]
fn held_out_credits_are_the_exact_share_of_the_held_out_loss_change() {
    let device = burn::tensor::Device::flex().autodiff();
    // Train on one quadratic, hold out another over the same weights (other A and c).
    let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 41);
    let other = QuadraticProblem::random(&[3, 5, 2, 4], true, 43);
    let model = problem.model(&device);
    let groups = per_tensor(&model);
    let train = problem.batch(&device, 1.0);
    let batches = [train.clone(), other.batch(&device, 1.0)];
    for optimizer in [RunOptimizer::Sgd, RunOptimizer::adam()] {
        let config = ShortRun {
            steps: 6,
            learning_rate: 0.1,
            optimizer,
            value: ShortRunValue::Trapezoid,
            held_out: 1,
        };
        let scores = config.estimate(&model, &batches, &groups).unwrap();
        // The run is the one on the training quadratic alone; the credits use the held-out
        // quadratic's gradient along it.
        let trajectory = host_trajectory(&problem, &config);
        let want = trapezoid_credits(&problem.sizes, &trajectory, |w| other.gradient_at(w));
        let drop = other.loss_at(&problem.w) - other.loss_at(&trajectory[config.steps]);
        let scale = want.iter().map(|d| d.abs()).fold(drop.abs(), f64::max);
        for (k, s) in scores.groups.iter().enumerate() {
            check_close(s.b, want[k], scale, &format!("{optimizer:?} group {k}"));
        }
        let got: f64 = scores.groups.iter().map(|g| g.b).sum();
        check_close(
            got,
            drop,
            scale,
            &format!("{optimizer:?}: the held-out loss change"),
        );
        // And it differs from the training allocation: the held-out loss is another one.
        let trained = ShortRun {
            held_out: 0,
            ..config.clone()
        }
        .estimate(&model, std::slice::from_ref(&train), &groups)
        .unwrap();
        assert!(
            scores
                .groups
                .iter()
                .zip(&trained.groups)
                .any(|(h, t)| (h.b - t.b).abs() > 1e-2 * scale),
            "{optimizer:?}"
        );
        assert!((scores.loss.unwrap() - other.loss_at(&problem.w)).abs() < 1e-4 * scale.max(1.0));
        // Per step: one training gradient and one held-out gradient, plus the closing one.
        assert_eq!(scores.cost.backward_passes, 2 * config.steps as u64 + 1);
    }
    // Every batch held out leaves nothing to train on.
    let err = ShortRun::new()
        .with_held_out(2)
        .estimate(&model, &batches, &groups)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EstimateError::InvalidSetting {
                name: "held_out",
                ..
            }
        ),
        "{err}"
    );
}

/// The default value never predicts a reduction larger than the loss, on any subset of the
/// test models, even for a run at a rate that overshoots (where the unscaled positive credits
/// add up to a thousand times the loss); the common scale keeps the credits' ratios.
#[test]
fn the_default_never_predicts_more_than_the_loss() {
    use adapeft_importance::AnyEstimator;
    let device = burn::tensor::Device::flex().autodiff();
    let check = |scores: adapeft_importance::Scores, what: &str| {
        let loss = scores.loss.unwrap();
        let k = scores.groups.len();
        for mask in 1u32..(1 << k) {
            let predicted: f64 = (0..k)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| scores.groups[i].value)
                .sum();
            assert!(
                predicted <= loss * (1.0 + 1e-12),
                "{what}: subset {mask:b} predicted {predicted} > loss {loss}"
            );
        }
        // One factor for all: values stay proportional to the positive credits.
        let scale = scores
            .groups
            .iter()
            .find(|g| g.b > 0.0)
            .map(|g| g.value / g.b)
            .unwrap();
        for g in &scores.groups {
            let want = g.b.max(0.0) * scale;
            assert!(
                (g.value - want).abs() <= 1e-12 * want.abs().max(1e-300),
                "{what}"
            );
        }
        scale
    };
    let mut capped = 0;
    for lr in [1e-2, 1e-1, 1.0, 3.0] {
        let estimator = match AnyEstimator::default() {
            AnyEstimator::ShortRun(run) => run.with_learning_rate(lr),
            other => panic!("the default changed to {other}: update this test"),
        };
        for seed in 0..2 {
            let model = Mlp::new(6, 16, 3, &device);
            let batches: Vec<_> = (0..4)
                .map(|i| regression_batch(32, 6, 3, seed * 10 + i, &device))
                .collect();
            let groups = per_tensor(&model);
            let scores = estimator.estimate(&model, &batches, &groups).unwrap();
            if check(scores, &format!("mlp lr {lr} seed {seed}")) < 1.0 {
                capped += 1;
            }
            let problem = LogisticProblem::random(64, 5, 4, seed);
            let model = problem.model(&device);
            let groups = per_tensor(&model);
            let scores = estimator
                .estimate(&model, &[problem.batch(&device, 1.0)], &groups)
                .unwrap();
            if check(scores, &format!("logistic lr {lr} seed {seed}")) < 1.0 {
                capped += 1;
            }
        }
    }
    assert!(
        capped > 0,
        "some run must overshoot for the test to mean anything"
    );
}
