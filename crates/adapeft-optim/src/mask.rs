//! [`GradientMask`]: which parameters train, as a filter on gradients.

use std::collections::{BTreeMap, HashSet};

use adapeft_importance::{Groups, ParamSlot, ParamVisitor, Tiling, layout, visit_params};
use adapeft_selection::Selection;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::tensor::{Bool, Device, Tensor};

use crate::error::OptimError;

/// The highest parameter rank burn's optimizers step (`ModuleOptimizer` dispatches the
/// optimizer state on the rank, 1 to 8, and panics beyond).
pub const MAX_TRAINABLE_RANK: usize = 8;

/// The set of parameters that train, matched by [`ParamId`] or path (a burn [`ParamGroup`]).
///
/// Built from a [`Selection`] (its chosen paths) or from any `ParamGroup`. It removes the
/// gradients of every other parameter from a [`GradientsParams`], so whatever optimizer runs
/// next never sees them: no update, no weight decay, no clipping, no optimizer state.
///
/// This is also the way to get the masking inside burn-train's `Learner`, which takes a plain
/// `ModuleOptimizer`: keep a mask in the model as a `#[module(skip)]` field and filter the
/// gradients in its `TrainStep::step`:
///
/// ```
/// use adapeft_optim::GradientMask;
/// use burn::module::{Module, ParamGroup};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::GradientsParams;
/// use burn::tensor::{Device, Tensor};
///
/// #[derive(Module, Debug)]
/// struct Net {
///     first: Linear,
///     second: Linear,
///     /// Which parameters train; not part of the weights.
///     #[module(skip)]
///     mask: GradientMask,
/// }
///
/// let device = Device::flex().autodiff();
/// let net = Net {
///     first: LinearConfig::new(3, 4).init(&device),
///     second: LinearConfig::new(4, 1).init(&device),
///     mask: GradientMask::from(ParamGroup::from_paths(vec!["second.weight", "second.bias"])),
/// };
/// let x = Tensor::<2>::ones([2, 3], &device);
/// let loss = net.second.forward(net.first.forward(x)).sum();
/// // In `TrainStep::step`: `TrainOutput { grads: self.mask.filter(grads, self), item }`.
/// let grads = GradientsParams::from_grads(loss.backward(), &net);
/// assert_eq!(grads.len(), 4);
/// let grads = net.mask.filter(grads, &net);
/// assert_eq!(grads.len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct GradientMask {
    group: ParamGroup,
    /// Partially trained tensors, by path: only these cells train.
    cells: BTreeMap<String, CellMask>,
}

/// Which entries of one partially trained tensor train: some cells of its [`Tiling`] (the
/// units of [`Groups::split`](adapeft_importance::Groups::split): output neurons, rows,
/// blocks, heads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellMask {
    tiling: Tiling,
    /// Sorted, without repeats.
    cells: Vec<u32>,
}

impl CellMask {
    /// The cells `cells` of `tiling`.
    ///
    /// # Errors
    /// [`OptimError::InvalidCells`] for a cell beyond the tiling's, or no cell at all.
    pub fn new(
        tiling: Tiling,
        cells: impl IntoIterator<Item = u32>,
    ) -> Result<CellMask, OptimError> {
        let mut cells: Vec<u32> = cells.into_iter().collect();
        cells.sort_unstable();
        cells.dedup();
        let invalid = |reason: String| OptimError::InvalidCells {
            path: String::new(),
            reason,
        };
        match cells.last() {
            None => Err(invalid(
                "no cell: a partially trained tensor trains at least one".into(),
            )),
            Some(&last) if last as usize >= tiling.cells() => Err(invalid(format!(
                "cell {last} of a tiling with {} cells",
                tiling.cells()
            ))),
            Some(_) => Ok(CellMask { tiling, cells }),
        }
    }

    /// The tiling the cells are numbered in.
    pub fn tiling(&self) -> Tiling {
        self.tiling
    }

    /// The trained cells, ascending.
    pub fn cells(&self) -> &[u32] {
        &self.cells
    }

    /// The number of trained entries.
    pub fn numel(&self) -> u64 {
        self.cells
            .iter()
            .map(|&c| self.tiling.cell_numel(c as usize))
            .sum()
    }

    /// `true` at every entry that does **not** train, flattened row-major, on `device`:
    /// the cell grid, broadcast over each cell's rows and columns and cut to the tensor's
    /// 2-D view (the last bands may be shorter).
    pub(crate) fn frozen(&self, device: &Device) -> Tensor<1, Bool> {
        self.tiling.outside(&self.cells, device)
    }
}

impl GradientMask {
    /// A mask of the parameters in `group`.
    pub fn new(group: ParamGroup) -> Self {
        GradientMask {
            group,
            cells: BTreeMap::new(),
        }
    }

