//! The selector end to end: `AdaPeft::select`, `Selection::apply`, JSON, saving the trained
//! subset, transfer across depths, and bad input.

use adapeft::importance::{Estimator, Grouping, Unit, UnitRules, discover};
use adapeft::knapsack::Item;
use adapeft::selection::SelectionError;
use adapeft::{
    AdaPeft, AdaPeftConfig, AlwaysTrain, AnyEstimator, Baseline, Budget, BudgetError,
    BudgetOutcome, Data, GradientProbe, Objective, Scored, SelectError, Selection, load_trained,
    save_trained,
};
use adapeft_testing::*;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// `depth` hidden layers and a head.
#[derive(Module, Debug)]
struct Stack {
    layers: Vec<Linear>,
    head: Linear,
}

impl Stack {
    fn new(depth: usize, width: usize, device: &Device) -> Self {
        Stack {
            layers: (0..depth)
                .map(|i| LinearConfig::new(if i == 0 { 4 } else { width }, width).init(device))
                .collect(),
            head: LinearConfig::new(width, 2).init(device),
        }
    }
}

impl Objective<RegressionBatch> for Stack {
    fn loss(&self, batch: &RegressionBatch) -> Tensor<1> {
        let mut h = batch.x.clone();
        for layer in &self.layers {
            h = layer.forward(h).tanh();
        }
        (self.head.forward(h) - batch.y.clone()).square().mean()
    }
}

fn setup(device: &Device) -> (Stack, RegressionBatch) {
    (
        Stack::new(2, 8, device),
        regression_batch(32, 4, 2, 3, device),
    )
}

/// The best subset by brute force over the groups' (size, value).
fn brute_force(items: &[Item], capacity: u64) -> f64 {
    let mut best = 0.0f64;
    for mask in 0u32..(1 << items.len()) {
        let (mut w, mut v) = (0u64, 0.0);
        for (i, item) in items.iter().enumerate() {
            if mask & (1 << i) != 0 {
                w += item.weight;
                v += item.value;
            }
        }
        if w <= capacity {
            best = best.max(v);
        }
    }
    best
}

#[test]
fn select_is_optimal_for_its_scores_and_leaves_the_model_unchanged() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch) = setup(&device);
        let before = snapshot(&model);
        let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.2)).unwrap();
        assert_eq!(
            snapshot(&model),
            before,
            "{}: select changed the model",
            be.name
        );

        let total = model.num_params() as u64;
        assert_eq!(selection.total_params(), total);
        assert!(selection.trainable_params() <= total / 5);
        assert_eq!(selection.groups().len(), 6);
        let items: Vec<Item> = selection
            .groups()
            .iter()
            .map(|g| Item::new(g.score.params, g.score.value.max(0.0)))
            .collect();
        let best = brute_force(&items, total / 5);
        assert!(rel_err(selection.predicted_reduction(), best) < 1e-9);
        assert!(
            selection
                .groups()
                .iter()
                .all(|g| !g.chosen || g.score.is_reliable())
        );
        assert_eq!(selection.outcome(), BudgetOutcome::Within);
        assert_eq!(selection.settings().estimator, AnyEstimator::default());
        assert_eq!(selection.settings().budget, Budget::Fraction(0.2));
        assert!(selection.cost().backward_passes > 0);
    }
}

#[test]
fn apply_leaves_exactly_the_chosen_parameters_with_gradients() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch) = setup(&device);
        let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.3)).unwrap();
        assert!(!selection.is_empty());
        let chosen = selection.chosen_paths();
        let model = selection.apply(model);
        // One backward: count the parameters that received a gradient.
        let grads = model.loss(&batch).backward();
        let paths = ids(&model);
        let mut with_grad = vec![];
        struct Count<'a>(
            &'a burn::tensor::Gradients,
            &'a std::collections::HashMap<burn::module::ParamId, String>,
            &'a mut Vec<String>,
        );
        impl burn::module::ModuleVisitor for Count<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if param.val().grad(self.0).is_some() {
                    self.2.push(self.1[&param.id].clone());
                }
            }
        }
        model.visit(&mut Count(&grads, &paths, &mut with_grad));
        with_grad.sort();
        let mut want = chosen.clone();
        want.sort();
        assert_eq!(with_grad, want, "{}", be.name);

        // The burn ParamGroup form matches the same parameters.
        let group = selection.param_group();
        for p in discover(&model) {
            assert_eq!(
                group.matches(&p.id, Some(&p.path)),
                chosen.contains(&p.path)
            );
        }
    }
}

#[test]
fn summary_and_table() {
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let selection = AdaPeft::select(&model, &batch, Budget::Params(40)).unwrap();
    let line = selection.summary();
    let total = model.num_params();
    assert!(
        line.starts_with(&format!(
            "trainable params: {} || all params: {} || trainable%: ",
            selection.trainable_params(),
            total
        )),
        "{line}"
    );
    let pct = 100.0 * selection.trainable_params() as f64 / total as f64;
    assert!(line.ends_with(&format!("{pct:.4}")), "{line}");
    let table = selection.to_string();
    assert!(table.starts_with(&line));
    let starred = table.lines().filter(|l| l.starts_with('*')).count();
    assert_eq!(starred, selection.chosen().count());
    assert_eq!(table.lines().count(), 3 + selection.groups().len());
}

