//! The cross-group curvature `A_kl = g_k^T H_kl g_l` of the gradient probe against closed
//! forms: a coupled quadratic (every entry exact) and multinomial logistic regression (the
//! weight-bias cross term `(1/n) sum_i z_W,i^T (diag p_i - p_i p_i^T) z_b`).
//! Every test runs on each backend `adapeft_testing::backends()` gives.

use adapeft_importance::{Baseline, Estimator, ForwardProbe, GradientProbe};
use adapeft_testing::*;
use burn::module::Module;

#[test]
fn exact_probe_recovers_every_cross_term_of_a_coupled_quadratic() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 17);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let truth = problem.cross_truth(&problem.gradient());
        let scores = GradientProbe::exact()
            .estimate(&model, &[batch], &groups)
            .unwrap();
        let a = scores
            .curvature()
            .expect("the exact probe returns the matrix");
        assert_eq!(a.len(), 4);
        let scale = (0..4).map(|k| truth[k * 4 + k]).fold(0.0, f64::max);
        for k in 0..4 {
            assert_eq!(
                a.get(k, k),
                scores.groups[k].a,
                "{}: diagonal is a_k",
                be.name
            );
            for l in 0..4 {
                assert_eq!(a.get(k, l), a.get(l, k));
                // Cross terms can be near zero: compare against the matrix's scale.
                assert!(
                    (a.get(k, l) - truth[k * 4 + l]).abs() < 1e-3 * scale,
                    "{}: A[{k}][{l}] = {} vs {}",
                    be.name,
                    a.get(k, l),
                    truth[k * 4 + l]
                );
            }
        }
        assert!(
            (0..4).any(|k| (0..4).any(|l| k != l && truth[k * 4 + l].abs() > 0.05 * scale)),
            "the instance must have sizable cross terms to test anything"
        );
    }
}

#[test]
fn logistic_weight_bias_cross_term_within_two_percent_of_closed_form() {
    for be in backends() {
        for seed in [1, 2, 3] {
            let problem = LogisticProblem::random(64, 5, 4, seed);
            let model = problem.model(&be.device);
            let batch = problem.batch(&be.device, 1.0);
            let groups = per_tensor(&model);
            assert_eq!(groups.groups()[0].name, "linear.weight");
            let truth = problem.cross_truth(&model);
            let scores = GradientProbe::exact()
                .estimate(&model, &[batch], &groups)
                .unwrap();
            let a = scores.curvature().unwrap();
            assert!(
                rel_err(a.get(0, 1), truth) < 0.02,
                "{} seed {seed}: A_Wb = {} vs closed form {truth}",
                be.name,
                a.get(0, 1)
            );
        }
    }
}

/// Random signs on the quadratic (where every probe is exact up to rounding): the estimate of
/// each entry lies within three standard errors of the truth in nearly every seed, and the
/// mean over seeds of the diagonal is unbiased.
#[test]
fn random_sign_cross_terms_carry_honest_standard_errors() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 17);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let truth = problem.cross_truth(&problem.gradient());
        let seeds = 20;
        let mut within = 0;
        let mut entries = 0;
        for seed in 0..seeds {
            let scores = random_signs(32, seed)
                .estimate(&model, std::slice::from_ref(&batch), &groups)
                .unwrap();
            let a = scores.curvature().expect("random signs over 4 groups");
            for k in 0..4 {
                for l in 0..4 {
                    let se = a
                        .std_err(k, l)
                        .expect("random signs report standard errors");
                    entries += 1;
                    // Shrinkage moves an estimate by at most one standard error.
                    if (a.get(k, l) - truth[k * 4 + l]).abs() <= 3.0 * se + 1e-9 {
                        within += 1;
                    }
                }
            }
        }
        assert!(
            within as f64 >= 0.95 * entries as f64,
            "{}: only {within}/{entries} entries within 3 standard errors",
            be.name
        );
    }
}

