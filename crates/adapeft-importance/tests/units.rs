//! Groups below the tensor ([`Groups::split`]): the names, sizes and errors of the cut, and the
//! values of the units against independent truths computed on the host:
//! - the baselines of blocks and output neurons against the closed-form logistic gradient;
//! - the short run's allocations of blocks against the same Adam run computed on the host in
//!   f64 from the closed-form gradient, and the units of a tensor summing to the whole
//!   tensor's credit in the same run;
//! - attention heads against burn's gradient sliced by hand.
//!
//! Every test runs on each backend `adapeft_testing::backends()` gives.

use adapeft_importance::{
    Baseline, EstimateError, Estimator, GradientProbe, Group, Grouping, GroupingError, Groups,
    Part, RunOptimizer, ShortRun, ShortRunValue, Tiling, Unit, UnitRules, discover,
};
use adapeft_testing::*;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Sums of a row-major `[rows, cols]` host matrix over the cells of `tiling`, cell by
/// coordinate (independent of the device's region-by-region sums).
fn host_cell_sums(values: &[f64], tiling: &Tiling) -> Vec<f64> {
    let (_, nc) = tiling.grid();
    let mut out = vec![0.0; tiling.cells()];
    for i in 0..tiling.rows {
        for j in 0..tiling.cols {
            let cell = (i / tiling.band_rows) * nc + j / tiling.band_cols;
            out[cell] += values[i * tiling.cols + j];
        }
    }
    out
}

fn close(got: f64, want: f64, scale: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-4 * scale,
        "{what}: {got} vs host {want} (scale {scale})"
    );
}