#[test]
fn json_round_trip_and_unknown_version() {
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let selection = AdaPeft::select(&model, &batch, Budget::Knee).unwrap();
    let json = selection.to_json();
    let back = Selection::from_json(&json).unwrap();
    assert_eq!(back, selection);
    assert_eq!(back.to_json(), json);
    assert_eq!(back.front().weights(), selection.front().weights());

    let current = format!("\"version\": {}", adapeft::selection::SCHEMA_VERSION);
    assert!(json.contains(&current), "{json}");
    for old in [1, 99] {
        let bumped = json.replacen(&current, &format!("\"version\": {old}"), 1);
        let err = Selection::from_json(&bumped).unwrap_err();
        assert!(
            matches!(err, SelectionError::UnsupportedVersion { found, .. } if found == old),
            "{err}"
        );
    }
    assert!(matches!(
        Selection::from_json("{}"),
        Err(SelectionError::MissingVersion)
    ));
    // A version 2 file, made with the default estimator before `ShortRun::held_out` existed,
    // whose `Auto` was the knee of the front: it loads, its budget read as `Knee`.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old["version"] = 2.into();
    old["settings"]["budget"] = "Auto".into();
    fn drop_key(v: &mut serde_json::Value, key: &str) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                map.remove(key).is_some() | map.values_mut().any(|v| drop_key(v, key))
            }
            serde_json::Value::Array(items) => items.iter_mut().any(|v| drop_key(v, key)),
            _ => false,
        }
    }
    assert!(drop_key(&mut old["settings"]["estimator"], "held_out"));
    let old = Selection::from_json(&old.to_string()).unwrap();
    assert_eq!(old.settings().budget, Budget::Knee);
    assert_eq!(old.settings().estimator, selection.settings().estimator);
    assert_eq!(old.chosen_paths(), selection.chosen_paths());
    // A version 4 file wrote every point of the front with its whole selection, every
    // group's `paths` and a reliable score's `"unreliable": null`: it reads as the same
    // selection, the front's selections included (`==` compares only its points).
    let mut v4: serde_json::Value = serde_json::from_str(&json).unwrap();
    v4["version"] = 4.into();
    v4["front"] = serde_json::to_value(selection.front().to_data()).unwrap();
    for g in v4["groups"].as_array_mut().unwrap() {
        g.as_object_mut()
            .unwrap()
            .entry("paths")
            .or_insert(serde_json::json!([]));
        g["score"]
            .as_object_mut()
            .unwrap()
            .entry("unreliable")
            .or_insert(serde_json::Value::Null);
    }
    let v4 = Selection::from_json(&v4.to_string()).unwrap();
    assert_eq!(v4, selection);
    assert_eq!(v4.front().to_data(), selection.front().to_data());
    assert_eq!(back.front().to_data(), selection.front().to_data());
    // The compact form, what adapter files and checkpoints store: one line, the same
    // selection.
    let compact = selection.to_json_compact();
    assert!(!compact.contains('\n') && compact.len() < json.len());
    let from_compact = Selection::from_json(&compact).unwrap();
    assert_eq!(from_compact, selection);
    assert_eq!(from_compact.to_json(), json);
    // Not JSON at all: the parser's error is kept as the source.
    let err = Selection::from_json("not json").unwrap_err();
    assert!(matches!(err, SelectionError::Json(_)), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn knee_budget_is_the_knee_of_the_front() {
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let selection = AdaPeft::select(&model, &batch, Budget::Knee).unwrap();
    let knee = selection.front().knee().unwrap();
    let chosen: Vec<usize> = selection
        .groups()
        .iter()
        .enumerate()
        .filter(|(_, g)| g.chosen)
        .map(|(i, _)| i)
        .collect();
    let knee_useful: Vec<usize> = knee
        .chosen
        .into_iter()
        .filter(|&i| selection.groups()[i].score.value > 0.0)
        .collect();
    assert_eq!(chosen, knee_useful);
}

/// A front with a single valuable group has no point above its chord, so its knee is the
/// empty selection; `Auto` then takes the lightest non-empty point instead of nothing.
#[test]
fn auto_never_trains_nothing_when_a_group_has_value() {
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let config = AdaPeftConfig::new().with_estimator(GradientProbe::exact());
    let groups = config.grouping.group(discover(&model)).unwrap();
    let mut scores = GradientProbe::exact()
        .estimate(&model, std::slice::from_ref(&batch), &groups)
        .unwrap();
    let largest = (0..scores.groups.len())
        .max_by_key(|&i| scores.groups[i].params)
        .unwrap();
    for (i, g) in scores.groups.iter_mut().enumerate() {
        if i != largest {
            g.value = 0.0;
        }
    }
    let selection = config
        .select_scored(
            &Scored::new(groups.clone(), scores.clone(), 1).unwrap(),
            Budget::Knee,
        )
        .unwrap();
    assert_eq!(
        selection.front().knee().unwrap().weight,
        0,
        "the knee is empty"
    );
    let chosen: Vec<usize> = (0..selection.groups().len())
        .filter(|&i| selection.groups()[i].chosen)
        .collect();
    assert_eq!(chosen, [largest]);

    // With no value anywhere, Auto is empty.
    for g in scores.groups.iter_mut() {
        g.value = 0.0;
    }
    let nothing = config
        .select_scored(&Scored::new(groups, scores, 1).unwrap(), Budget::Knee)
        .unwrap();
    assert!(nothing.is_empty());
    assert_eq!(nothing.outcome(), BudgetOutcome::Empty);
}

/// Scoring once and selecting per budget gives the selections `select` makes directly, and
/// scores that belong to other groups are refused by name.
#[test]
fn scored_selections_match_direct_ones_and_foreign_scores_are_refused() {
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let batches = std::slice::from_ref(&batch);
    let config = AdaPeftConfig::new().with_estimator(GradientProbe::exact());
    let scored = config.score(&model, batches).unwrap();
    assert_eq!(scored.batches(), 1);
    assert_eq!(scored.scores().groups.len(), scored.groups().len());
    for budget in [Budget::Params(10), Budget::Fraction(0.3), Budget::Knee] {
        let direct = config.select(&model, batches, budget).unwrap();
        let from_scores = config.select_scored(&scored, budget).unwrap();
        assert_eq!(
            direct.chosen_paths(),
            from_scores.chosen_paths(),
            "{budget}"
        );
        assert_eq!(direct.settings(), from_scores.settings(), "{budget}");
    }

    let groups = scored.groups().clone();
    let mut fewer = scored.scores().clone();
    fewer.groups.pop();
    let err = Scored::new(groups.clone(), fewer, 1).unwrap_err();
    assert!(
        matches!(&err, SelectError::ScoresMismatch { reason } if reason.contains("scores for")),
        "{err}"
    );
    let mut renamed = scored.scores().clone();
    renamed.groups[1].name = "elsewhere".into();
    let err = Scored::new(groups.clone(), renamed, 1).unwrap_err();
    assert!(err.to_string().contains("`elsewhere`"), "{err}");

    // Units below the tensor are scored and selected from their scores.
    let units = groups
        .split(&UnitRules::new().with("^head$", Unit::Outputs).unwrap())
        .unwrap();
    let scores = Baseline::GradientNorm
        .estimate(&model, batches, &units)
        .unwrap();
    let selection = config
        .select_scored(&Scored::new(units, scores, 1).unwrap(), Budget::Params(30))
        .unwrap();
    for path in selection.partial().keys() {
        assert!(path.starts_with("head."), "{path}");
    }
}

#[test]
fn budgets_at_the_edges() {
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let config = AdaPeftConfig::new().with_estimator(GradientProbe::exact());
    let groups = config.grouping.group(discover(&model)).unwrap();
    let scores = GradientProbe::exact()
        .estimate(&model, std::slice::from_ref(&batch), &groups)
        .unwrap();
    let scored = Scored::new(groups.clone(), scores, 1).unwrap();
    let select = |b| config.select_scored(&scored, b).unwrap();

    let zero = select(Budget::Params(0));
    assert!(zero.is_empty());
    assert_eq!(zero.outcome(), BudgetOutcome::Empty);
    assert_eq!(zero.trainable_params(), 0);

    let smallest = groups.groups().iter().map(|g| g.numel).min().unwrap();
    let tiny = select(Budget::Params(smallest - 1));
    assert!(tiny.is_empty() && tiny.outcome() == BudgetOutcome::Empty);

    let all = select(Budget::Params(10 * groups.total_params()));
    assert_eq!(all.outcome(), BudgetOutcome::EverythingFits);
    for g in all.groups() {
        assert_eq!(g.chosen, g.score.is_reliable() && g.score.value > 0.0);
    }

    let memory = select(Budget::memory_adam(16 * 50));
    assert!(memory.trainable_params() <= 50);
    assert_eq!(memory.settings().budget_params, 50);

    let err = config
        .select(&model, &[batch], Budget::Fraction(f64::NAN))
        .unwrap_err();
    assert!(
        matches!(err, SelectError::Budget(BudgetError { .. })),
        "{err}"
    );
}

#[derive(Module, Debug)]
struct NoParams {
    #[module(skip)]
    scale: f64,
}

#[test]
fn bad_models_and_losses() {
    let device = Device::flex();
    let empty = NoParams { scale: 1.0 };
    let x = Tensor::<2>::ones([2, 2], &device);
    let err = AdaPeftConfig::new()
        .select_with(
            &empty,
            Data::Batches(&[x]),
            Budget::Knee,
            &|m: &NoParams, x: &Tensor<2>| x.clone().sum().mul_scalar(m.scale),
        )
        .unwrap_err();
    assert!(matches!(err, SelectError::NoParameters), "{err}");

    // A model on a device without autodiff is handled: the probes run on an autodiff copy.
    let (model, batch) = setup(&device);
    let before = snapshot(&model);
    let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.2)).unwrap();
    assert!(!selection.is_empty());
    assert_eq!(snapshot(&model), before);

    let not_scalar = |m: &Stack, b: &RegressionBatch| m.loss(b).repeat_dim(0, 3);
    let err = AdaPeftConfig::new()
        .select_with(
            &model,
            Data::Batches(std::slice::from_ref(&batch)),
            Budget::Knee,
            &not_scalar,
        )
        .unwrap_err();
    assert!(err.to_string().contains("scalar"), "{err}");

    let nan = |m: &Stack, b: &RegressionBatch| m.loss(b).mul_scalar(f64::NAN);
    let err = AdaPeftConfig::new()
        .select_with(&model, Data::Batches(&[batch]), Budget::Knee, &nan)
        .unwrap_err();
    assert!(err.to_string().contains("not finite"), "{err}");
    assert_eq!(snapshot(&model), before);
}

