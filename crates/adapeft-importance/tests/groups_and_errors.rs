//! Parameter discovery and groupings on real burn modules (a transformer encoder, LoRA
//! adapters), and the estimators' errors on bad input.

use adapeft_importance::{
    AnyEstimator, EstimateError, Estimator, ForwardProbe, GradientProbe, Grouping, HostReduce,
    Objective, ParamKind, ProbeStep, Shard, ShortRun, Unmatched, discover,
};
use adapeft_testing::*;
use burn::module::{Lora, Module, Param};
use burn::nn::transformer::TransformerEncoderConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Tensor;

#[test]
fn discovers_every_tensor_of_a_transformer_with_paths_and_kinds() {
    let device = burn::tensor::Device::flex().autodiff();
    let encoder = TransformerEncoderConfig::new(16, 32, 2, 2).init(&device);
    let params = discover(&encoder);
    // Per layer: 4 attention linears and 2 feed-forward linears (weight + bias), 2 LayerNorms
    // (gamma + beta): 16 tensors.
    assert_eq!(params.len(), 2 * 16);
    assert_eq!(
        params.iter().map(|p| p.numel).sum::<u64>(),
        encoder.num_params() as u64
    );
    let paths: Vec<&str> = params.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "layers.0.mha.query.weight",
        "layers.0.mha.output.bias",
        "layers.1.pwff.linear_inner.weight",
        "layers.1.norm_2.gamma",
        "layers.1.norm_2.beta",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    let q = params
        .iter()
        .find(|p| p.path == "layers.0.mha.query.weight")
        .unwrap();
    assert_eq!(q.shape, [16, 16]);
    assert!(q.require_grad);

    let groups = Grouping::by_kind().group(params).unwrap();
    let mut names: Vec<&str> = groups.groups().iter().map(|g| g.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["attention", "bias", "feed-forward", "norm"]);
    let norm = groups.groups().iter().find(|g| g.name == "norm").unwrap();
    assert_eq!(norm.numel, 2 * 2 * 2 * 16);
    assert_eq!(ParamKind::FeedForward.to_string(), "feed-forward");
}

#[test]
fn lora_adapters_are_groups_that_compete_with_tensors() {
    for be in backends() {
        let problem = LogisticProblem::random(32, 6, 3, 5);
        let model = problem.model(&be.device.clone().autodiff());
        let model = Logistic {
            linear: model.linear.apply_lora(Lora::new(2, 4.0)),
        };
        let params = discover(&model);
        let paths: Vec<&str> = params.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "linear.weight",
                "linear.weight.lora.a",
                "linear.weight.lora.b",
                "linear.bias"
            ]
        );
        assert_eq!(params[1].lora_of.as_deref(), Some("linear.weight"));
        assert_eq!(params[1].shape, [6, 2]);
        assert_eq!(params[2].shape, [2, 3]);
        // apply_lora freezes the base weight and the bias.
        assert!(!params[0].require_grad && params[1].require_grad);

        let groups = Grouping::PerTensor.group(params).unwrap();
        let names: Vec<&str> = groups.groups().iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            ["linear.weight", "linear.weight.lora", "linear.bias"]
        );
        assert_eq!(groups.groups()[1].numel, 6 * 2 + 2 * 3);

        let before = snapshot(&model);
        let batch = problem.batch(&be.device, 1.0);
        let scores = GradientProbe::exact()
            .estimate(&model, &[batch], &groups)
            .unwrap();
        // Frozen or not, every group is scored; the adapter (b = 0 at init, so only its `b`
        // factor has a gradient) gets a positive slope and curvature.
        let lora = &scores.groups[1];
        assert!(
            lora.b > 0.0 && lora.a > 0.0 && lora.is_reliable(),
            "{lora:?}"
        );
        assert!(scores.groups[0].is_reliable());
        assert_eq!(snapshot(&model), before);
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let device = burn::tensor::Device::flex();
    let problem = LogisticProblem::random(16, 3, 2, 1);
    let model = problem.model(&device);
    let groups = per_tensor(&model);
    let batch = problem.batch(&device, 1.0);

    let none: [LabelledBatch; 0] = [];
    assert_eq!(
        GradientProbe::default().estimate(&model, &none, &groups),
        Err(EstimateError::NoBatch)
    );

    let not_scalar =
        |m: &Logistic, b: &LabelledBatch| m.linear.forward(b.x.clone()).sum_dim(1).reshape([16]);
    assert_eq!(
        ForwardProbe::default()
            .estimate_with(&model, std::slice::from_ref(&batch), &groups, &not_scalar)
            .unwrap_err(),
        EstimateError::NotScalar { shape: vec![16] }
    );

    let nan = |m: &Logistic, b: &LabelledBatch| {
        adapeft_importance::Objective::loss(m, b).mul_scalar(f64::NAN)
    };
    let err = GradientProbe::default()
        .estimate_with(&model, std::slice::from_ref(&batch), &groups, &nan)
        .unwrap_err();
    assert!(
        matches!(err, EstimateError::NonFiniteLoss { batch: 0, .. }),
        "{err:?}"
    );

    let nothing = Grouping::Regex {
        patterns: vec!["^nothing$".into()],
        unmatched: Unmatched::Exclude,
    }
    .group(discover(&model))
    .unwrap();
    assert_eq!(
        GradientProbe::default().estimate(&model, std::slice::from_ref(&batch), &nothing),
        Err(EstimateError::NoGroups)
    );

    let bad = GradientProbe {
        step: 0.0,
        ..Default::default()
    };
    assert!(matches!(
        bad.estimate(&model, &[batch], &groups),
        Err(EstimateError::InvalidSetting { name: "step", .. })
    ));
}

