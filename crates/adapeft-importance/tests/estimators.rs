//! The estimators against independent truth: closed-form curvature of a quadratic and of a
//! multinomial logistic regression, and a dense finite-difference Hessian of a small MLP.
//! Every test runs on each backend `adapeft_testing::backends()` gives (`ADAPEFT_TEST_BACKENDS`).

use std::cell::Cell;

use adapeft_importance::{
    Baseline, Direction, EstimateError, Estimator, ForwardProbe, GradientProbe, ProbeStep, Quality,
    Scores, ShortRun, ShortRunValue, SlopeEstimate,
};
use adapeft_testing::*;
use burn::module::Module;
use burn::tensor::Device;

fn assert_close(scores: &Scores, truth: &[(f64, f64)], tol: f64, what: &str) {
    assert_eq!(scores.groups.len(), truth.len());
    for (s, &(b, a)) in scores.groups.iter().zip(truth) {
        assert!(
            rel_err(s.b, b) < tol,
            "{what}: group {} b = {} vs truth {} (rel err {:.2e})",
            s.name,
            s.b,
            b,
            rel_err(s.b, b)
        );
        assert!(
            rel_err(s.a, a) < tol,
            "{what}: group {} a = {} vs truth {} (rel err {:.2e})",
            s.name,
            s.a,
            a,
            rel_err(s.a, a)
        );
        assert!(
            s.is_reliable(),
            "{what}: group {} unreliable: {:?}",
            s.name,
            s.unreliable
        );
        assert!(rel_err(s.value, b * b / (2.0 * a)) < 3.0 * tol);
    }
}

#[test]
fn quadratic_coupled_forward_and_exact_gradient_probe_recover_a_and_b() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2, 6], true, 7);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let truth = problem.truth(&problem.gradient());

        let fwd = ForwardProbe::default()
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        assert_close(&fwd, &truth, 1e-3, &format!("{} forward", be.name));
        for s in &fwd.groups {
            let Quality::R2(r2) = s.quality else {
                panic!("forward probe reports R^2")
            };
            assert!(r2 > 0.9999, "{}", r2);
        }
        let exact = GradientProbe::exact()
            .estimate(&model, &[batch], &groups)
            .unwrap();
        assert_close(&exact, &truth, 1e-3, &format!("{} exact gradient", be.name));
    }
}

#[test]
fn quadratic_block_diagonal_random_signs_recover_a_and_b() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[4, 3, 5, 2, 4, 3], false, 11);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let truth = problem.truth(&problem.gradient());
        let scores = random_signs(4, 3)
            .estimate(&model, &[batch], &groups)
            .unwrap();
        assert_close(&scores, &truth, 1e-3, &format!("{} random signs", be.name));
        // 6 groups > 4 probes: one gradient and 2 per probe, whatever the number of groups.
        assert_eq!(scores.cost.backward_passes, 1 + 2 * 4);
    }
}

#[test]
fn quadratic_adam_direction_matches_closed_form() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 4, 5], true, 5);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let eps = 1e-8;
        let dir: Vec<f64> = problem
            .gradient()
            .iter()
            .map(|g| g / (g.abs() + eps))
            .collect();
        let truth = problem.truth(&dir);
        // b = sum |G|^2 / (|G| + eps) ~ ||G||_1, no longer ||G||^2.
        let b_sq_norm: f64 = problem.gradient()[..3].iter().map(|g| g * g).sum();
        assert!(rel_err(truth[0].0, b_sq_norm) > 0.05);
        let scores = GradientProbe {
            direction: Direction::adam(),
            ..GradientProbe::exact()
        }
        .estimate(&model, &[batch], &groups)
        .unwrap();
        assert_close(&scores, &truth, 1e-3, &format!("{} adam", be.name));
    }
}