    /// A mask that lets every parameter train.
    pub fn all() -> Self {
        GradientMask::new(ParamGroup::all())
    }

    /// This mask with only the cells `cells` of the parameter at `path` training (whether or
    /// not the group already held it). Its gradient is zeroed outside them, and
    /// [`Masked`](crate::Masked) puts every other entry back to its value before the step,
    /// so they stay bit-identical whatever the optimizer does (weight decay included).
    pub fn with_cells(mut self, path: impl Into<String>, cells: CellMask) -> Self {
        self.cells.insert(path.into(), cells);
        self
    }

    /// The mask of the groups at `chosen` of `groups`: their whole tensors, and the cells of
    /// their parts (units below the tensor, [`Groups::split`](adapeft_importance::Groups::split)).
    ///
    /// # Panics
    /// If an index of `chosen` is not a group of `groups`.
    pub fn from_groups(groups: &Groups, chosen: &[usize]) -> Self {
        let params = groups.params();
        let mut whole = Vec::new();
        let mut parts: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for &g in chosen {
            let group = &groups.groups()[g];
            whole.extend(group.members.iter().map(|&m| params[m].path.clone()));
            for part in &group.parts {
                parts
                    .entry(part.param as usize)
                    .or_default()
                    .push(part.cell);
            }
        }
        let mut mask = GradientMask::new(ParamGroup::from_paths(whole));
        for (p, cells) in parts {
            let tiling = groups.tilings()[p].expect("a part's tensor is tiled");
            let cells = CellMask::new(tiling, cells).expect("the groups' own cells");
            mask = mask.with_cells(params[p].path.clone(), cells);
        }
        mask
    }

    /// The trained cells of the parameter at `path`, if only some of it trains.
    pub fn cells(&self, path: &str) -> Option<&CellMask> {
        self.cells.get(path)
    }

    /// Every partially trained parameter's cells, by path.
    pub fn all_cells(&self) -> &BTreeMap<String, CellMask> {
        &self.cells
    }

    /// Whether some parameter trains only in part.
    pub fn has_cells(&self) -> bool {
        !self.cells.is_empty()
    }

    /// The underlying burn group.
    pub fn group(&self) -> &ParamGroup {
        &self.group
    }

    /// Whether the parameter `id` at `path` trains (wholly or in part).
    pub fn matches(&self, id: &ParamId, path: &str) -> bool {
        self.group.matches(id, Some(path)) || self.cells.contains_key(path)
    }