#[test]
fn save_and_load_only_the_trained_parameters() {
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let selection = AdaPeftConfig::new()
        .with_estimator(Baseline::GradientNorm)
        .select(&model, &[batch], Budget::Fraction(0.25))
        .unwrap();
    assert!(!selection.is_empty());
    let dir = temp_dir("select");
    let path = dir.path().join("trained.safetensors");
    save_trained(&model, &selection, &path).unwrap();

    // Onto a fresh model of the same architecture (different weights).
    let fresh = Stack::new(2, 8, &device);
    let fresh_before = snapshot(&fresh);
    let (loaded, manifest) = load_trained(fresh, &path).unwrap();
    assert_eq!(manifest, selection);
    let chosen = selection.chosen_paths();
    let trained = snapshot(&model);
    for ((path, bytes, _), (_, fresh_bytes, _)) in snapshot(&loaded).iter().zip(&fresh_before) {
        let original = &trained.iter().find(|(p, _, _)| p == path).unwrap().1;
        if chosen.contains(path) {
            assert_eq!(bytes, original, "{path} not restored bit-exactly");
        } else {
            assert_eq!(
                bytes, fresh_bytes,
                "{path} should keep the base model's value"
            );
        }
    }
    // The file holds the trained parameters and the manifest, not the model.
    let size = std::fs::metadata(&path).unwrap().len();
    let tensors = 4 * selection.trainable_params();
    let manifest_len = selection.to_json_compact().len() as u64;
    assert!(
        size >= tensors && size < tensors + 2 * manifest_len + 2048,
        "{size}"
    );
}