#[test]
fn logistic_regression_forward_and_exact_gradient_probe_within_two_percent() {
    for be in backends() {
        let problem = LogisticProblem::random(64, 5, 4, 1);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        assert_eq!(groups.groups()[0].name, "linear.weight");
        assert_eq!(groups.groups()[1].name, "linear.bias");
        let truth = problem.truth(&model);

        let fwd = ForwardProbe::default()
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        assert_close(&fwd, &truth, 0.02, &format!("{} forward", be.name));
        let exact = GradientProbe::exact()
            .estimate(&model, &[batch], &groups)
            .unwrap();
        assert_close(&exact, &truth, 0.02, &format!("{} exact gradient", be.name));
    }
}

#[test]
fn forward_probe_step_rule_is_scale_free() {
    // Multiplying the loss by s multiplies b by s^2 and a by s^3: the rule h = rho |L| / b
    // keeps the probed loss changes a fixed fraction of the loss, so float32 precision holds at
    // every scale.
    for be in backends() {
        let problem = LogisticProblem::random(64, 5, 4, 2);
        let model = problem.model(&be.device);
        let groups = per_tensor(&model);
        let truth = problem.truth(&model);
        for scale in [1e-4, 1e4] {
            let batch = problem.batch(&be.device, scale);
            let scaled: Vec<(f64, f64)> = truth
                .iter()
                .map(|&(b, a)| (b * scale * scale, a * scale.powi(3)))
                .collect();
            let fwd = ForwardProbe::default()
                .estimate(&model, &[batch], &groups)
                .unwrap();
            // flex is deterministic: 2%. lavapipe's reductions are not, and at scale 1e-4
            // the bias group's probed loss changes (1% of a loss of ~1e-4) come within a few
            // thousand float32 roundings of the loss: its curvature came within 2% in one run
            // there and 2.8% off in the next. (A forward-probe step rule that holds for such
            // small-value groups is part of the selection-quality issue.)
            let tolerance = if be.name == "flex" { 0.02 } else { 0.05 };
            assert_close(
                &fwd,
                &scaled,
                tolerance,
                &format!("{} scale {scale:e}", be.name),
            );
        }
        // The same probe with a fixed step that is right at scale 1 is lost in rounding at 1e-4.
        let batch = problem.batch(&be.device, 1e-4);
        let fixed = ForwardProbe {
            step: ProbeStep::Fixed(1e-3),
            ..Default::default()
        }
        .estimate(&model, &[batch], &groups)
        .unwrap();
        let weight_a = truth[0].1 * 1e-12;
        assert!(
            rel_err(fixed.groups[0].a, weight_a) > 0.02 || !fixed.groups[0].is_reliable(),
            "a fixed step should not be accurate at scale 1e-4"
        );
    }
}

#[test]
fn logistic_random_signs_are_unbiased_with_honest_standard_errors() {
    for be in backends() {
        let problem = LogisticProblem::random(64, 5, 4, 3);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let truth = problem.truth(&model);
        let seeds = 60;
        let mut sums = [0.0; 2];
        let mut covered = [0; 2];
        for seed in 0..seeds {
            let scores = random_signs(32, seed)
                .estimate(&model, std::slice::from_ref(&batch), &groups)
                .unwrap();
            for (g, s) in scores.groups.iter().enumerate() {
                let Quality::StdErr(se) = s.quality else {
                    panic!("random signs report a standard error")
                };
                sums[g] += s.a;
                if (s.a - truth[g].1).abs() <= 2.0 * se {
                    covered[g] += 1;
                }
            }
        }
        for g in 0..2 {
            let mean = sums[g] / seeds as f64;
            assert!(
                rel_err(mean, truth[g].1) < 0.02,
                "{}: group {g} mean a {mean} vs {}",
                be.name,
                truth[g].1
            );
            assert!(
                covered[g] as f64 >= 0.9 * seeds as f64,
                "{}: group {g} truth within 2 standard errors in only {}/{seeds} seeds",
                be.name,
                covered[g]
            );
        }
    }
}

