//! Training units below the tensor (issue 21, part 3): masks of cells (`CellMask`,
//! `GradientMask::from_groups`) and `Masked`, which keeps every untrained entry of a partially
//! trained tensor bit-identical to its value before training, AdamW's decoupled weight decay
//! included; `Reselect` between selections of units; adapter files that hold only the
//! trained cells (`save_trained`, `load_trained`).
//! The trained entries are computed here from the tilings' rectangles, independently of the
//! masks' and the file's own construction. Every test runs on each backend `backends()` gives.

use adapeft::importance::{Estimator, Groups, Objective, ShortRun, Unit, UnitRules};
use adapeft::optim::{CellMask, GradientMask, Masked, OptimError, Reselect};
use adapeft::selection::SelectionError;
use adapeft::selection::{AlwaysTrain, HeldOut, LoraChoices, LoraChoicesError, SelectError};
use adapeft::{AdaPeftConfig, Budget, Scored, Selection, load_trained, save_trained};
use adapeft_testing::*;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, MultiGradientsParams};
use burn::tensor::Device;

/// A seeded MLP cut into units: the hidden layer into its output neurons, the output layer's
/// weight into 2 x 2 blocks (its bias stays whole), and the groups that train: two neurons,
/// one block and the output bias.
fn setup(device: &Device) -> (Mlp, RegressionBatch, Groups, Vec<usize>) {
    let model = with_random_params(&Mlp::new(4, 6, 3, device), 3, 0.5, device);
    let batch = regression_batch(16, 4, 3, 5, device);
    let rules = UnitRules::new()
        .with("^hidden$", Unit::Outputs)
        .unwrap()
        .with("^out$", Unit::Blocks { rows: 2, cols: 2 })
        .unwrap();
    let units = per_tensor(&model).split(&rules).unwrap();
    let chosen = [
        "hidden.out[1]",
        "hidden.out[4]",
        "out.block[0,1]",
        "out.bias",
    ]
    .iter()
    .map(|name| units.groups().iter().position(|g| g.name == *name).unwrap())
    .collect();
    (model, batch, units, chosen)
}

/// For every parameter, whether each entry (row-major) is trained by the groups `chosen`.
fn trained_entries(groups: &Groups, chosen: &[usize]) -> Vec<Vec<bool>> {
    let mut out: Vec<Vec<bool>> = groups
        .params()
        .iter()
        .map(|p| vec![false; p.numel as usize])
        .collect();
    for &g in chosen {
        let group = &groups.groups()[g];
        for &m in &group.members {
            out[m].iter_mut().for_each(|t| *t = true);
        }
        for part in &group.parts {
            let tiling = groups.tilings()[part.param as usize].unwrap();
            let (rows, cols) = tiling.cell_rect(part.cell as usize);
            for i in rows {
                for j in cols.clone() {
                    out[part.param as usize][i * tiling.cols + j] = true;
                }
            }
        }
    }
    out
}

/// Every trained entry (`trained`, per parameter) changed from `before` to `after`, and every
/// other entry is bit-identical.
fn assert_only_trained_moved(
    groups: &Groups,
    trained: &[Vec<bool>],
    before: &[Vec<f64>],
    after: &[Vec<f64>],
    backend: &str,
) {
    for (p, param) in groups.params().iter().enumerate() {
        for (i, &t) in trained[p].iter().enumerate() {
            let (b, a) = (before[p][i], after[p][i]);
            if t {
                assert_ne!(a, b, "{backend} {}[{i}] trains", param.path);
            } else {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{backend} {}[{i}] moved",
                    param.path
                );
            }
        }
    }
}

fn train<O: FnMut(Mlp, GradientsParams) -> Mlp>(
    model: Mlp,
    batch: &RegressionBatch,
    mut step: O,
) -> Mlp {
    let mut model = model;
    for _ in 0..5 {
        let loss = model.loss(batch);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = step(model, grads);
    }
    model
}