#[test]
fn transfer_maps_layers_by_relative_depth() {
    let device = Device::flex().autodiff();
    let small = Stack::new(2, 8, &device);
    let batch = regression_batch(32, 4, 2, 3, &device);
    let selection = AdaPeft::select(&small, &batch, Budget::Fraction(0.3)).unwrap();
    let chosen = |path: &str| {
        selection
            .groups()
            .iter()
            .find(|g| g.paths.iter().any(|p| p == path))
            .unwrap()
            .chosen
    };

    let big = Stack::new(4, 8, &device);
    let moved = selection.transfer_to(&big).unwrap();
    assert_eq!(moved.total_params(), big.num_params() as u64);
    // 4 layers onto 2: layer j maps to round(j / 3).
    for (j, src) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
        for leaf in ["weight", "bias"] {
            let target = format!("layers.{j}.{leaf}");
            let group = moved
                .groups()
                .iter()
                .find(|g| g.paths.contains(&target))
                .unwrap();
            assert_eq!(group.score.name, target);
            assert_eq!(
                group.chosen,
                chosen(&format!("layers.{src}.{leaf}")),
                "{target}"
            );
        }
    }
    assert_eq!(
        moved
            .groups()
            .iter()
            .find(|g| g.score.name == "head.bias")
            .unwrap()
            .chosen,
        chosen("head.bias")
    );
    // A group chosen in every layer maps to every layer.
    let by_kind = AdaPeftConfig::new()
        .with_grouping(Grouping::regex([r"weight$", r"bias$"]))
        .select(&small, &[batch], Budget::Params(200))
        .unwrap();
    let moved = by_kind.transfer_to(&big).unwrap();
    assert_eq!(moved.groups().len(), by_kind.groups().len());
    for (a, b) in moved.groups().iter().zip(by_kind.groups()) {
        assert_eq!(a.chosen, b.chosen);
        assert_eq!(a.paths.len(), 5); // 4 layers and the head
    }

    // Another family: every path without a counterpart is listed.
    let other = Logistic {
        linear: LinearConfig::new(4, 2).init(&device),
    };
    let err = selection.transfer_to(&other).unwrap_err();
    let text = err.to_string();
    for p in [
        "target: linear.weight",
        "target: linear.bias",
        "source: head.weight",
        "source: layers.1.bias",
    ] {
        assert!(text.contains(p), "{p} missing in {text}");
    }
}

/// A selection of units below the tensor carries its cells across depths: a target tensor
/// whose counterpart was cut into neurons is cut the same way, each neuron with its
/// counterpart's verdict, and the units' groups are renamed by layer. A counterpart of
/// another shape is named in the error.
#[test]
fn transfer_carries_cells_to_the_counterparts_of_the_same_shape() {
    let device = Device::flex().autodiff();
    let small = Stack::new(2, 8, &device);
    let batch = regression_batch(32, 4, 2, 3, &device);
    // layers.1 ([8, 8]) into its output neurons; layers.0 ([4, 8]) and the head whole.
    let rules = UnitRules::new()
        .with(r"^layers\.1$", Unit::Outputs)
        .unwrap();
    let units = per_tensor(&small).split(&rules).unwrap();
    let scores = Baseline::GradientNorm
        .estimate(&small, std::slice::from_ref(&batch), &units)
        .unwrap();
    let selection = AdaPeftConfig::new()
        .select_scored(&Scored::new(units, scores, 1).unwrap(), Budget::Params(40))
        .unwrap();
    let neurons = &selection.partial()["layers.1.weight"];
    assert!(!neurons.is_empty() && neurons.len() < 8, "{neurons:?}");

    // 2 layers onto 4: target layers 2 and 3 map to source layer 1, layer 1 to layer 0.
    let big = Stack::new(4, 8, &device);
    let moved = selection.transfer_to(&big).unwrap();
    assert_eq!(moved.total_params(), big.num_params() as u64);
    let partial = moved.partial();
    for j in [2, 3] {
        for leaf in ["weight", "bias"] {
            let source = &selection.partial()[&format!("layers.1.{leaf}")];
            assert_eq!(
                &partial[&format!("layers.{j}.{leaf}")],
                source,
                "layers.{j}.{leaf}"
            );
            assert_eq!(
                moved.tilings()[&format!("layers.{j}.{leaf}")],
                selection.tilings()[&format!("layers.1.{leaf}")]
            );
        }
        // Every neuron is a group of its own layer, named by it, with its source's verdict.
        for n in 0..8 {
            let name = format!("layers.{j}.out[{n}]");
            let group = moved
                .groups()
                .iter()
                .find(|g| g.score.name == name)
                .unwrap();
            assert_eq!(
                group.score.params, 9,
                "{name}: a column of 8 and a bias entry"
            );
            assert_eq!(group.chosen, neurons.contains(&n), "{name}");
        }
    }
    assert!(
        !partial.contains_key("layers.1.weight"),
        "layers.1 maps to the whole layers.0"
    );
    let whole_chosen = |s: &Selection, path: &str| {
        s.groups()
            .iter()
            .find(|g| g.paths.iter().any(|p| p == path))
            .unwrap()
            .chosen
    };
    assert_eq!(
        whole_chosen(&moved, "layers.1.weight"),
        whole_chosen(&selection, "layers.0.weight")
    );
    // The count the summary prints: whole tensors and cells.
    let cells: u64 = partial
        .iter()
        .map(|(path, cells)| {
            cells
                .iter()
                .map(|&c| moved.tilings()[path].cell_numel(c as usize))
                .sum::<u64>()
        })
        .sum();
    let whole: u64 = moved
        .chosen_paths()
        .iter()
        .map(|p| discover(&big).iter().find(|d| &d.path == p).unwrap().numel)
        .sum();
    assert_eq!(moved.trainable_params(), whole + cells);
    let back = Selection::from_json(&moved.to_json()).unwrap();
    assert_eq!(back, moved);

    // Counterparts of another shape: [6, 6] layers where the cells are of an [8, 8] view.
    let narrow = Stack::new(2, 6, &device);
    let err = selection.transfer_to(&narrow).unwrap_err();
    assert!(matches!(err, SelectionError::Unmatched { .. }));
    assert!(
        err.to_string()
            .contains("target: layers.1.weight (shape [6, 6]"),
        "{err}"
    );
}