#[test]
fn mlp_against_dense_finite_difference_hessian() {
    for be in backends() {
        let device: Device = be.device.clone();
        // Fixed weights: with burn's unseeded initialisation an occasional draw puts a
        // tensor's curvature near zero, where a relative tolerance means nothing.
        let model = with_random_params(&Mlp::new(3, 4, 2, &device), 21, 0.8, &device);
        let batch = regression_batch(16, 3, 2, 9, &device);
        let loss = |m: &Mlp| adapeft_importance::Objective::loss(m, &batch);
        let (hess, sizes) = dense_hessian(&model, &device, 1e-2, loss);
        let grad: Vec<f64> = gradient_at(&model, &flat_params(&model), &device, loss).concat();
        let n = grad.len();
        // Closed form per tensor from the dense Hessian's diagonal blocks.
        let mut truth = vec![];
        let mut start = 0;
        for s in sizes {
            let r = start..start + s;
            let b: f64 = r.clone().map(|i| grad[i] * grad[i]).sum();
            let mut a = 0.0;
            for i in r.clone() {
                for j in r.clone() {
                    a += grad[i] * hess[i * n + j] * grad[j];
                }
            }
            truth.push((b, a));
            start += s;
        }
        let groups = per_tensor(&model);
        assert_eq!(groups.len(), 4);
        let exact = GradientProbe::exact()
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        assert_close(&exact, &truth, 0.01, &format!("{} exact gradient", be.name));
        let fwd = ForwardProbe::default()
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        assert_close(&fwd, &truth, 0.02, &format!("{} forward", be.name));
    }
}

#[test]
fn pass_counts_are_4k_plus_1_forward_and_1_plus_2p_backward() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[2, 3, 4, 2, 3], true, 4);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let k = groups.len() as u64;
        let calls = Cell::new(0u64);
        let counting = |m: &Quadratic, b: &QuadraticBatch| {
            calls.set(calls.get() + 1);
            adapeft_importance::Objective::loss(m, b)
        };

        let fwd = ForwardProbe::new()
            .with_step(ProbeStep::LossChange(0.01))
            .estimate_with(&model, std::slice::from_ref(&batch), &groups, &counting)
            .unwrap();
        assert_eq!(calls.get(), 4 * k + 1);
        assert_eq!(fwd.cost.forward_passes, 4 * k + 1);
        assert_eq!(fwd.cost.backward_passes, 1);

        for p in [2u64, 3, 8] {
            calls.set(0);
            let scores = random_signs(p as usize, 0)
                .estimate_with(&model, std::slice::from_ref(&batch), &groups, &counting)
                .unwrap();
            assert_eq!(calls.get(), 1 + 2 * p);
            assert_eq!(scores.cost.backward_passes, 1 + 2 * p);
            assert_eq!(scores.cost.forward_passes, 1 + 2 * p);
        }

        calls.set(0);
        let exact = GradientProbe::exact()
            .estimate_with(&model, std::slice::from_ref(&batch), &groups, &counting)
            .unwrap();
        assert_eq!(calls.get(), 1 + 2 * k);
        assert_eq!(exact.cost.backward_passes, 1 + 2 * k);

        // Auto takes the exact mode when K <= P or 2K is within the exact budget, random
        // signs otherwise.
        let auto = GradientProbe {
            probes: k as usize,
            ..Default::default()
        };
        assert!(auto.runs_exact(k as usize));
        let auto_scores = auto
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        assert!(
            auto_scores
                .groups
                .iter()
                .all(|s| s.quality == Quality::Exact)
        );
        let auto = GradientProbe {
            probes: 2,
            ..Default::default()
        };
        assert!(auto.runs_exact(k as usize));
        let auto = GradientProbe {
            probes: 2,
            exact_budget: 2 * k as usize - 1,
            ..Default::default()
        };
        assert!(!auto.runs_exact(k as usize));

        // Several batches: every pass runs once per batch.
        calls.set(0);
        let two = [batch.clone(), batch];
        let scores = random_signs(2, 0)
            .estimate_with(&model, &two, &groups, &counting)
            .unwrap();
        assert_eq!(calls.get(), 2 * (1 + 2 * 2));
        assert_eq!(scores.cost.backward_passes, 2 * (1 + 2 * 2));
    }
}