#[test]
fn only_the_gradient_probe_returns_curvature() {
    let problem = LogisticProblem::random(32, 3, 3, 5);
    let device = burn::tensor::Device::flex();
    let model = problem.model(&device);
    let batch = problem.batch(&device, 1.0);
    let groups = per_tensor(&model);
    let fwd = ForwardProbe::default()
        .estimate(&model, std::slice::from_ref(&batch), &groups)
        .unwrap();
    assert!(fwd.curvature().is_none());
    let base = Baseline::GradientNorm
        .estimate(&model, std::slice::from_ref(&batch), &groups)
        .unwrap();
    assert!(base.curvature().is_none());
    // Serialised scores keep the matrix, and older JSON without it still reads.
    let exact = GradientProbe::exact()
        .estimate(&model, &[batch], &groups)
        .unwrap();
    let json = serde_json::to_string(&exact).unwrap();
    let back: adapeft_importance::Scores = serde_json::from_str(&json).unwrap();
    assert_eq!(back.curvature(), exact.curvature());
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value.as_object_mut().unwrap().remove("curvature");
    let old: adapeft_importance::Scores = serde_json::from_value(value).unwrap();
    assert!(old.curvature().is_none());
}

/// Two bias vectors added to the same logits move the outputs identically: their directions
/// and curvatures coincide (`A_ab = A_aa = A_bb`). The joint value counts them once, the
/// additive value twice.
#[derive(Module, Debug)]
struct TwoBiases {
    linear: burn::nn::Linear,
    first: burn::module::Param<burn::tensor::Tensor<1>>,
    second: burn::module::Param<burn::tensor::Tensor<1>>,
}

impl adapeft_importance::Objective<LabelledBatch> for TwoBiases {
    fn loss(&self, batch: &LabelledBatch) -> burn::tensor::Tensor<1> {
        let logits = self.linear.forward(batch.x.clone())
            + self.first.val().unsqueeze_dim(0)
            + self.second.val().unsqueeze_dim(0);
        burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, batch.y.clone())
    }
}

#[test]
fn redundant_groups_count_once_in_the_joint_value_and_twice_in_the_additive() {
    for be in backends() {
        let problem = LogisticProblem::random(64, 5, 4, 11);
        let device = &be.device;
        let biases = |v: [f64; 4]| burn::module::Param::from_tensor(tensor1(&v, device));
        let model = TwoBiases {
            linear: burn::nn::LinearConfig::new(5, 4)
                .with_bias(false)
                .init(device),
            first: biases([0.3, -0.2, 0.1, 0.0]),
            second: biases([-0.1, 0.4, 0.0, 0.2]),
        };
        let batch = problem.batch(device, 1.0);
        let groups = per_tensor(&model);
        let names: Vec<&str> = groups.groups().iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["linear.weight", "first", "second"]);
        let scores = GradientProbe::exact()
            .estimate(&model, &[batch], &groups)
            .unwrap();
        let (first, second) = (&scores.groups[1], &scores.groups[2]);
        assert!(
            rel_err(first.value, second.value) < 1e-3,
            "the twins score alike"
        );
        let additive = first.value + second.value;
        let joint_one = scores.joint_value(&[1]).unwrap();
        let joint_both = scores.joint_value(&[1, 2]).unwrap();
        assert!(
            rel_err(joint_one, first.value) < 1e-3,
            "{joint_one} vs {}",
            first.value
        );
        assert!(
            rel_err(joint_both, first.value) < 0.01,
            "{}: joint value of the twins {joint_both} vs one twin {}",
            be.name,
            first.value
        );
        assert!(rel_err(additive, 2.0 * joint_both) < 0.01);
        // The weight is not redundant with the biases: adding it adds value.
        let with_weight = scores.joint_value(&[0, 1, 2]).unwrap();
        assert!(with_weight > 1.05 * joint_both);
        assert!(with_weight <= scores.loss.unwrap());
    }
}