#[test]
fn masked_keeps_untrained_entries_bit_identical_under_adamw_decay() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch, units, chosen) = setup(&device);
        let mask = GradientMask::from_groups(&units, &chosen);
        mask.check(&model).unwrap();
        let trained = trained_entries(&units, &chosen);
        let want: usize = trained.iter().flatten().filter(|&&t| t).count();
        assert_eq!(mask.trainable_params(&model), want);
        let chosen_numel: u64 = chosen.iter().map(|&g| units.groups()[g].numel).sum();
        assert_eq!(want as u64, chosen_numel);

        let before = flat_params(&model);
        let flags: Vec<bool> = snapshot(&model).into_iter().map(|s| s.2).collect();
        let mut optim = Masked::new(AdamWConfig::new().with_weight_decay(0.5).build(), mask);
        let after = train(model, &batch, |m, g| optim.step(1e-2, m, g));
        // burn's AdamW keeps two dense moments per tensor with a gradient: all four tensors
        // of the MLP have trained entries, so all four have state, partially trained or not.
        assert_eq!(optim.state_tensors(), 2 * 4, "{}", be.name);
        let after_flags: Vec<bool> = snapshot(&after).into_iter().map(|s| s.2).collect();
        assert_eq!(flags, after_flags, "{}: require-grad kept", be.name);
        let after = flat_params(&after);
        assert_only_trained_moved(&units, &trained, &before, &after, be.name);
    }
}

#[test]
fn without_the_restore_weight_decay_moves_untrained_entries() {
    // The trap the restore exists for: the gradient masked, AdamW's decay still moves the
    // untrained entries of a partially trained tensor.
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch, units, chosen) = setup(&device);
        let mask = GradientMask::from_groups(&units, &chosen);
        let trained = trained_entries(&units, &chosen);
        let before = flat_params(&model);
        let mut optim = AdamWConfig::new().with_weight_decay(0.5).init();
        let after = train(model, &batch, |m, g| {
            let g = mask.filter(g, &m);
            optim.step(1e-2, m, g)
        });
        let after = flat_params(&after);
        let hidden_weight = units
            .params()
            .iter()
            .position(|p| p.path == "hidden.weight")
            .unwrap();
        let moved = trained[hidden_weight]
            .iter()
            .enumerate()
            .filter(|&(i, &t)| !t && after[hidden_weight][i] != before[hidden_weight][i])
            .count();
        assert!(moved > 0, "{}: decay should move frozen entries", be.name);
    }
}

#[test]
fn the_gradient_of_a_partial_tensor_is_zero_outside_its_cells_and_unchanged_inside() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch, units, chosen) = setup(&device);
        let mask = GradientMask::from_groups(&units, &chosen);
        let trained = trained_entries(&units, &chosen);
        let loss = model.loss(&batch);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let full = gradient_at(&model, &flat_params(&model), &device, |m: &Mlp| {
            m.loss(&batch)
        });
        let mut filtered = mask.filter(grads, &model);
        struct Ids(Vec<burn::module::ParamId>);
        impl burn::module::ModuleVisitor for Ids {
            fn visit_float<const D: usize>(
                &mut self,
                param: &burn::module::Param<burn::tensor::Tensor<D>>,
            ) {
                self.0.push(param.id);
            }
        }
        let mut ids = Ids(Vec::new());
        model.visit(&mut ids);
        for (p, id) in ids.0.into_iter().enumerate() {
            let any = trained[p].iter().any(|&t| t);
            let grad = match units.params()[p].shape.len() {
                1 => filtered.remove::<1>(id).map(host),
                _ => filtered.remove::<2>(id).map(host),
            };
            let Some(grad) = grad else {
                assert!(
                    !any,
                    "{}: {} has no gradient",
                    be.name,
                    units.params()[p].path
                );
                continue;
            };
            for (i, &t) in trained[p].iter().enumerate() {
                let want = if t { full[p][i] } else { 0.0 };
                assert_eq!(grad[i], want, "{} {}[{i}]", be.name, units.params()[p].path);
            }
        }
    }
}