type EstimateFn = Box<
    dyn Fn(&Mlp, &[RegressionBatch], &adapeft_importance::Groups) -> Result<Scores, EstimateError>,
>;

fn all_estimators() -> Vec<(String, EstimateFn)> {
    fn boxed<E: Estimator + 'static>(e: E) -> EstimateFn {
        Box::new(move |m, b, g| e.estimate(m, b, g))
    }
    vec![
        ("forward".into(), boxed(ForwardProbe::default())),
        ("exact".into(), boxed(GradientProbe::exact())),
        ("random".into(), boxed(random_signs(3, 1))),
        (
            "two-batch".into(),
            boxed(GradientProbe {
                slope: SlopeEstimate::TwoBatch,
                ..random_signs(3, 1)
            }),
        ),
        ("grad-norm".into(), boxed(Baseline::GradientNorm)),
        ("fisher".into(), boxed(Baseline::Fisher)),
        ("taylor".into(), boxed(Baseline::Taylor)),
        ("magnitude".into(), boxed(Baseline::Magnitude)),
        (
            "random-baseline".into(),
            boxed(Baseline::Random { seed: 3 }),
        ),
        ("short-run".into(), boxed(ShortRun::new().with_steps(3))),
        (
            "newton".into(),
            boxed(adapeft_importance::NewtonProbe::new().with_cg_steps(2)),
        ),
        (
            "short-run-alone".into(),
            boxed(ShortRun {
                steps: 2,
                value: ShortRunValue::Alone,
                ..Default::default()
            }),
        ),
    ]
}

#[test]
fn every_estimator_leaves_the_model_bit_identical() {
    for be in backends() {
        // Autodiff device, one layer frozen: both states must survive.
        let device = be.device.clone().autodiff();
        let model = Mlp::new(3, 5, 2, &device);
        let model = Mlp {
            hidden: model.hidden.no_grad(),
            out: model.out,
        };
        let batches = [
            regression_batch(8, 3, 2, 1, &device),
            regression_batch(8, 3, 2, 2, &device),
        ];
        let groups = per_tensor(&model);
        let before = snapshot(&model);
        assert!(
            !before[0].2 && before[2].2,
            "the test needs mixed require-grad states"
        );
        for (name, estimate) in all_estimators() {
            let scores = estimate(&model, &batches, &groups).unwrap();
            assert_eq!(scores.groups.len(), 4, "{name}");
            assert!(scores.groups.iter().all(|s| s.value.is_finite()), "{name}");
            assert_eq!(
                snapshot(&model),
                before,
                "{}: {name} changed the model",
                be.name
            );
        }
        // A model on a device without autodiff works too, and stays as it was.
        let plain = Mlp::new(3, 5, 2, &be.device);
        let before = snapshot(&plain);
        let batches = [regression_batch(8, 3, 2, 1, &be.device)];
        let scores = GradientProbe::default()
            .estimate(&plain, &batches, &per_tensor(&plain))
            .unwrap();
        assert!(scores.groups.iter().any(|s| s.is_reliable()));
        assert_eq!(snapshot(&plain), before);
    }
}