/// The joint rates on the twins: the pair shares one Newton step (`eta_1 + eta_2 = b / a` of
/// one twin), where each twin's own rate `b / a` would take it twice.
#[test]
fn redundant_groups_share_one_newton_step_in_the_joint_rates() {
    let problem = LogisticProblem::random(64, 5, 4, 11);
    let device = burn::tensor::Device::flex().autodiff();
    let biases = |v: [f64; 4]| burn::module::Param::from_tensor(tensor1(&v, &device));
    let model = TwoBiases {
        linear: burn::nn::LinearConfig::new(5, 4)
            .with_bias(false)
            .init(&device),
        first: biases([0.3, -0.2, 0.1, 0.0]),
        second: biases([-0.1, 0.4, 0.0, 0.2]),
    };
    let groups = per_tensor(&model);
    let scores = GradientProbe::exact()
        .estimate(&model, &[problem.batch(&device, 1.0)], &groups)
        .unwrap();
    let a = scores.curvature().unwrap();
    let b: Vec<f64> = scores.groups.iter().map(|g| g.b).collect();
    let own = b[1] / a.get(1, 1);
    let eta = a.joint_rates(&b, &[1, 2]);
    assert!(eta.iter().all(|&e| e >= 0.0), "{eta:?}");
    assert!(
        rel_err(eta[0] + eta[1], own) < 0.01,
        "twins' joint rates {eta:?} vs one twin's Newton rate {own}"
    );
}

/// On a coupled quadratic the joint model is exact: the update `-sum_k eta_k g_k` with the
/// joint rates lands where the new gradient is orthogonal to every chosen direction (the
/// minimum over their span), and the loss falls by exactly the joint value.
#[test]
fn joint_rates_reach_the_minimum_over_the_chosen_directions() {
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2, 4], true, 17);
        let model = problem.model(&be.device);
        let groups = per_tensor(&model);
        let scores = GradientProbe::exact()
            .estimate(&model, &[problem.batch(&be.device, 1.0)], &groups)
            .unwrap();
        let a = scores.curvature().unwrap();
        let b: Vec<f64> = scores.groups.iter().map(|g| g.b).collect();
        let n = problem.n();
        let grad = problem.gradient();
        let group_of: Vec<usize> = problem
            .sizes
            .iter()
            .enumerate()
            .flat_map(|(g, &s)| std::iter::repeat_n(g, s))
            .collect();
        for subset in [vec![0, 1, 2, 3], vec![1, 3], vec![2]] {
            let eta = a.joint_rates(&b, &subset);
            assert!(eta.iter().all(|&e| e > 0.0), "{subset:?}: {eta:?}");
            let mut w = problem.w.clone();
            for i in 0..n {
                if let Some(p) = subset.iter().position(|&k| k == group_of[i]) {
                    w[i] -= eta[p] * grad[i];
                }
            }
            let new_grad = problem.gradient_at(&w);
            for &k in &subset {
                let along: f64 = (0..n)
                    .filter(|&i| group_of[i] == k)
                    .map(|i| new_grad[i] * grad[i])
                    .sum();
                assert!(
                    along.abs() < 1e-3 * b[k],
                    "{}: {subset:?}, group {k}: G(w') . g_k = {along} (b_k = {})",
                    be.name,
                    b[k]
                );
            }
            let drop = problem.loss_at(&problem.w) - problem.loss_at(&w);
            let joint = a.joint_value(&b, &subset);
            assert!(
                rel_err(drop, joint) < 1e-3,
                "{}: {subset:?}: drop {drop} vs joint value {joint}",
                be.name
            );
        }
    }
}