/// A model that refuses batches whose inputs have another width than its layer's.
#[derive(Module, Debug)]
struct Picky {
    layer: Linear,
}

impl Objective<Tensor<2>> for Picky {
    fn loss(&self, x: &Tensor<2>) -> Tensor<1> {
        self.layer.forward(x.clone()).square().mean()
    }

    fn check(&self, x: &Tensor<2>) -> Result<(), String> {
        let want = self.layer.weight.dims()[0];
        match x.dims()[1] {
            w if w == want => Ok(()),
            w => Err(format!("{w} input features, the layer takes {want}")),
        }
    }
}

#[test]
fn a_batch_the_model_refuses_is_a_typed_error_naming_it_before_any_pass() {
    let device = burn::tensor::Device::flex();
    let model = Picky {
        layer: LinearConfig::new(3, 2).init(&device),
    };
    let groups = per_tensor(&model);
    let good = Tensor::<2>::ones([4, 3], &device);
    // Multiplying [4, 5] by a [3, 2] weight would panic inside burn.
    let wide = Tensor::<2>::ones([4, 5], &device);
    let before = snapshot(&model);
    let estimators: [AnyEstimator; 3] = [
        GradientProbe::exact().into(),
        ForwardProbe::default().into(),
        ShortRun::new().with_steps(2).into(),
    ];
    for estimator in &estimators {
        let err = estimator
            .estimate(&model, &[good.clone(), good.clone(), wide.clone()], &groups)
            .unwrap_err();
        assert_eq!(
            err,
            EstimateError::InvalidBatch {
                batch: 2,
                reason: "5 input features, the layer takes 3".into()
            },
            "{estimator}"
        );
        assert!(err.to_string().contains("batch 2"), "{err}");
        // Sharded: the batch's index over every shard (the second worker's first batch).
        let shards = vec![
            Shard::new(device.clone(), vec![good.clone(), good.clone()]),
            Shard::new(device.clone(), vec![wide.clone(), good.clone()]),
        ];
        let loss = adapeft_importance::ModelObjective;
        let err = estimator
            .estimate_sharded(
                &model,
                &shards,
                &groups,
                &loss,
                &HostReduce::new(2).unwrap(),
            )
            .unwrap_err();
        assert!(
            matches!(err, EstimateError::InvalidBatch { batch: 2, .. }),
            "{estimator}: {err:?}"
        );
    }
    assert_eq!(snapshot(&model), before);
    // The good batches alone score.
    assert!(
        estimators[0]
            .estimate(&model, &[good.clone(), good], &groups)
            .is_ok()
    );
}

#[derive(Module, Debug)]
struct LogBarrier {
    w: Param<Tensor<1>>,
    other: Linear,
}

#[test]
fn non_finite_probe_loss_names_the_group_and_the_step() {
    let device = burn::tensor::Device::flex();
    let model = LogBarrier {
        w: Param::from_tensor(tensor1(&[0.5, 0.25], &device)),
        other: LinearConfig::new(2, 1).init(&device),
    };
    let x = tensor2(&[1.0, 2.0], 1, 2, &device);
    // -sum(log w) is finite at w and NaN once a probe pushes w below zero.
    let loss = |m: &LogBarrier, x: &Tensor<2>| {
        m.w.val().log().sum().neg() + m.other.forward(x.clone()).sum().mul_scalar(1e-3)
    };
    let groups = per_tensor(&model);
    let before = snapshot(&model);
    let err = ForwardProbe {
        step: ProbeStep::Fixed(1.0),
        ..Default::default()
    }
    .estimate_with(&model, std::slice::from_ref(&x), &groups, &loss)
    .unwrap_err();
    match &err {
        EstimateError::NonFiniteProbe { group, step, loss } => {
            assert_eq!(group, "w");
            assert_eq!(*step, -2.0);
            assert!(!loss.is_finite());
        }
        other => panic!("expected NonFiniteProbe, got {other:?}"),
    }
    assert!(err.to_string().contains("`w`"), "{err}");
    assert_eq!(snapshot(&model), before);

    // The default, scale-free step stays where the loss is defined.
    let scores = ForwardProbe::default()
        .estimate_with(&model, &[x], &groups, &loss)
        .unwrap();
    assert!(scores.groups[0].is_reliable(), "{:?}", scores.groups[0]);
}

#[derive(Module, Debug)]
struct OneUnused {
    used: Param<Tensor<1>>,
    unused: Param<Tensor<1>>,
}

#[test]
fn a_parameter_the_loss_ignores_is_unreliable_with_zero_value() {
    let device = burn::tensor::Device::flex();
    let model = OneUnused {
        used: Param::from_tensor(tensor1(&[0.5, -1.0], &device)),
        unused: Param::from_tensor(tensor1(&[2.0], &device)),
    };
    let target = tensor1(&[1.0, 1.0], &device);
    let loss = |m: &OneUnused, t: &Tensor<1>| (m.used.val() - t.clone()).square().sum();
    let groups = per_tensor(&model);
    let forward = ForwardProbe::default()
        .estimate_with(&model, std::slice::from_ref(&target), &groups, &loss)
        .unwrap();
    let exact = GradientProbe::exact()
        .estimate_with(&model, std::slice::from_ref(&target), &groups, &loss)
        .unwrap();
    for scores in [forward, exact] {
        let (used, unused) = (&scores.groups[0], &scores.groups[1]);
        assert!(used.is_reliable() && used.value > 0.0, "{used:?}");
        assert!(!unused.is_reliable());
        assert_eq!(unused.value, 0.0);
        assert_eq!(
            unused.unreliable,
            Some(adapeft_importance::Unreliable::ZeroDirection)
        );
    }
}