#[test]
fn baselines_match_their_definitions() {
    for be in backends() {
        let device = be.device.clone();
        // Fixed weights: with burn's unseeded initialisation an occasional draw makes
        // `w . G` cancel to near zero, where a relative tolerance means nothing.
        let model = with_random_params(&Mlp::new(3, 4, 2, &device), 5, 0.8, &device);
        let b1 = regression_batch(8, 3, 2, 1, &device);
        let b2 = regression_batch(8, 3, 2, 2, &device);
        let groups = per_tensor(&model);
        let w = flat_params(&model);
        let g1 = gradient_at(&model, &w, &device, |m: &Mlp| {
            adapeft_importance::Objective::loss(m, &b1)
        });
        let g2 = gradient_at(&model, &w, &device, |m: &Mlp| {
            adapeft_importance::Objective::loss(m, &b2)
        });
        let batches = [b1, b2];
        let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
        let value = |e: &dyn Fn(&Mlp, &[RegressionBatch]) -> Scores| -> Vec<f64> {
            e(&model, &batches).groups.iter().map(|s| s.value).collect()
        };
        let fisher = value(&|m, b| Baseline::Fisher.estimate(m, b, &groups).unwrap());
        let norm = value(&|m, b| Baseline::GradientNorm.estimate(m, b, &groups).unwrap());
        let taylor = value(&|m, b| Baseline::Taylor.estimate(m, b, &groups).unwrap());
        let magnitude = value(&|m, b| Baseline::Magnitude.estimate(m, b, &groups).unwrap());
        for t in 0..4 {
            let mean: Vec<f64> = g1[t]
                .iter()
                .zip(&g2[t])
                .map(|(a, b)| 0.5 * (a + b))
                .collect();
            assert!(rel_err(fisher[t], sq(&g1[t]) + sq(&g2[t])) < 1e-4);
            assert!(rel_err(norm[t], sq(&mean)) < 1e-4);
            let dot: f64 = w[t].iter().zip(&mean).map(|(a, b)| a * b).sum();
            assert!(rel_err(taylor[t], dot.abs()) < 1e-4);
            let l1: f64 = w[t].iter().map(|x| x.abs()).sum();
            assert!(rel_err(magnitude[t], l1) < 1e-5);
        }
        let r1 = Baseline::Random { seed: 9 }
            .estimate(&model, &batches, &groups)
            .unwrap();
        let r2 = Baseline::Random { seed: 9 }
            .estimate(&model, &batches, &groups)
            .unwrap();
        let r3 = Baseline::Random { seed: 10 }
            .estimate(&model, &batches, &groups)
            .unwrap();
        assert_eq!(r1.groups, r2.groups);
        assert_ne!(r1.groups, r3.groups);
        assert_eq!(r1.cost.forward_passes, 0);
    }
}

#[test]
fn two_batch_slope_is_the_product_of_per_half_slopes() {
    for be in backends() {
        let device = be.device.clone();
        // Fixed weights, so that every run sees the same instance.
        let model = with_random_params(&Mlp::new(3, 4, 2, &device), 5, 0.8, &device);
        let b1 = regression_batch(8, 3, 2, 1, &device);
        let b2 = regression_batch(8, 3, 2, 2, &device);
        let w = flat_params(&model);
        let g1 = gradient_at(&model, &w, &device, |m: &Mlp| {
            adapeft_importance::Objective::loss(m, &b1)
        });
        let g2 = gradient_at(&model, &w, &device, |m: &Mlp| {
            adapeft_importance::Objective::loss(m, &b2)
        });
        let groups = per_tensor(&model);
        let exact = GradientProbe::exact();
        let plain = exact
            .estimate(&model, &[b1.clone(), b2.clone()], &groups)
            .unwrap();
        let two = GradientProbe {
            slope: SlopeEstimate::TwoBatch,
            ..exact
        }
        .estimate(&model, &[b1.clone(), b2], &groups)
        .unwrap();
        let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
        for t in 0..4 {
            let (p1, p2) = (sq(&g1[t]), sq(&g2[t]));
            let s = &two.groups[t];
            assert!(rel_err(s.b, 0.5 * (p1 + p2)) < 1e-4);
            assert_eq!(s.a, plain.groups[t].a);
            if s.is_reliable() {
                assert!(rel_err(s.value, p1 * p2 / (2.0 * s.a)) < 1e-4);
            }
        }
        // One batch is not enough.
        let err = GradientProbe {
            slope: SlopeEstimate::TwoBatch,
            ..GradientProbe::exact()
        }
        .estimate(&model, &[b1], &groups)
        .unwrap_err();
        assert!(matches!(
            err,
            EstimateError::TooFewBatches {
                needed: 2,
                got: 1,
                ..
            }
        ));
    }
}