fn max_abs(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The group named `name`.
fn index(groups: &Groups, name: &str) -> usize {
    groups
        .groups()
        .iter()
        .position(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group `{name}`"))
}

#[test]
fn split_names_sizes_and_covers_every_coordinate_once() {
    let device = Device::flex();
    let model = Mlp::new(5, 7, 3, &device);
    let groups = per_tensor(&model);
    let rules = UnitRules::new()
        .with(r"^hidden$", Unit::Outputs)
        .unwrap()
        .with(r"^out$", Unit::Blocks { rows: 3, cols: 2 })
        .unwrap();
    let units = groups.split(&rules).unwrap();
    let names: Vec<&str> = units.groups().iter().map(|g| g.name.as_str()).collect();
    let mut want = vec!["out.bias".to_string()];
    want.extend((0..7).map(|j| format!("hidden.out[{j}]")));
    for i in 0..3 {
        for j in 0..2 {
            want.push(format!("out.block[{i},{j}]"));
        }
    }
    assert_eq!(names, want);
    // An output neuron: its column of the [5, 7] weight and its bias entry.
    assert_eq!(units.groups()[index(&units, "hidden.out[6]")].numel, 5 + 1);
    // Blocks of the [7, 3] weight: 3 x 2, then the shorter last row and column of blocks.
    let numel = |name: &str| units.groups()[index(&units, name)].numel;
    assert_eq!(
        [
            numel("out.block[0,0]"),
            numel("out.block[0,1]"),
            numel("out.block[2,0]"),
            numel("out.block[2,1]")
        ],
        [6, 3, 2, 1]
    );
    let total: u64 = units.groups().iter().map(|g| g.numel).sum();
    assert_eq!(total, groups.total_params());
    // Every coordinate of every tiled tensor is in exactly one part.
    for (p, tiling) in units.tilings().iter().enumerate() {
        let Some(tiling) = tiling else { continue };
        let mut covered = vec![0u32; tiling.rows * tiling.cols];
        for part in units.groups().iter().flat_map(|g| &g.parts) {
            if part.param as usize == p {
                let (rows, cols) = tiling.cell_rect(part.cell as usize);
                for i in rows {
                    for j in cols.clone() {
                        covered[i * tiling.cols + j] += 1;
                    }
                }
            }
        }
        assert!(covered.iter().all(|&c| c == 1), "param {p}: {covered:?}");
    }
    // The checked constructor accepts the split's own groups and tilings.
    let rebuilt = Groups::new_tiled(
        units.params().to_vec(),
        units.tilings().to_vec(),
        units.groups().to_vec(),
    )
    .unwrap();
    assert_eq!(rebuilt, units);
    // Whole-tensor groups are untouched, and no rule changes nothing.
    assert_eq!(groups.split(&UnitRules::new()).unwrap(), groups);
    assert!(!groups.has_parts() && units.has_parts());
}

#[test]
fn units_take_the_rate_of_the_group_they_came_from() {
    let device = Device::flex();
    let model = Mlp::new(3, 4, 2, &device);
    let groups = Grouping::PerModule
        .group(discover(&model))
        .unwrap()
        .with_learning_rate(0, 0.3);
    let units = groups
        .split(&UnitRules::new().with(r"^hidden$", Unit::Inputs).unwrap())
        .unwrap();
    // Inputs leave the bias whole: `hidden` keeps its bias (and its rate), the rows follow.
    assert_eq!(units.groups()[0].name, "hidden");
    assert_eq!(units.groups()[0].numel, 4);
    assert_eq!(units.learning_rate(0), Some(0.3));
    let row = index(&units, "hidden.in[2]");
    assert_eq!(units.groups()[row].numel, 4);
    assert_eq!(units.learning_rate(row), Some(0.3));
    assert_eq!(units.learning_rate(index(&units, "out")), None);
}

#[test]
fn bad_rules_and_bad_parts_are_typed_errors_naming_the_input() {
    let device = Device::flex();
    let model = Mlp::new(6, 6, 2, &device);
    let groups = per_tensor(&model);
    assert!(matches!(
        UnitRules::new().with("(", Unit::Outputs),
        Err(GroupingError::InvalidRegex { .. })
    ));
    assert!(matches!(
        UnitRules::new().with("out", Unit::Blocks { rows: 0, cols: 2 }),
        Err(GroupingError::InvalidUnit { .. })
    ));
    let no_heads = Unit::Heads {
        heads: 0,
        outputs: vec!["q".into()],
        inputs: vec![],
    };
    assert!(matches!(
        UnitRules::new().with("attn", no_heads),
        Err(GroupingError::InvalidUnit { .. })
    ));
    let nothing = groups.split(&UnitRules::new().with("^nope$", Unit::Outputs).unwrap());
    match nothing {
        Err(GroupingError::InvalidUnit { pattern, reason }) => {
            assert_eq!(pattern, "^nope$");
            assert!(reason.contains("matches no module"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A rule that cuts nothing: its module was cut by the rule before.
    let twice = UnitRules::new()
        .with("^hidden$", Unit::Outputs)
        .unwrap()
        .with("^hid", Unit::Inputs)
        .unwrap();
    match groups.split(&twice) {
        Err(GroupingError::InvalidUnit { pattern, reason }) => {
            assert_eq!(pattern, "^hid");
            assert!(reason.contains("cuts nothing"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // 4 heads do not divide the 6 outputs of the query; a projection that is not there.
    let block = per_tensor(&Block::new(6, &device));
    let heads = |heads, projection: &str| Unit::Heads {
        heads,
        outputs: vec![projection.into()],
        inputs: vec![],
    };
    for (unit, words) in [
        (heads(4, "query"), "do not divide"),
        (heads(2, "missing"), "no such projection"),
    ] {
        let rules = UnitRules::new().with("^attention$", unit).unwrap();
        match block.split(&rules) {
            Err(GroupingError::InvalidUnit { reason, .. }) => {
                assert!(reason.contains(words), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    // The checked constructor: parts of untiled tensors, two groups with one cell, a tiled
    // tensor as a whole member, tilings that do not fit.
    let params = groups.params().to_vec();
    let tiled = |p: usize| {
        let mut t = vec![None; params.len()];
        t[p] = Tiling::new(&params[p].shape, 6, 1);
        t
    };
    let part = |cell| Part { param: 0, cell };
    let unit = |name: &str, parts: Vec<Part>, numel| Group {
        name: name.into(),
        members: vec![],
        parts,
        numel,
    };
    let err = Groups::new(params.clone(), vec![unit("u", vec![part(0)], 6)]).unwrap_err();
    assert!(
        matches!(&err, GroupingError::InvalidPart { group, .. } if group == "u"),
        "{err:?}"
    );
    let err = Groups::new_tiled(
        params.clone(),
        tiled(0),
        vec![unit("a", vec![part(1)], 6), unit("b", vec![part(1)], 6)],
    )
    .unwrap_err();
    assert!(
        matches!(&err, GroupingError::Overlap { first, second, .. } if first == "a" && second == "b"),
        "{err:?}"
    );
    let err =
        Groups::new_tiled(params.clone(), tiled(0), vec![unit("a", vec![part(6)], 6)]).unwrap_err();
    assert!(matches!(err, GroupingError::InvalidPart { .. }), "{err:?}");
    let whole = Group {
        name: "w".into(),
        members: vec![0],
        parts: vec![],
        numel: 36,
    };
    let err = Groups::new_tiled(params.clone(), tiled(0), vec![whole]).unwrap_err();
    assert!(matches!(err, GroupingError::InvalidPart { .. }), "{err:?}");
    let err =
        Groups::new_tiled(params.clone(), vec![], vec![unit("a", vec![part(0)], 6)]).unwrap_err();
    assert!(matches!(err, GroupingError::InvalidPart { .. }), "{err:?}");
    let mut wrong_view = vec![None; params.len()];
    wrong_view[0] = Tiling::new(&[3, 12], 3, 1);
    let err = Groups::new_tiled(
        params.clone(),
        wrong_view,
        vec![unit("a", vec![part(0)], 3)],
    )
    .unwrap_err();
    assert!(matches!(err, GroupingError::InvalidPart { .. }), "{err:?}");
    let err =
        Groups::new_tiled(params.clone(), tiled(0), vec![unit("a", vec![part(0)], 7)]).unwrap_err();
    assert!(matches!(err, GroupingError::Numel { .. }), "{err:?}");
}

#[test]
fn estimators_that_cannot_score_units_say_so() {
    let device = Device::flex();
    let problem = LogisticProblem::random(16, 4, 3, 5);
    let model = problem.model(&device);
    let batch = problem.batch(&device, 1.0);
    let units = per_tensor(&model)
        .split(&UnitRules::new().with("^linear$", Unit::Outputs).unwrap())
        .unwrap();
    let batches = std::slice::from_ref(&batch);
    let err = GradientProbe::exact()
        .estimate(&model, batches, &units)
        .unwrap_err();
    assert!(
        matches!(&err, EstimateError::UnitsUnsupported { estimator: "GradientProbe", group } if group == "linear.out[0]"),
        "{err:?}"
    );
    let alone = ShortRun::new().with_value(ShortRunValue::Alone);
    assert!(matches!(
        alone.estimate(&model, batches, &units),
        Err(EstimateError::UnitsUnsupported { .. })
    ));
}

#[test]
fn baselines_of_blocks_and_neurons_match_the_closed_form_gradient() {
    for be in backends() {
        let problem = LogisticProblem::random(40, 5, 4, 11);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let batches = std::slice::from_ref(&batch);
        let (gw, gb) = problem.gradients(&model);
        let w = host(model.linear.weight.val());
        let whole = per_tensor(&model);
        for unit in [Unit::Blocks { rows: 2, cols: 3 }, Unit::Outputs] {
            let rules = UnitRules::new().with("^linear$", unit.clone()).unwrap();
            let units = whole.split(&rules).unwrap();
            let tiling = units.tilings()[0].expect("the weight is tiled");
            let with_bias = matches!(unit, Unit::Outputs);
            // The first groups are what stayed whole (the bias, for blocks); the units follow.
            let first = units.len() - tiling.cells();
            let per_unit = |weight: Vec<f64>, bias: Vec<f64>| -> Vec<f64> {
                let mut v = host_cell_sums(&weight, &tiling);
                if with_bias {
                    for (v, b) in v.iter_mut().zip(bias) {
                        *v += b;
                    }
                }
                v
            };
            let squares = |x: &[f64]| x.iter().map(|v| v * v).collect::<Vec<_>>();
            let cases = [
                (Baseline::GradientNorm, per_unit(squares(&gw), squares(&gb))),
                (Baseline::Fisher, per_unit(squares(&gw), squares(&gb))),
                (
                    Baseline::Taylor,
                    per_unit(
                        w.iter().zip(&gw).map(|(w, g)| w * g).collect(),
                        vec![0.0; gb.len()],
                    ),
                ),
                (
                    Baseline::Magnitude,
                    per_unit(w.iter().map(|w| w.abs()).collect(), vec![0.0; gb.len()]),
                ),
                (
                    Baseline::MeanAbsGradient,
                    per_unit(
                        gw.iter().map(|g| g.abs()).collect(),
                        gb.iter().map(|g| g.abs()).collect(),
                    ),
                ),
            ];
            for (baseline, want) in cases {
                let scores = baseline.estimate(&model, batches, &units).unwrap();
                assert_eq!(scores.groups.len(), units.len());
                let want: Vec<f64> = match (baseline, with_bias) {
                    // Taylor is |w . g| per unit, bias included for neurons.
                    (Baseline::Taylor, true) => {
                        let bias = host(model.linear.bias.as_ref().unwrap().val());
                        let wg: Vec<f64> = w.iter().zip(&gw).map(|(w, g)| w * g).collect();
                        let bg: Vec<f64> = bias.iter().zip(&gb).map(|(b, g)| b * g).collect();
                        per_unit(wg, bg).into_iter().map(f64::abs).collect()
                    }
                    (Baseline::Magnitude, true) => {
                        let bias = host(model.linear.bias.as_ref().unwrap().val());
                        let abs_w = w.iter().map(|w| w.abs()).collect();
                        per_unit(abs_w, bias.iter().map(|b| b.abs()).collect())
                    }
                    (Baseline::Taylor, false) => want.into_iter().map(f64::abs).collect(),
                    // The mean over the unit's entries.
                    (Baseline::MeanAbsGradient, _) => want
                        .iter()
                        .enumerate()
                        .map(|(k, v)| v / units.groups()[first + k].numel as f64)
                        .collect(),
                    _ => want,
                };
                let scale = max_abs(&want);
                for (k, want) in want.iter().enumerate() {
                    let got = &scores.groups[first + k];
                    let what = format!("{} {baseline:?} {}", be.name, got.name);
                    close(got.value, *want, scale, &what);
                }
            }
        }
    }
}

/// The Adam run of `config` on the logistic problem computed on the host in f64 from the
/// closed-form gradient (one batch, every coordinate at the run's rate): each coordinate's
/// credit, `sum_t G_i(t) s_i(t)` (allocation) or `sum_t 1/2 (G_i(t) + G_i(t+1)) s_i(t)`
/// (trapezoid), for the weight (`[d, c]` row-major) and the bias. With `trains`, only the
/// coordinates it marks (weight then bias) train: the others' gradient is zero.
fn host_credits(
    problem: &LogisticProblem,
    model: &Logistic,
    config: &ShortRun,
    trains: Option<&[bool]>,
) -> (Vec<f64>, Vec<f64>) {
    let RunOptimizer::Adam {
        beta_1,
        beta_2,
        epsilon,
    } = config.optimizer
    else {
        panic!("an Adam run");
    };
    let mut w = host(model.linear.weight.val());
    let mut bias = host(model.linear.bias.as_ref().unwrap().val());
    let nw = w.len();
    let n = nw + bias.len();
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let mut credit = vec![0.0; n];
    let gradient = |w: &[f64], bias: &[f64]| {
        let (gw, gb) = problem.gradients_at(w, bias);
        let mut g = [gw, gb].concat();
        if let Some(trains) = trains {
            g.iter_mut()
                .zip(trains)
                .for_each(|(g, &t)| *g *= f64::from(u8::from(t)));
        }
        g
    };
    let mut grad = gradient(&w, &bias);
    for t in 1..=config.steps {
        let mut s = vec![0.0; n];
        for i in 0..n {
            m[i] = beta_1 * m[i] + (1.0 - beta_1) * grad[i];
            v[i] = beta_2 * v[i] + (1.0 - beta_2) * grad[i] * grad[i];
            let m_hat = m[i] / (1.0 - beta_1.powi(t as i32));
            let v_hat = v[i] / (1.0 - beta_2.powi(t as i32));
            s[i] = config.learning_rate * m_hat / (v_hat.sqrt() + epsilon);
            if i < nw {
                w[i] -= s[i];
            } else {
                bias[i - nw] -= s[i];
            }
        }
        let next = gradient(&w, &bias);
        for i in 0..n {
            credit[i] += match config.value {
                ShortRunValue::Allocation => grad[i] * s[i],
                _ => 0.5 * (grad[i] + next[i]) * s[i],
            };
        }
        grad = next;
    }
    let bias_credit = credit.split_off(nw);
    (credit, bias_credit)
}

#[test]
fn short_run_credits_of_units_match_the_host_run_and_sum_to_the_tensors() {
    for be in backends() {
        let problem = LogisticProblem::random(40, 5, 4, 3);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let batches = std::slice::from_ref(&batch);
        let whole = per_tensor(&model);
        for value in [ShortRunValue::Allocation, ShortRunValue::Trapezoid] {
            let config = ShortRun {
                steps: 6,
                learning_rate: 0.05,
                optimizer: RunOptimizer::adam(),
                value,
                held_out: 0,
            };
            let (cw, cb) = host_credits(&problem, &model, &config, None);
            let tensors = config.estimate(&model, batches, &whole).unwrap();
            for unit in [
                Unit::Blocks { rows: 2, cols: 3 },
                Unit::Outputs,
                Unit::Inputs,
            ] {
                let units = whole
                    .split(&UnitRules::new().with("^linear$", unit.clone()).unwrap())
                    .unwrap();
                let scores = config.estimate(&model, batches, &units).unwrap();
                let tiling = units.tilings()[0].expect("the weight is tiled");
                let mut want = host_cell_sums(&cw, &tiling);
                if matches!(unit, Unit::Outputs) {
                    for (v, b) in want.iter_mut().zip(&cb) {
                        *v += b;
                    }
                }
                let first = units.len() - tiling.cells();
                let scale = max_abs(&want);
                for (k, want) in want.iter().enumerate() {
                    let got = &scores.groups[first + k];
                    close(
                        got.b,
                        *want,
                        10.0 * scale,
                        &format!("{} {value:?} {}", be.name, got.name),
                    );
                }
                // The same run split finer: the units' credits add up to the tensors'.
                let sum: f64 = scores.groups.iter().map(|g| g.b).sum();
                let tensor_sum: f64 = tensors.groups.iter().map(|g| g.b).sum();
                close(
                    sum,
                    tensor_sum,
                    max_abs(&[tensor_sum]),
                    &format!("{} {value:?} {unit:?} total", be.name),
                );
                assert_eq!(scores.cost.backward_passes, tensors.cost.backward_passes);
            }
        }
    }
}

/// A run over a subset of the units (`Groups::subset`: two blocks of the weight, the bias
/// left out) trains those cells alone: their credits are the host run's in which only they
/// move, not those of a run that trains the whole weight.
#[test]
fn a_short_run_over_some_units_trains_only_their_cells() {
    for be in backends() {
        let problem = LogisticProblem::random(40, 5, 4, 3);
        let model = problem.model(&be.device);
        let batch = problem.batch(&be.device, 1.0);
        let units = per_tensor(&model)
            .split(
                &UnitRules::new()
                    .with("^linear$", Unit::Blocks { rows: 2, cols: 3 })
                    .unwrap(),
            )
            .unwrap();
        let tiling = units.tilings()[0].expect("the weight is tiled");
        let keep = [
            index(&units, "linear.block[0,0]"),
            index(&units, "linear.block[2,1]"),
        ];
        let subset = units.subset(&keep);
        let config = ShortRun {
            steps: 6,
            learning_rate: 0.05,
            optimizer: RunOptimizer::adam(),
            value: ShortRunValue::Trapezoid,
            held_out: 0,
        };
        // The two blocks' entries train; every other weight entry and the bias do not.
        let nw = tiling.rows * tiling.cols;
        let mut trains = vec![false; nw + tiling.cols];
        for cell in [0, 2 * tiling.grid().1 + 1] {
            let (rows, cols) = tiling.cell_rect(cell);
            for i in rows {
                for j in cols.clone() {
                    trains[i * tiling.cols + j] = true;
                }
            }
        }
        let (cw, _) = host_credits(&problem, &model, &config, Some(&trains));
        let (all, _) = host_credits(&problem, &model, &config, None);
        let scores = config
            .estimate(&model, std::slice::from_ref(&batch), &subset)
            .unwrap();
        let want = host_cell_sums(&cw, &tiling);
        let whole = host_cell_sums(&all, &tiling);
        let cells = [0, 2 * tiling.grid().1 + 1];
        for (k, cell) in cells.into_iter().enumerate() {
            let got = &scores.groups[k];
            let what = format!("{} {}", be.name, got.name);
            close(got.b, want[cell], 10.0 * max_abs(&want), &what);
        }
        // The control: a run of the whole weight credits these cells differently, by far more
        // than the tolerance above.
        let apart = cells
            .iter()
            .map(|&c| (want[c] - whole[c]).abs())
            .fold(0.0, f64::max);
        assert!(
            apart > 1e-2 * max_abs(&want),
            "{}: the control does not tell the runs apart ({apart})",
            be.name
        );
    }
}

// An attention block of four projections, for heads.

#[derive(Module, Debug)]
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
}

#[derive(Module, Debug)]
struct Block {
    attention: Attention,
    head: Linear,
}

impl Block {
    fn new(d: usize, device: &Device) -> Block {
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let block = Block {
            attention: Attention {
                query: linear(d, d),
                key: linear(d, d),
                value: linear(d, d),
                output: linear(d, d),
            },
            head: linear(d, 1),
        };
        with_random_params(&block, 7, 0.5, device)
    }

    fn loss(&self, x: &Tensor<2>, y: &Tensor<2>) -> Tensor<1> {
        let a = &self.attention;
        let mixed =
            a.query.forward(x.clone()) * a.key.forward(x.clone()) + a.value.forward(x.clone());
        let h = a.output.forward(mixed.tanh());
        (self.head.forward(h) - y.clone()).square().mean()
    }
}

#[test]
fn heads_hold_their_slices_of_every_projection() {
    for be in backends() {
        let (d, heads, n) = (6, 2, 12);
        let model = Block::new(d, &be.device);
        let batch = regression_batch(n, d, 1, 9, &be.device);
        let loss = |m: &Block, b: &RegressionBatch| m.loss(&b.x, &b.y);
        let rules = UnitRules::new()
            .with(
                r"^attention$",
                Unit::Heads {
                    heads,
                    outputs: vec!["query".into(), "key".into(), "value".into()],
                    inputs: vec!["output".into()],
                },
            )
            .unwrap();
        let units = per_tensor(&model).split(&rules).unwrap();
        let names: Vec<&str> = units.groups().iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "attention.output.bias",
                "head.weight",
                "head.bias",
                "attention.head[0]",
                "attention.head[1]"
            ]
        );
        let band = d / heads;
        let head_numel = (3 * (d * band + band) + band * d) as u64;
        assert_eq!(units.groups()[3].numel, head_numel);

        // Burn's gradient per tensor, sliced by hand: head h holds columns h*band.. of the
        // query, key and value weights and their bias entries, and rows h*band.. of the
        // output weight.
        let grads = gradient_at(&model, &flat_params(&model), &be.device, |m: &Block| {
            loss(m, &batch)
        });
        let paths: Vec<String> = discover(&model).into_iter().map(|p| p.path).collect();
        let grad = |path: &str| &grads[paths.iter().position(|p| p == path).unwrap()];
        let mut want = vec![0.0; heads];
        for (h, want) in want.iter_mut().enumerate() {
            let cols = h * band..(h + 1) * band;
            for proj in ["query", "key", "value"] {
                let w = grad(&format!("attention.{proj}.weight"));
                for i in 0..d {
                    for j in cols.clone() {
                        *want += w[i * d + j].powi(2);
                    }
                }
                let b = grad(&format!("attention.{proj}.bias"));
                *want += cols.clone().map(|j| b[j].powi(2)).sum::<f64>();
            }
            let w = grad("attention.output.weight");
            for i in cols.clone() {
                *want += (0..d).map(|j| w[i * d + j].powi(2)).sum::<f64>();
            }
        }
        let scores = Baseline::GradientNorm
            .estimate_with(&model, std::slice::from_ref(&batch), &units, &loss)
            .unwrap();
        let scale = max_abs(&want);
        for (h, want) in want.iter().enumerate() {
            close(
                scores.groups[3 + h].value,
                *want,
                scale,
                &format!("{} head {h}", be.name),
            );
        }
    }
}