/// `Selection::from_json` on thousands of damaged copies of a real selection's JSON (flipped
/// bits, truncations, deleted and garbage spans): never a panic, and whatever it accepts is a
/// well-formed selection that writes and reads back to itself.
#[test]
fn damaged_selection_json_never_panics() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let json = AdaPeft::select(&model, &batch, Budget::Knee)
        .unwrap()
        .to_json()
        .into_bytes();
    let mut rng = StdRng::seed_from_u64(13);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..3000 {
        let mut copy = json.clone();
        match i % 4 {
            0 => {
                let at = rng.random_range(0..copy.len());
                copy[at] ^= 1 << rng.random_range(0..8);
            }
            1 => copy.truncate(rng.random_range(0..json.len())),
            2 => {
                let at = rng.random_range(0..copy.len());
                let n = rng.random_range(1..=32).min(copy.len() - at);
                copy.drain(at..at + n);
            }
            _ => {
                let at = rng.random_range(0..copy.len());
                let n = rng.random_range(1..=8).min(copy.len() - at);
                for b in &mut copy[at..at + n] {
                    *b = rng.random_range(0x20..0x7f);
                }
            }
        }
        let text = String::from_utf8_lossy(&copy).into_owned();
        let result = catch_unwind(AssertUnwindSafe(|| Selection::from_json(&text)))
            .unwrap_or_else(|_| panic!("from_json panicked on damaged copy {i}"));
        match result {
            Ok(selection) => {
                accepted += 1;
                let again = Selection::from_json(&selection.to_json()).unwrap();
                assert_eq!(again, selection, "copy {i} does not round-trip");
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("damaged selection JSON: {refused} refused, {accepted} accepted");
    assert!(refused > 2000, "{refused} refused");
}

/// Two bias vectors added to the same outputs (twins) and a weight.
#[derive(Module, Debug)]
struct Twins {
    linear: Linear,
    first: Param<Tensor<1>>,
    second: Param<Tensor<1>>,
}

impl Objective<RegressionBatch> for Twins {
    fn loss(&self, batch: &RegressionBatch) -> Tensor<1> {
        let out = self.linear.forward(batch.x.clone())
            + self.first.val().unsqueeze_dim(0)
            + self.second.val().unsqueeze_dim(0);
        (out - batch.y.clone()).square().mean()
    }
}

/// The joint value model counts the twins once (its predicted reduction for both equals that
/// of one, where the additive model doubles it), is selected within the budget against brute
/// force over its own value, and needs the curvature.
#[test]
fn joint_value_model_counts_redundant_groups_once() {
    for be in backends() {
        let device = &be.device;
        let model = Twins {
            linear: LinearConfig::new(4, 3).with_bias(false).init(device),
            first: Param::from_tensor(tensor1(&[0.2, -0.1, 0.3], device)),
            second: Param::from_tensor(tensor1(&[-0.3, 0.2, 0.1], device)),
        };
        let batch = regression_batch(32, 4, 3, 5, device);
        let exact = AdaPeftConfig::new().with_estimator(GradientProbe::exact());
        let joint = exact.clone().with_value_model(adapeft::ValueModel::Joint);
        let budget = Budget::Params(6); // both twins fit, the weight (12) does not
        let additive = exact
            .select(&model, std::slice::from_ref(&batch), budget)
            .unwrap();
        let joint_sel = joint
            .select(&model, std::slice::from_ref(&batch), budget)
            .unwrap();
        let one_twin = additive.groups()[1].score.value;
        let other_twin = additive.groups()[2].score.value;
        // The twins score alike (up to finite-difference error); the additive model adds them.
        assert!(rel_err(other_twin, one_twin) < 1e-3);
        assert!(rel_err(additive.predicted_reduction(), one_twin + other_twin) < 1e-12);
        assert!(
            rel_err(joint_sel.predicted_reduction(), one_twin) < 0.01,
            "{}: joint {} vs one twin {one_twin}",
            be.name,
            joint_sel.predicted_reduction()
        );
        assert!(joint_sel.trainable_params() <= 6);
        assert_eq!(joint_sel.settings().value_model, adapeft::ValueModel::Joint);
        // Against brute force over the joint value of every subset within the budget.
        let scores = GradientProbe::exact()
            .estimate(
                &model,
                std::slice::from_ref(&batch),
                &joint.grouping.group(discover(&model)).unwrap(),
            )
            .unwrap();
        let sizes: Vec<u64> = scores.groups.iter().map(|g| g.params).collect();
        let mut best = 0.0f64;
        for mask in 0u32..8 {
            let s: Vec<usize> = (0..3).filter(|&i| mask & (1 << i) != 0).collect();
            if s.iter().map(|&i| sizes[i]).sum::<u64>() <= 6 {
                best = best.max(scores.joint_value(&s).unwrap());
            }
        }
        assert!(rel_err(joint_sel.predicted_reduction(), best) < 1e-6);
        // With room for everything, the weight joins and adds value.
        let all = joint
            .select(&model, std::slice::from_ref(&batch), Budget::Fraction(1.0))
            .unwrap();
        assert!(all.predicted_reduction() > 1.05 * joint_sel.predicted_reduction());
        assert!(all.predicted_reduction() <= all.loss().unwrap());
        // Auto reads the greedy front; the JSON keeps the joint prediction.
        let auto = joint
            .select(&model, std::slice::from_ref(&batch), Budget::Knee)
            .unwrap();
        assert!(auto.trainable_params() > 0);
        let back = Selection::from_json(&joint_sel.to_json()).unwrap();
        assert_eq!(back, joint_sel);
        assert_eq!(back.predicted_reduction(), joint_sel.predicted_reduction());
        // Estimators without a curvature matrix cannot value subsets jointly.
        let forward = AdaPeftConfig::new()
            .with_estimator(adapeft::ForwardProbe::default())
            .with_value_model(adapeft::ValueModel::Joint);
        assert!(matches!(
            forward.select(&model, &[batch], budget),
            Err(SelectError::NoCurvature { .. })
        ));
    }
}

#[test]
fn within_budget_scores_only_the_groups_that_fit() {
    use adapeft::importance::{Groups, Unreliable};
    use adapeft::selection::Candidates;
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    // Sizes 32, 8, 64, 8, 16, 2: a budget of 20 leaves out both hidden weights.
    let budget = Budget::Params(20);
    let config = AdaPeftConfig::new()
        .with_estimator(GradientProbe::exact())
        .with_candidates(Candidates::WithinBudget);
    let selection = config
        .select(&model, std::slice::from_ref(&batch), budget)
        .unwrap();
    assert_eq!(selection.settings().candidates, Candidates::WithinBudget);
    let groups = config.grouping.group(discover(&model)).unwrap();
    let fit: Vec<usize> = (0..groups.len())
        .filter(|&g| groups.groups()[g].numel <= 20)
        .collect();
    assert_eq!(fit.len(), 4);
    // The exact probe paid for the four candidates only.
    assert_eq!(selection.cost().backward_passes, 1 + 2 * 4);
    // Their scores are those of an estimation over exactly them.
    let restricted = Groups::new(
        groups.params().to_vec(),
        fit.iter().map(|&g| groups.groups()[g].clone()).collect(),
    )
    .unwrap();
    let direct = GradientProbe::exact()
        .estimate(&model, std::slice::from_ref(&batch), &restricted)
        .unwrap();
    let mut direct = direct.groups.iter();
    for (g, choice) in selection.groups().iter().enumerate() {
        if fit.contains(&g) {
            assert_eq!(&choice.score, direct.next().unwrap());
        } else {
            assert_eq!(
                choice.score.unreliable,
                Some(Unreliable::LargerThanBudget { budget: 20 })
            );
            assert_eq!(choice.score.value, 0.0);
            assert!(!choice.chosen);
        }
    }
    // The choice is the knapsack optimum over the candidates' values.
    let items: Vec<Item> = selection
        .groups()
        .iter()
        .map(|c| Item::new(c.score.params, c.score.value.max(0.0)))
        .collect();
    let got: f64 = selection.chosen().map(|c| c.score.value).sum();
    assert!((got - brute_force(&items, 20)).abs() <= 1e-12 * got.abs().max(1.0));
    // The setting round-trips, and older JSON without it reads as "all".
    let back = Selection::from_json(&selection.to_json()).unwrap();
    assert_eq!(back.settings().candidates, Candidates::WithinBudget);
    let mut value: serde_json::Value = serde_json::from_str(&selection.to_json()).unwrap();
    value["settings"]
        .as_object_mut()
        .unwrap()
        .remove("candidates");
    let old = Selection::from_json(&value.to_string()).unwrap();
    assert_eq!(old.settings().candidates, Candidates::All);

    // `Auto` reads the whole front: every group is scored.
    let auto = config
        .select(&model, std::slice::from_ref(&batch), Budget::Knee)
        .unwrap();
    assert_eq!(auto.settings().candidates, Candidates::All);
    assert_eq!(auto.cost().backward_passes, 1 + 2 * 6);

    // For the default short run the candidates change the values: the run trains only them.
    let run = AdaPeftConfig::new().with_candidates(Candidates::WithinBudget);
    let within = run
        .select(&model, std::slice::from_ref(&batch), budget)
        .unwrap();
    let all = AdaPeftConfig::new()
        .select(&model, std::slice::from_ref(&batch), budget)
        .unwrap();
    let direct = adapeft::ShortRun::new()
        .estimate(&model, std::slice::from_ref(&batch), &restricted)
        .unwrap();
    for (&g, score) in fit.iter().zip(&direct.groups) {
        assert_eq!(&within.groups()[g].score, score);
    }
    assert!(
        fit.iter()
            .any(|&g| within.groups()[g].score.b != all.groups()[g].score.b),
        "a run without the large groups credits the small ones differently"
    );
}

#[test]
fn always_trained_groups_train_count_in_the_budget_and_the_rest_is_optimal() {
    use adapeft::ShortRun;
    let device = Device::flex().autodiff();
    let (model, batch) = setup(&device);
    let before = snapshot(&model);
    let head = AlwaysTrain::module("head").with_learning_rate(0.05);
    let config = AdaPeftConfig::new()
        .with_estimator(ShortRun::new().with_steps(4).with_learning_rate(0.01))
        .with_always(head.clone());
    let selection = config
        .select(&model, std::slice::from_ref(&batch), Budget::Params(60))
        .unwrap();
    assert_eq!(snapshot(&model), before);

    // The head (16 + 2 parameters) trains, marked, within the budget.
    assert_eq!(selection.always_params(), 18);
    let always: Vec<&str> = selection
        .groups()
        .iter()
        .filter(|g| g.always)
        .map(|g| g.score.name.as_str())
        .collect();
    assert_eq!(always, ["head.weight", "head.bias"]);
    assert!(selection.groups().iter().all(|g| !g.always || g.chosen));
    assert!(selection.trainable_params() <= 60);
    assert_eq!(selection.settings().budget_params, 60);
    assert_eq!(
        selection.settings().always.as_deref(),
        Some("module head at 5e-2")
    );
    // The others are the best subset of the others within the 42 parameters left.
    let others: Vec<Item> = selection
        .groups()
        .iter()
        .filter(|g| !g.always)
        .map(|g| Item::new(g.score.params, g.score.value.max(0.0)))
        .collect();
    let chosen_others: f64 = selection
        .groups()
        .iter()
        .filter(|g| g.chosen && !g.always)
        .map(|g| g.score.value)
        .sum();
    assert!(rel_err(chosen_others, brute_force(&others, 42)) < 1e-9);
    // The short run trained the head at its own rate: the same scores as an estimate on
    // groups that say so.
    let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
    let head_groups: Vec<usize> = (0..groups.len())
        .filter(|&g| groups.groups()[g].name.starts_with("head."))
        .collect();
    let groups = head_groups
        .iter()
        .fold(groups, |g, &k| g.with_learning_rate(k, 0.05));
    let direct = ShortRun::new()
        .with_steps(4)
        .with_learning_rate(0.01)
        .estimate(&model, std::slice::from_ref(&batch), &groups)
        .unwrap();
    for (choice, score) in selection.groups().iter().zip(&direct.groups) {
        assert_eq!(&choice.score, score);
    }
    // Shown, stored, applied.
    assert!(
        selection
            .to_string()
            .contains("always trained (module head at 5e-2): 18 params")
    );
    assert_eq!(
        Selection::from_json(&selection.to_json()).unwrap(),
        selection
    );
    let applied = selection.apply(model.clone());
    let trains: Vec<String> = discover(&applied)
        .into_iter()
        .filter(|p| p.require_grad)
        .map(|p| p.path)
        .collect();
    assert!(
        trains.contains(&"head.weight".to_string()) && trains.contains(&"head.bias".to_string())
    );

    // A budget below the head, a rule that takes nothing, one that cuts a group.
    let err = config
        .select(&model, std::slice::from_ref(&batch), Budget::Params(17))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SelectError::AlwaysOverBudget {
                always: 18,
                budget: 17
            }
        ),
        "{err}"
    );
    let err = AdaPeftConfig::new()
        .with_always(AlwaysTrain::module("heads"))
        .select(&model, std::slice::from_ref(&batch), Budget::Params(60))
        .unwrap_err();
    assert!(
        matches!(&err, SelectError::AlwaysMatchesNothing { rule } if rule == "module heads"),
        "{err}"
    );
    let err = AdaPeftConfig::new()
        .with_grouping(Grouping::PerModule)
        .with_always(AlwaysTrain::group(burn::module::ParamGroup::from_path(
            "head.weight",
        )))
        .select(&model, std::slice::from_ref(&batch), Budget::Params(60))
        .unwrap_err();
    assert!(
        matches!(&err, SelectError::AlwaysSplitsGroup { group, inside, outside }
            if group == "head" && inside == "head.weight" && outside == "head.bias"),
        "{err}"
    );
    let err = AdaPeftConfig::new()
        .with_always(AlwaysTrain::module("head").with_learning_rate(-1.0))
        .select(&model, std::slice::from_ref(&batch), Budget::Params(60))
        .unwrap_err();
    assert!(
        matches!(err, SelectError::AlwaysLearningRate { .. }),
        "{err}"
    );
    assert_eq!(snapshot(&model), before);

    // The knee: the head plus a point of the others' front.
    let auto = config
        .select(&model, std::slice::from_ref(&batch), Budget::Knee)
        .unwrap();
    assert!(auto.groups().iter().filter(|g| g.always).all(|g| g.chosen));
    assert_eq!(
        auto.settings().budget_params,
        auto.trainable_params(),
        "the knee's budget is what it trains"
    );
}

