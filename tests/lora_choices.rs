//! LoRA choices in the selector (`AdaPeftConfig::with_lora_choices`): every weight matrix is a
//! multiple-choice class "frozen / full / LoRA rank r", and the selection must be the
//! multiple-choice knapsack's optimum over the options' values (checked by brute force over
//! every combination), take at most one option per class, build the model it describes, value
//! an adapter as its own estimate on a LoRA-applied copy, and refuse what it cannot do.

use adapeft::importance::{discover, set_require_grad};
use adapeft::{
    AdaPeftConfig, Baseline, Budget, LoraChoices, LoraChoicesError, Objective, Scored, SelectError,
    Selection, ValueModel,
};
use burn::module::{Module, ParamGroup};
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};

#[derive(Module, Debug)]
struct Model {
    a: Linear,
    b: Linear,
    c: Linear,
}

impl Objective<(Tensor<2>, Tensor<2>)> for Model {
    fn loss(&self, (x, y): &(Tensor<2>, Tensor<2>)) -> Tensor<1> {
        let h = self.a.forward(x.clone()).tanh();
        let h = self.b.forward(h).tanh();
        (self.c.forward(h) - y.clone()).square().mean()
    }
}

type Batch = (Tensor<2>, Tensor<2>);

fn setup(seed: u64) -> (Model, Vec<Batch>, Device) {
    let device = Device::flex().autodiff();
    device.seed(seed);
    let model = Model {
        a: LinearConfig::new(12, 10).init(&device),
        b: LinearConfig::new(10, 10).init(&device),
        c: LinearConfig::new(10, 6).init(&device),
    };
    let batches = (0..2)
        .map(|_| {
            (
                Tensor::random([16, 12], Distribution::Normal(0.0, 1.0), &device),
                Tensor::random([16, 6], Distribution::Normal(0.0, 1.0), &device),
            )
        })
        .collect();
    (model, batches, device)
}

/// The best total value of picking at most one option (weight, value) per class within
/// `capacity`, by enumerating every combination.
fn brute_force(classes: &[Vec<(u64, f64)>], capacity: u64) -> f64 {
    fn go(classes: &[Vec<(u64, f64)>], capacity: u64) -> f64 {
        let Some((first, rest)) = classes.split_first() else {
            return 0.0;
        };
        let mut best = go(rest, capacity); // frozen
        for &(w, v) in first {
            if w <= capacity {
                best = best.max(v + go(rest, capacity - w));
            }
        }
        best
    }
    go(classes, capacity)
}

fn classes_of(selection: &Selection) -> Vec<Vec<(u64, f64)>> {
    selection
        .groups()
        .iter()
        .map(|g| {
            std::iter::once((g.score.params, g.score.value.max(0.0)))
                .chain(g.options.iter().map(|o| (o.params, o.value)))
                .collect()
        })
        .collect()
}

#[test]
fn the_choice_is_the_brute_force_optimum_at_every_budget_with_at_most_one_option_per_class() {
    let (model, batches, _) = setup(3);
    let config = AdaPeftConfig::new()
        .with_estimator(Baseline::GradientNorm)
        .with_lora_choices(LoraChoices::new(&[1, 2]));
    let mut saw_lora = false;
    let mut saw_frozen_weight = false;
    for capacity in [0, 20, 45, 80, 130, 200, 300] {
        let selection = config
            .select(&model, &batches, Budget::Params(capacity))
            .unwrap();
        let classes = classes_of(&selection);
        // Every 2-D weight got both ranks; biases only the full option.
        for (g, class) in selection.groups().iter().zip(&classes) {
            let expected = if g.score.name.ends_with(".weight") {
                3
            } else {
                1
            };
            assert_eq!(class.len(), expected, "{}", g.score.name);
            if let Some(lora) = g.lora {
                assert!(g.chosen, "a LoRA pick is a choice");
                assert!(g.options.contains(&lora));
            }
        }
        // The adapter sizes are rank * (d_in + d_out).
        let a = &selection.groups()[0];
        assert_eq!(a.score.name, "a.weight");
        assert_eq!(
            a.options.iter().map(|o| o.params).collect::<Vec<_>>(),
            [22, 44]
        );
        let best = brute_force(&classes, capacity);
        let got = selection.predicted_reduction();
        assert!(
            (got - best).abs() <= 1e-9 * best.max(1.0),
            "capacity {capacity}: selection {got}, brute force {best}"
        );
        assert!(selection.trainable_params() <= capacity);
        saw_lora |= selection.groups().iter().any(|g| g.lora.is_some());
        saw_frozen_weight |= selection
            .groups()
            .iter()
            .any(|g| g.score.name.ends_with(".weight") && !g.chosen);
    }
    assert!(saw_lora, "some budget should choose an adapter");
    assert!(
        saw_frozen_weight,
        "some budget should leave a weight frozen"
    );
}