/// The active set against brute force: on random positive-definite 3 x 3 matrices with
/// strong couplings, the joint rates maximise `b . eta - 1/2 eta^T A eta` over `eta >= 0`
/// (a fine grid search finds nothing better), and a group the others explain gets rate 0.
#[test]
fn joint_rates_are_the_best_non_negative_rates() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut zeros = 0;
    for case in 0..40 {
        let m: Vec<f64> = (0..9).map(|_| rng.random_range(-1.0..1.0)).collect();
        let rows: Vec<Vec<f64>> = (0..3)
            .map(|i| {
                (0..3)
                    .map(|j| {
                        (0..3).map(|t| m[i * 3 + t] * m[j * 3 + t]).sum::<f64>()
                            + 0.05 * f64::from(u8::from(i == j))
                    })
                    .collect()
            })
            .collect();
        let a = adapeft_importance::Curvature::from_exact_rows(&rows);
        let b: Vec<f64> = (0..3).map(|_| rng.random_range(0.1..1.0)).collect();
        let model = |eta: &[f64]| {
            let lin: f64 = (0..3).map(|k| b[k] * eta[k]).sum();
            let quad: f64 = (0..3)
                .map(|k| (0..3).map(|l| eta[k] * rows[k][l] * eta[l]).sum::<f64>())
                .sum();
            lin - 0.5 * quad
        };
        let eta = a.joint_rates(&b, &[0, 1, 2]);
        assert!(eta.iter().all(|&e| e >= 0.0), "case {case}: {eta:?}");
        zeros += eta.iter().filter(|&&e| e == 0.0).count();
        let got = model(&eta);
        let top = eta.iter().fold(1.0f64, |m, e| m.max(*e)) * 3.0;
        let steps = 60;
        let mut best = f64::NEG_INFINITY;
        for i in 0..=steps {
            for j in 0..=steps {
                for k in 0..=steps {
                    let g = [i, j, k].map(|x| top * f64::from(x) / f64::from(steps));
                    best = best.max(model(&g));
                }
            }
        }
        assert!(
            got >= best - 1e-9 * best.abs().max(1.0),
            "case {case}: rates {eta:?} reach {got}, the grid {best}"
        );
    }
    assert!(zeros > 0, "the cases must exercise the active set");
}

/// `NewtonProbe` on a coupled quadratic (exact Hessian-vector products): with as many
/// conjugate-gradient steps as the group has coordinates, each group's value is its Newton
/// decrement `1/2 G_k^T A_kk^-1 G_k`, solved on the host; one step is the gradient-direction
/// one-step value `||G_k||^4 / 2 G_k^T A_kk G_k`; the value grows with the steps.
#[test]
fn newton_probe_is_the_groups_newton_decrement() {
    use adapeft_importance::NewtonProbe;
    for be in backends() {
        let problem = QuadraticProblem::random(&[3, 5, 2], true, 31);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let groups = per_tensor(&model);
        let n = problem.n();
        let grad = problem.gradient();
        let one_step = problem.truth(&grad);
        let mut start = 0;
        let mut decrements = Vec::new();
        for &s in &problem.sizes {
            let idx: Vec<usize> = (start..start + s).collect();
            let a = nalgebra::DMatrix::from_fn(s, s, |i, j| problem.a[idx[i] * n + idx[j]]);
            let g = nalgebra::DVector::from_iterator(s, idx.iter().map(|&i| grad[i]));
            let x = a.clone().lu().solve(&g).expect("A_kk is positive definite");
            decrements.push(0.5 * g.dot(&x));
            start += s;
        }
        let full = NewtonProbe::new()
            .with_cg_steps(5)
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        let one = NewtonProbe::new()
            .with_cg_steps(1)
            .estimate(&model, std::slice::from_ref(&batch), &groups)
            .unwrap();
        for k in 0..3 {
            assert!(
                rel_err(full.groups[k].value, decrements[k]) < 1e-3,
                "{} group {k}: {} vs Newton decrement {}",
                be.name,
                full.groups[k].value,
                decrements[k]
            );
            let (b, a) = one_step[k];
            assert!(rel_err(one.groups[k].value, b * b / (2.0 * a)) < 1e-3);
            assert!(full.groups[k].value >= one.groups[k].value * (1.0 - 1e-6));
        }
        // The 2-coordinate group converges in 2 steps: the cost stops there.
        assert!(full.cost.backward_passes < 1 + 2 * 5 * 3);
        assert!(matches!(
            NewtonProbe::new()
                .with_cg_steps(0)
                .estimate(&model, &[batch], &groups),
            Err(adapeft_importance::EstimateError::InvalidSetting { .. })
        ));
    }
}