/// Batches of a learnable task: `y = (sin x_0, x_1 / 2)`, or its negation (a held-out set
/// that training on the task can only hurt).
fn task_batches(count: usize, seed: u64, sign: f64, device: &Device) -> Vec<RegressionBatch> {
    (0..count as u64)
        .map(|i| {
            let x = regression_batch(32, 4, 2, seed + i, device).x;
            let y = Tensor::cat(
                vec![
                    x.clone().slice([0..32, 0..1]).sin(),
                    x.clone().slice([0..32, 1..2]).mul_scalar(0.5),
                ],
                1,
            )
            .mul_scalar(sign);
            RegressionBatch { x, y }
        })
        .collect()
}

#[test]
fn held_out_trials_are_what_burns_adam_does_and_recommend_the_best_rate() {
    use adapeft::optim::Masked;
    use adapeft::{HeldOut, ShortRun};
    use burn::optim::{AdamConfig, GradientsParams};

    let device = Device::flex().autodiff();
    let model = Stack::new(2, 8, &device);
    let mut batches = task_batches(4, 40, 1.0, &device);
    batches.extend(task_batches(2, 90, 1.0, &device));
    let rates = [1e-3, 1e-2, 5e-2];
    let config = AdaPeftConfig::new()
        .with_estimator(ShortRun::new().with_steps(4))
        .with_held_out(HeldOut::last(2).with_rates(&rates).with_steps(6));
    let before = snapshot(&model);
    let selection = config
        .select(&model, &batches, Budget::Fraction(0.5))
        .unwrap();
    assert_eq!(snapshot(&model), before);
    // The estimator saw the first four batches only.
    assert_eq!(selection.settings().batches, 4);
    let v = selection.validation().unwrap();
    assert_eq!((v.held_out_batches, v.steps, v.trials.len()), (2, 6, 3));
    assert!(v.auto.is_empty());

    // Each trial is what burn's Adam does to the held-out loss when it trains the chosen
    // parameters for 6 steps on the four batches in turn.
    let held_loss = |m: &Stack| -> f64 {
        batches[4..]
            .iter()
            .map(|b| m.loss(b).into_scalar::<f64>())
            .sum::<f64>()
            / 2.0
    };
    for trial in &v.trials {
        let mut trained = selection.apply(model.clone());
        let mut optim = Masked::new(AdamConfig::new().build(), &selection);
        for t in 0..6 {
            let grads =
                GradientsParams::from_grads(trained.loss(&batches[t % 4]).backward(), &trained);
            trained = optim.step(trial.learning_rate, trained, grads);
        }
        assert!(rel_err(trial.before, held_loss(&model)) < 1e-5);
        let after = trial.after.expect("no run diverges here");
        assert!(
            rel_err(after, held_loss(&trained)) < 1e-4,
            "rate {}: trial {after}, burn's Adam {}",
            trial.learning_rate,
            held_loss(&trained)
        );
    }
    // The recommendation (the default rule, `RateRule::StepBelow`) is the rate tried just
    // below the one with the lowest held-out loss after its run, when that lower run
    // lowered the held-out loss too.
    let lowered = |t: &&adapeft::importance::Trial| t.after.unwrap() < t.before;
    let best = v
        .trials
        .iter()
        .filter(lowered)
        .min_by(|a, b| a.after.unwrap().total_cmp(&b.after.unwrap()))
        .unwrap();
    let below = v
        .trials
        .iter()
        .filter(|t| t.learning_rate < best.learning_rate)
        .max_by(|a, b| a.learning_rate.total_cmp(&b.learning_rate))
        .filter(lowered)
        .expect("the case has a lower rate that lowers the held-out loss");
    assert_eq!(
        selection.recommended_learning_rate(),
        Some(below.learning_rate)
    );
    let line = format!(
        "recommended learning rate: {:e} (one step below the lowest held-out loss",
        below.learning_rate
    );
    assert!(selection.to_string().contains(&line), "{selection}");
    // `RateRule::LowestLoss`: the same trials, the lowest loss's rate.
    let lowest = config
        .clone()
        .with_held_out(
            HeldOut::last(2)
                .with_rates(&rates)
                .with_steps(6)
                .with_rate_rule(adapeft::RateRule::LowestLoss),
        )
        .select(&model, &batches, Budget::Fraction(0.5))
        .unwrap();
    assert_eq!(lowest.validation().unwrap().trials, v.trials);
    assert_eq!(lowest.recommended_learning_rate(), Some(best.learning_rate));
    assert_eq!(
        Selection::from_json(&selection.to_json()).unwrap(),
        selection
    );

    // Bad settings name themselves; without held-out batches there is no recommendation.
    for (held_out, name) in [
        (HeldOut::last(0), "batches"),
        (HeldOut::last(6), "batches"),
        (HeldOut::last(1).with_rates(&[]), "rates"),
        (HeldOut::last(1).with_rates(&[0.0]), "rates"),
        (HeldOut::last(1).with_steps(0), "steps"),
        (
            HeldOut::last(1).with_auto_fractions(&[1.5]),
            "auto_fractions",
        ),
        (HeldOut::last(1).with_auto_tolerance(0.0), "auto_tolerance"),
    ] {
        let err = AdaPeftConfig::new()
            .with_held_out(held_out)
            .select(&model, &batches, Budget::Fraction(0.5))
            .unwrap_err();
        assert!(
            matches!(&err, SelectError::HeldOut { name: n, .. } if *n == name),
            "{err}"
        );
    }
    let plain = AdaPeftConfig::new()
        .select(&model, &batches, Budget::Fraction(0.5))
        .unwrap();
    assert_eq!(plain.recommended_learning_rate(), None);
    assert!(plain.validation().is_none());
}