    /// Removes from `grads` the gradient of every parameter of `module` outside the mask,
    /// zeroes the gradient of a partially trained one outside its cells, and returns the
    /// rest. Gradients of ids that are not parameters of `module` are kept. Parameters of any
    /// rank are filtered (see [`GradientMask::check`] for the ranks burn's optimizers can
    /// step).
    ///
    /// A zero gradient keeps the untrained entries of a partially trained tensor still under
    /// SGD and Adam, but **not** under decoupled weight decay (AdamW's `w -= lr * decay * w`
    /// moves every entry of a tensor that has a gradient): [`Masked`](crate::Masked) restores
    /// them after each step; inside burn-train's `Learner`, which steps with its own
    /// optimizer, use no weight decay for a selection with units below the tensor.
    pub fn filter<M: Module>(&self, grads: GradientsParams, module: &M) -> GradientsParams {
        struct Remove<'a> {
            mask: &'a GradientMask,
            grads: GradientsParams,
        }
        impl ParamVisitor for Remove<'_> {
            fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
                if !self.mask.matches(&param.id, path) {
                    self.grads.remove::<D>(param.id);
                } else if let Some(cells) = self.mask.cells.get(path)
                    && let Some(g) = self.grads.remove::<D>(param.id)
                {
                    let frozen = cells.frozen(&g.device()).reshape(g.shape());
                    self.grads.register::<D>(param.id, g.mask_fill(frozen, 0.0));
                }
            }
        }
        let mut remove = Remove { mask: self, grads };
        visit_params(module, &mut remove);
        remove.grads
    }

    /// Checks that burn's optimizers can step every parameter of `module` inside the mask, and
    /// that the cells of each partially trained one fit its shape:
    /// burn's `ModuleOptimizer` (and so [`Masked`](crate::Masked), which hands it the
    /// trainable gradients) steps parameters of rank 1 to [`MAX_TRAINABLE_RANK`] and panics on
    /// a higher one. Parameters outside the mask may have any rank: they are only filtered.
    /// Call it once before training a model that may hold such parameters.
    ///
    /// # Errors
    ///
    /// [`OptimError::UnsupportedRank`] naming the first such parameter (in module order) and
    /// its rank; [`OptimError::InvalidCells`] naming a partially trained path that the module
    /// does not have, or whose shape is not the one its cells were cut from.
    pub fn check<M: Module>(&self, module: &M) -> Result<(), OptimError> {
        let trainable = self.trainable(module);
        if let Some(slot) = trainable
            .iter()
            .find(|slot| slot.shape.len() > MAX_TRAINABLE_RANK)
        {
            return Err(OptimError::UnsupportedRank {
                rank: slot.shape.len(),
                path: slot.path.clone(),
            });
        }
        for (path, cells) in &self.cells {
            let t = cells.tiling();
            let invalid = |reason: String| OptimError::InvalidCells {
                path: path.clone(),
                reason,
            };
            let Some(slot) = trainable.iter().find(|s| &s.path == path) else {
                return Err(invalid(
                    "the module has no float parameter at this path".into(),
                ));
            };
            if !t.fits(&slot.shape) {
                return Err(invalid(format!(
                    "cells of a [{}, {}] view, but the parameter has shape {:?}",
                    t.rows, t.cols, slot.shape
                )));
            }
        }
        Ok(())
    }

    /// [`GradientMask::filter`] for the gradients of several devices (burn's
    /// `MultiGradientsParams`, what `ModuleOptimizer::step_multi` takes).
    pub fn filter_multi<M: Module>(
        &self,
        mut grads: MultiGradientsParams,
        module: &M,
    ) -> MultiGradientsParams {
        for (g, _) in grads.grads.iter_mut() {
            *g = self.filter(std::mem::take(g), module);
        }
        grads
    }

    /// The parameters of `module` inside the mask, in module order (lazy parameters are not
    /// initialised).
    pub fn trainable<M: Module>(&self, module: &M) -> Vec<ParamSlot> {
        layout(module)
            .into_iter()
            .filter(|slot| self.matches(&slot.id, &slot.path))
            .collect()
    }

    /// The number of elements of `module`'s parameters inside the mask (of a partially
    /// trained tensor, its trained cells).
    pub fn trainable_params<M: Module>(&self, module: &M) -> usize {
        self.trainable(module)
            .iter()
            .map(|slot| match self.cells.get(&slot.path) {
                Some(cells) => cells.numel() as usize,
                None => slot.numel(),
            })
            .sum()
    }
}

impl From<&Selection> for GradientMask {
    /// The selection's chosen parameters, matched by path, and the chosen cells of the
    /// tensors it trains only in part ([`Selection::partial`]).
    fn from(selection: &Selection) -> Self {
        let mut mask = GradientMask::new(ParamGroup::from_paths(selection.chosen_paths()));
        for (path, cells) in selection.partial() {
            // `Selection::from_json` checks that every cell has its tiling and fits it.
            let tiling = selection.tilings()[&path];
            let cells = CellMask::new(tiling, cells).expect("a selection's cells fit their tiling");
            mask = mask.with_cells(path, cells);
        }
        mask
    }
}

impl From<ParamGroup> for GradientMask {
    fn from(group: ParamGroup) -> Self {
        GradientMask::new(group)
    }
}

/// The paths of the parameters of `module` that are in `before` but not in `after`.
pub(crate) fn dropped_paths<M: Module>(
    before: &GradientMask,
    after: &GradientMask,
    module: &M,
) -> (Vec<String>, Vec<String>) {
    let old: HashSet<String> = before
        .trainable(module)
        .into_iter()
        .map(|s| s.path)
        .collect();
    let new: HashSet<String> = after
        .trainable(module)
        .into_iter()
        .map(|s| s.path)
        .collect();
    let mut dropped: Vec<String> = old.difference(&new).cloned().collect();
    let mut added: Vec<String> = new.difference(&old).cloned().collect();
    dropped.sort();
    added.sort();
    (dropped, added)
}

/// Moves the gradients of the parameters of `module` whose id is in `keep` from `from` into a
/// new set, and returns it. The walk gives each parameter's rank as a type, so every rank
/// moves.
pub(crate) fn keep_gradients<M: Module>(
    from: &mut GradientsParams,
    keep: &HashSet<ParamId>,
    module: &M,
) -> GradientsParams {
    struct Keep<'a> {
        keep: &'a HashSet<ParamId>,
        from: &'a mut GradientsParams,
        to: GradientsParams,
    }
    impl ModuleVisitor for Keep<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.keep.contains(&param.id)
                && let Some(g) = self.from.remove::<D>(param.id)
            {
                self.to.register::<D>(param.id, g);
            }
        }
    }
    let mut kept = Keep {
        keep,
        from,
        to: GradientsParams::new(),
    };
    module.visit(&mut kept);
    kept.to
}