#[test]
fn cells_that_do_not_fit_are_typed_errors() {
    let device = Device::flex().autodiff();
    let (model, _, units, _) = setup(&device);
    let tiling = units.tilings()[0].unwrap(); // hidden.weight, 6 output neurons
    assert!(matches!(
        CellMask::new(tiling, []),
        Err(OptimError::InvalidCells { .. })
    ));
    let err = CellMask::new(tiling, [2, 6]).unwrap_err();
    assert!(err.to_string().contains("cell 6"), "{err}");
    let cells = CellMask::new(tiling, [5, 2, 2]).unwrap();
    assert_eq!(cells.cells(), [2, 5]);
    assert_eq!(cells.numel(), 2 * 4);
    let mask = GradientMask::new(burn::module::ParamGroup::from_paths(Vec::<String>::new()));
    let err = mask
        .clone()
        .with_cells("hidden.nope", cells.clone())
        .check(&model)
        .unwrap_err();
    assert!(
        matches!(&err, OptimError::InvalidCells { path, .. } if path == "hidden.nope"),
        "{err}"
    );
    // The output layer's weight is [6, 3]: cells of a [4, 6] view do not fit it.
    let err = mask
        .with_cells("out.weight", cells)
        .check(&model)
        .unwrap_err();
    assert!(err.to_string().contains("[4, 6]"), "{err}");
}

#[test]
fn a_selection_of_units_trains_exactly_its_cells() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch, units, _) = setup(&device);
        let scores = ShortRun::new()
            .with_steps(4)
            .estimate(&model, std::slice::from_ref(&batch), &units)
            .unwrap();
        let scored = Scored::new(units.clone(), scores, 1).unwrap();
        let selection = AdaPeftConfig::new()
            .select_scored(&scored, Budget::Params(20))
            .unwrap();
        assert!(selection.trainable_params() <= 20);
        assert!(
            !selection.partial().is_empty(),
            "{}: some unit chosen",
            be.name
        );
        let chosen: Vec<usize> = (0..units.len())
            .filter(|&k| selection.groups()[k].chosen)
            .collect();
        let trained = trained_entries(&units, &chosen);
        let count = trained.iter().flatten().filter(|&&t| t).count();
        assert_eq!(selection.trainable_params() as usize, count);
        assert!(
            selection
                .summary()
                .contains(&format!("trainable params: {count} "))
        );
        let back = Selection::from_json(&selection.to_json()).unwrap();
        assert_eq!(back, selection);

        // Every tensor with a trained entry requires gradients, and no other.
        let applied = selection.apply(model.clone());
        for (snap, entries) in snapshot(&applied).iter().zip(&trained) {
            assert_eq!(snap.2, entries.iter().any(|&t| t), "{} {}", be.name, snap.0);
        }
        // Trained from the selection, exactly the chosen cells move, decay or not.
        let before = flat_params(&applied);
        let mut optim = Masked::new(
            AdamWConfig::new().with_weight_decay(0.5).build(),
            &selection,
        );
        let after = flat_params(&train(applied, &batch, |m, g| optim.step(1e-2, m, g)));
        assert_only_trained_moved(&units, &trained, &before, &after, be.name);

        // Onto a model of the same shape: the same cells.
        let moved = selection.transfer_to(&model).unwrap();
        assert_eq!(moved.partial(), selection.partial());
        assert_eq!(moved.tilings(), selection.tilings());
        assert_eq!(moved.trainable_params(), selection.trainable_params());
    }
}