#[test]
fn auto_takes_the_smallest_size_that_pays_on_held_out_batches_and_never_one_that_hurts() {
    use adapeft::{HeldOut, ShortRun};

    let device = Device::flex().autodiff();
    device.seed(3);
    let model = Stack::new(2, 8, &device);
    let total = model.num_params() as u64;
    let mut batches = task_batches(4, 40, 1.0, &device);
    batches.extend(task_batches(2, 90, 1.0, &device));
    let held_out = HeldOut::last(2)
        .with_rates(&[1e-2, 5e-2])
        .with_steps(8)
        .with_auto_fractions(&[0.05, 0.15, 0.4, 1.0]);
    let config = AdaPeftConfig::new()
        .with_estimator(ShortRun::new().with_steps(4))
        .with_always(AlwaysTrain::module("head"))
        .with_held_out(held_out.clone());

    // Auto needs held-out batches, and a model to try subsets on.
    let err = AdaPeftConfig::new()
        .select(&model, &batches, Budget::Auto)
        .unwrap_err();
    assert!(matches!(err, SelectError::AutoNeedsHeldOut), "{err}");

    let auto = config.select(&model, &batches, Budget::Auto).unwrap();
    let v = auto.validation().unwrap();
    assert!(v.auto.len() >= 2, "{:?}", v.auto);
    // Sizes grow, the smallest within the smallest fraction of the model plus the head
    // (18 parameters), each holding the head.
    for pair in v.auto.windows(2) {
        assert!(pair[0].params <= pair[1].params);
    }
    assert!(
        v.auto[0].params <= 18 + (0.05 * total as f64) as u64,
        "{:?}",
        v.auto
    );
    assert!(v.auto.iter().all(|c| c.params >= 18));
    let best = v
        .auto
        .iter()
        .filter_map(|c| c.reduction)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(best > 0.0, "the task is learnable: {:?}", v.auto);
    let taken: Vec<_> = v.auto.iter().filter(|c| c.taken).collect();
    assert_eq!(taken.len(), 1);
    let first_good = v
        .auto
        .iter()
        .find(|c| c.reduction.is_some_and(|r| r >= 0.9 * best))
        .unwrap();
    assert_eq!(taken[0], first_good);
    assert_eq!(auto.trainable_params(), taken[0].params);
    assert_eq!(auto.settings().budget, Budget::Auto);
    assert_eq!(auto.settings().budget_params, auto.trainable_params());
    assert_eq!(auto.recommended_learning_rate(), taken[0].learning_rate);
    assert!(auto.groups().iter().filter(|g| g.always).all(|g| g.chosen));
    assert_eq!(Selection::from_json(&auto.to_json()).unwrap(), auto);

    // Held-out batches of the opposite task: every run raises their loss, so Auto trains only
    // the head it must, and recommends no rate. The head runs at its own rate: one trial, at
    // that rate.
    // (The same inputs as two training batches, with targets of twice the opposite sign:
    // whatever the initial weights, fitting the task moves every prediction away from them.)
    let mut hostile = task_batches(4, 40, 1.0, &device);
    hostile.extend(task_batches(2, 40, -2.0, &device));
    let guarded = config
        .clone()
        .with_always(AlwaysTrain::module("head").with_learning_rate(0.05))
        .select(&model, &hostile, Budget::Auto)
        .unwrap();
    let v = guarded.validation().unwrap();
    assert_eq!(v.trials.len(), 1);
    assert_eq!(v.trials[0].learning_rate, 0.05);
    assert!(v.trials[0].after.unwrap() > v.trials[0].before);
    assert!(
        v.auto.iter().all(|c| c.reduction.is_none() && !c.taken),
        "{:?}",
        v.auto
    );
    assert_eq!(guarded.trainable_params(), 18);
    assert!(guarded.groups().iter().all(|g| g.chosen == g.always));
    assert_eq!(guarded.recommended_learning_rate(), None);
    // Without a head to keep: the sizes whose runs raised the held-out loss (the whole model,
    // which fits the task) are never taken; what is taken lowered it (a lone bias can: it
    // moves the mean prediction, which the hostile batches also reward). Nothing trains only
    // when no size lowered it.
    let bare = AdaPeftConfig::new()
        .with_estimator(ShortRun::new().with_steps(4))
        .with_held_out(held_out)
        .select(&model, &hostile, Budget::Auto)
        .unwrap();
    let v = bare.validation().unwrap();
    let everything = v.auto.last().unwrap();
    assert_eq!(everything.params, total, "{:?}", v.auto);
    assert!(
        everything.reduction.is_none() && !everything.taken,
        "{:?}",
        v.auto
    );
    assert!(
        v.auto
            .iter()
            .all(|c| !c.taken || c.reduction.is_some_and(|r| r > 0.0)),
        "{:?}",
        v.auto
    );
    assert_eq!(
        bare.is_empty(),
        v.auto.iter().all(|c| c.reduction.is_none()),
        "{:?}",
        v.auto
    );
    if bare.is_empty() {
        assert_eq!(bare.outcome(), BudgetOutcome::Empty);
    }
}