#[test]
fn apply_builds_the_chosen_adapters_full_weights_and_frozen_rest() {
    let (model, batches, _) = setup(4);
    let selection = AdaPeftConfig::new()
        .with_estimator(Baseline::GradientNorm)
        .with_lora_choices(LoraChoices::new(&[1, 2]))
        .select(&model, &batches, Budget::Params(60))
        .unwrap();
    let lora = selection.lora_choices();
    assert!(!lora.is_empty(), "{selection}");
    let applied = selection.apply(model);
    let params = discover(&applied);
    let trains: Vec<String> = params
        .iter()
        .filter(|p| p.require_grad)
        .map(|p| p.path.clone())
        .collect();
    assert_eq!(trains, selection.chosen_paths());
    let trainable: u64 = params
        .iter()
        .filter(|p| p.require_grad)
        .map(|p| p.numel)
        .sum();
    assert_eq!(trainable, selection.trainable_params());
    for (path, option) in &lora {
        let a = params
            .iter()
            .find(|p| p.path == format!("{path}.lora.a"))
            .expect("the adapter is attached");
        assert_eq!(a.shape[1], option.rank, "{path}");
    }
    // Adapters exist only on the chosen weights.
    let adapted: Vec<&str> = params.iter().filter_map(|p| p.lora_of.as_deref()).collect();
    assert!(adapted.iter().all(|b| lora.iter().any(|(p, _)| p == b)));
    // The choice survives JSON.
    let back = Selection::from_json(&selection.to_json()).unwrap();
    assert_eq!(back, selection);
    assert_eq!(back.lora_choices(), lora);
}

#[test]
fn an_adapter_is_valued_by_the_estimator_on_a_lora_applied_copy() {
    // With the empirical Fisher, the value of an adapter `W + s A B` at burn's initialisation
    // (`B = 0`, `A ~ N(0, 1/r)` entrywise std) is `sum over batches ||dL/dB||^2`, and by the
    // chain rule `dL/dB = s A^T G` for the full weight's gradient `G` (and `dL/dA = 0`). So over
    // the draws of `A` its mean is `s^2 / r * sum over batches ||G_b||^2`: the option values of
    // many selections (fresh adapters each) must average to that, computed here by hand from
    // the plain model's gradients alone.
    let (model, batches, device) = setup(5);
    let rank = 2;
    let targets = ParamGroup::from_paths(vec!["b.weight"]);
    let mut by_hand = 0.0;
    for batch in &batches {
        let full = set_require_grad(model.clone(), |p| p == "b.weight");
        let grads = GradientsParams::from_grads(full.loss(batch).backward(), &full);
        let g: Tensor<2> = grads
            .get(full.b.weight.id)
            .expect("b.weight has a gradient");
        by_hand += g.square().sum().into_scalar::<f32>() as f64;
    }
    let expected = by_hand / rank as f64; // scale s = alpha / rank = 1
    let draws = 200;
    let mut sum = 0.0;
    for seed in 0..draws {
        device.seed(seed);
        let selection = AdaPeftConfig::new()
            .with_estimator(Baseline::Fisher)
            .with_lora_choices(LoraChoices::new(&[rank]).with_targets(targets.clone()))
            .select(&model, &batches, Budget::Params(1000))
            .unwrap();
        let options: Vec<_> = selection
            .groups()
            .iter()
            .flat_map(|g| g.options.iter().map(move |o| (g.score.name.clone(), *o)))
            .collect();
        assert_eq!(
            options.len(),
            1,
            "only the targeted weight is offered an adapter"
        );
        assert_eq!(options[0].0, "b.weight");
        sum += options[0].1.value;
    }
    let mean = sum / draws as f64;
    // ||A^T G||^2 is a weighted sum of squared Gaussians with relative spread below 1 per
    // draw, so the mean of 200 draws lies within 20% with overwhelming probability; a wrong
    // scale (alpha, 1/r) or a value not taken from the adapter would be off by 2x or more.
    assert!(
        (mean / expected - 1.0).abs() < 0.2,
        "mean option value {mean}, expected {expected}"
    );
}

#[test]
fn unsupported_settings_are_refused_by_name() {
    let (model, batches, _) = setup(6);
    let joint = AdaPeftConfig::new()
        .with_value_model(ValueModel::Joint)
        .with_lora_choices(LoraChoices::new(&[2]))
        .select(&model, &batches, Budget::Params(50));
    assert!(matches!(
        joint,
        Err(SelectError::LoraChoices(LoraChoicesError::ValueModel { value_model })) if value_model.contains("joint")
    ));
    let zero = AdaPeftConfig::new()
        .with_lora_choices(LoraChoices::new(&[0]))
        .select(&model, &batches, Budget::Params(50));
    assert!(matches!(
        zero,
        Err(SelectError::LoraChoices(LoraChoicesError::ZeroRank {
            rank: 0
        }))
    ));
    let config = AdaPeftConfig::new().with_lora_choices(LoraChoices::new(&[2]));
    let groups = config.grouping.group(discover(&model)).unwrap();
    let scores =
        adapeft::Estimator::estimate(&Baseline::GradientNorm, &model, &batches, &groups).unwrap();
    assert!(matches!(
        config.select_scored(&Scored::new(groups, scores, 2).unwrap(), Budget::Params(50)),
        Err(SelectError::LoraChoices(LoraChoicesError::Unsupported {
            entry_point: "select_scored",
            ..
        }))
    ));
}