/// The selection of exactly the groups `chosen` of `units`: each worth 1, every other group
/// nothing, at a budget of their size.
fn selection_of(
    model: &Mlp,
    batch: &RegressionBatch,
    units: &Groups,
    chosen: &[usize],
) -> Selection {
    let mut scores = adapeft::Baseline::GradientNorm
        .estimate(model, std::slice::from_ref(batch), units)
        .unwrap();
    for (k, s) in scores.groups.iter_mut().enumerate() {
        s.value = if chosen.contains(&k) { 1.0 } else { 0.0 };
    }
    let size: u64 = chosen.iter().map(|&k| scores.groups[k].params).sum();
    let scored = Scored::new(units.clone(), scores, 1).unwrap();
    let selection = AdaPeftConfig::new()
        .select_scored(&scored, Budget::Params(size))
        .unwrap();
    let picked: Vec<usize> = (0..units.len())
        .filter(|&k| selection.groups()[k].chosen)
        .collect();
    let mut want = chosen.to_vec();
    want.sort_unstable();
    assert_eq!(picked, want);
    selection
}

/// `Reselect` between two selections of units that cut the same tensors differently: each
/// phase moves its own cells and nothing else (the other phase's cells included, although
/// AdamW keeps the tensors' dense state across the switch).
#[test]
fn reselect_between_selections_of_units_trains_each_phase_s_cells_only() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch, units, first) = setup(&device);
        let second: Vec<usize> = ["hidden.out[2]", "out.block[2,0]", "out.bias"]
            .iter()
            .map(|name| units.groups().iter().position(|g| g.name == *name).unwrap())
            .collect();
        let (a, b) = (
            selection_of(&model, &batch, &units, &first),
            selection_of(&model, &batch, &units, &second),
        );
        let optim = Masked::new(AdamWConfig::new().with_weight_decay(0.5).build(), &a);
        let mut re = Reselect::new(optim, &a, 3).unwrap();
        let mut model = a.apply(model);
        let phase = |re: &mut Reselect, mut model: Mlp| {
            for _ in 0..3 {
                let loss = model.loss(&batch);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = re.step(1e-2, model, grads);
            }
            model
        };
        let start = flat_params(&model);
        model = phase(&mut re, model);
        let middle = flat_params(&model);
        let trained = trained_entries(&units, &first);
        assert_only_trained_moved(&units, &trained, &start, &middle, be.name);
        assert!(re.due());
        model = re.update(model, b);
        model = phase(&mut re, model);
        let trained = trained_entries(&units, &second);
        assert_only_trained_moved(&units, &trained, &middle, &flat_params(&model), be.name);
        assert_eq!(re.history().entries().len(), 2);
    }
}

/// `save_trained` writes a partially trained tensor as its chosen cells alone, and
/// `load_trained` puts them back onto a base model bit for bit: the loaded model equals the
/// trained one at every trained entry and the base one at every other, whatever the base's
/// values there. The file's size follows the trained entries.
#[test]
fn an_adapter_file_of_units_holds_the_trained_cells_and_loads_them_back_bit_exactly() {
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, batch, units, chosen) = setup(&device);
        let trained_at = trained_entries(&units, &chosen);
        let count = trained_at.iter().flatten().filter(|&&t| t).count();
        let selection = selection_of(&model, &batch, &units, &chosen);
        assert_eq!(selection.trainable_params() as usize, count, "{}", be.name);

        let mut optim = Masked::new(AdamWConfig::new().build(), &selection);
        let trained = train(selection.apply(model.clone()), &batch, |m, g| {
            optim.step(1e-2, m, g)
        });
        let dir = temp_dir("partial-save");
        let file = dir.path().join("units.safetensors");
        save_trained(&trained, &selection, &file).unwrap();

        // Onto another model of the same shape: trained entries from the file, the rest its own.
        let base = with_random_params(&Mlp::new(4, 6, 3, &device), 11, 0.5, &device);
        let (loaded, back) = load_trained(base.clone(), &file).unwrap();
        assert_eq!(back, selection, "{}", be.name);
        let (t, b, l) = (
            flat_params(&trained),
            flat_params(&base),
            flat_params(&loaded),
        );
        for (p, param) in units.params().iter().enumerate() {
            for (i, &at) in trained_at[p].iter().enumerate() {
                let want = if at { t[p][i] } else { b[p][i] };
                assert_eq!(
                    l[p][i].to_bits(),
                    want.to_bits(),
                    "{} {}[{i}] (trained: {at})",
                    be.name,
                    param.path
                );
            }
        }
        // Onto the model training started from: the trained model, bit for bit.
        let (loaded, _) = load_trained(model.clone(), &file).unwrap();
        assert_eq!(flat_params(&loaded), t, "{}", be.name);

        // 4 bytes per trained entry, plus the header (manifest, layout, checksums).
        let size = std::fs::metadata(&file).unwrap().len() as usize;
        let json = selection.to_json_compact().len();
        assert!(
            size >= 4 * count + json && size < 4 * count + 2 * json + 4096,
            "{}: {size} bytes for {count} entries and a {json}-byte manifest",
            be.name
        );
        let whole: usize = units
            .params()
            .iter()
            .zip(&trained_at)
            .filter(|(_, at)| at.iter().any(|&a| a))
            .map(|(p, _)| p.numel as usize)
            .sum();
        assert!(
            4 * count < 4 * whole,
            "the cells are smaller than their tensors"
        );
    }
}

#[test]
fn a_selection_whose_cells_lack_their_tiling_is_refused() {
    let device = Device::flex().autodiff();
    let (model, batch, units, _) = setup(&device);
    let scores = adapeft::Baseline::GradientNorm
        .estimate(&model, std::slice::from_ref(&batch), &units)
        .unwrap();
    let selection = AdaPeftConfig::new()
        .select_scored(&Scored::new(units, scores, 1).unwrap(), Budget::Params(20))
        .unwrap();
    let (path, cells) = selection
        .partial()
        .into_iter()
        .next()
        .expect("a unit chosen");
    // A one-cell tiling below has only cell 0: the case needs a chosen cell beyond it.
    assert!(cells.iter().any(|&c| c > 0), "{cells:?}");
    let json: serde_json::Value = serde_json::from_str(&selection.to_json()).unwrap();
    // Without the tensor's tiling, and with a tiling of fewer cells than the chosen ones.
    let mut without = json.clone();
    without["tilings"].as_object_mut().unwrap().remove(&path);
    let mut smaller = json;
    let t = &mut smaller["tilings"][&path];
    let (rows, cols) = (t["rows"].clone(), t["cols"].clone());
    t["band_rows"] = rows;
    t["band_cols"] = cols;
    for (json, words) in [(without, "has no tiling"), (smaller, "beyond")] {
        match Selection::from_json(&json.to_string()) {
            Err(SelectionError::InvalidCell {
                path: p, reason, ..
            }) => {
                assert_eq!(p, path);
                assert!(reason.contains(words), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn step_multi_keeps_untrained_entries_and_matches_one_step_on_the_summed_gradients() {
    // Two gradient sets (burn's multi-device form; both on one device here) against one step
    // on their accumulated sum: the same trained entries, the others bit-identical.
    for be in backends() {
        let device = be.device.clone().autodiff();
        let (model, _, units, chosen) = setup(&device);
        let pair = [
            regression_batch(8, 4, 3, 21, &device),
            regression_batch(8, 4, 3, 22, &device),
        ];
        let optimizer = || AdamWConfig::new().with_weight_decay(0.5).build();
        let mut one = Masked::new(optimizer(), GradientMask::from_groups(&units, &chosen));
        let mut multi = Masked::new(optimizer(), GradientMask::from_groups(&units, &chosen));
        let (mut a, mut b) = (model.clone(), model.clone());
        for _ in 0..3 {
            let mut acc = GradientsAccumulator::new();
            for batch in &pair {
                acc.accumulate(
                    &a,
                    GradientsParams::from_grads(a.loss(batch).backward(), &a),
                );
            }
            a = one.step(1e-2, a, acc.grads());
            let mut grads = MultiGradientsParams::default();
            for batch in &pair {
                let g = GradientsParams::from_grads(b.loss(batch).backward(), &b);
                grads.grads.push((g, device.clone()));
            }
            b = multi.step_multi(1e-2, b, grads);
        }
        let trained = trained_entries(&units, &chosen);
        let (before, a, b) = (flat_params(&model), flat_params(&a), flat_params(&b));
        for (p, entries) in trained.iter().enumerate() {
            for (i, &t) in entries.iter().enumerate() {
                if t {
                    let scale = a[p][i].abs().max(1.0);
                    assert!(
                        (a[p][i] - b[p][i]).abs() <= 1e-5 * scale,
                        "{} {p}[{i}]",
                        be.name
                    );
                    assert_ne!(b[p][i], before[p][i], "{} {p}[{i}] trains", be.name);
                } else {
                    assert_eq!(
                        b[p][i].to_bits(),
                        before[p][i].to_bits(),
                        "{} {p}[{i}]",
                        be.name
                    );
                }
            }
        }
    }
}

/// The selector's own entry points with units (`AdaPeftConfig::with_units`): held-out trials
/// of the chosen cells recommend a rate, `Budget::Auto` sizes a selection of units, and the
/// settings record the rules. An always-trained tensor cut into units, and LoRA choices with
/// units, are refused.
#[test]
fn the_selector_selects_units_with_held_out_batches_and_auto() {
    let device = Device::flex().autodiff();
    let (model, _, _, _) = setup(&device);
    let batches: Vec<RegressionBatch> = (0..4)
        .map(|seed| regression_batch(16, 4, 3, seed, &device))
        .collect();
    let rules = UnitRules::new()
        .with("^hidden$", Unit::Outputs)
        .unwrap()
        .with("^out$", Unit::Blocks { rows: 2, cols: 2 })
        .unwrap();
    let held_out = HeldOut::last(1)
        .with_steps(5)
        .with_rates(&[1e-3, 1e-2, 1e-1])
        .with_auto_fractions(&[0.2, 0.5]);
    let config = AdaPeftConfig::new()
        .with_units(rules.clone())
        .with_held_out(held_out);
    let before = flat_params(&model);

    let selection = config.select(&model, &batches, Budget::Params(20)).unwrap();
    assert!(!selection.partial().is_empty(), "some unit chosen");
    assert!(selection.trainable_params() <= 20);
    let validation = selection.validation().expect("held-out batches were given");
    assert_eq!(validation.held_out_batches, 1);
    assert_eq!(validation.trials.len(), 3);
    assert!(
        selection
            .settings()
            .grouping
            .contains("cut into units: `^hidden$` -> Outputs"),
        "{}",
        selection.settings().grouping
    );
    // The groups are the split ones: the same names and sizes as `Groups::split` gives.
    let units = per_tensor(&model).split(&rules).unwrap();
    let names: Vec<&str> = selection
        .groups()
        .iter()
        .map(|g| g.score.name.as_str())
        .collect();
    let want: Vec<&str> = units.groups().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, want);

    let auto = config.select(&model, &batches, Budget::Auto).unwrap();
    let sizes: Vec<u64> = auto
        .validation()
        .unwrap()
        .auto
        .iter()
        .map(|c| c.params)
        .collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes.contains(&auto.trainable_params()), "{sizes:?}");
    assert_eq!(flat_params(&model), before, "the model is not changed");

    // Always-trained tensors stay whole; LoRA adapters are for whole weights.
    let err = AdaPeftConfig::new()
        .with_units(rules.clone())
        .with_always(AlwaysTrain::module("out"))
        .select(&model, &batches, Budget::Params(20))
        .unwrap_err();
    assert!(
        matches!(&err, SelectError::AlwaysOnUnits { path } if path == "out.weight"),
        "{err}"
    );
    let err = AdaPeftConfig::new()
        .with_units(rules)
        .with_lora_choices(LoraChoices::new(&[1]))
        .select(&model, &batches, Budget::Params(20))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            SelectError::LoraChoices(LoraChoicesError::Unsupported { .. })
        ),
        "{err}"
    );
}
