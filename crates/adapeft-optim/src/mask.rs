//! [`GradientMask`]: which parameters train, as a filter on gradients.

use std::collections::HashSet;

use adapeft_importance::{ParamSlot, layout};
use adapeft_selection::Selection;
use burn::module::{Module, ParamGroup, ParamId};
use burn::optim::{GradientsParams, MultiGradientsParams};

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
}

impl GradientMask {
    /// A mask of the parameters in `group`.
    pub fn new(group: ParamGroup) -> Self {
        GradientMask { group }
    }

    /// A mask that lets every parameter train.
    pub fn all() -> Self {
        GradientMask {
            group: ParamGroup::all(),
        }
    }

    /// The underlying burn group.
    pub fn group(&self) -> &ParamGroup {
        &self.group
    }

    /// Whether the parameter `id` at `path` trains.
    pub fn matches(&self, id: &ParamId, path: &str) -> bool {
        self.group.matches(id, Some(path))
    }

    /// Removes from `grads` the gradient of every parameter of `module` outside the mask, and
    /// returns the rest. Gradients of ids that are not parameters of `module` are kept.
    pub fn filter<M: Module>(&self, mut grads: GradientsParams, module: &M) -> GradientsParams {
        for slot in layout(module) {
            if !self.matches(&slot.id, &slot.path) {
                move_gradient(&mut grads, None, slot.id, slot.shape.len());
            }
        }
        grads
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

    /// The number of elements of `module`'s parameters inside the mask.
    pub fn trainable_params<M: Module>(&self, module: &M) -> usize {
        self.trainable(module).iter().map(ParamSlot::numel).sum()
    }
}

impl From<&Selection> for GradientMask {
    /// The selection's chosen parameters, matched by path.
    fn from(selection: &Selection) -> Self {
        GradientMask::new(selection.param_group())
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

/// Removes the gradient of `id` (of rank `rank`) from `from`, and registers it in `to` when
/// given. `GradientsParams` is typed by rank, so the rank picks the call.
pub(crate) fn move_gradient(
    from: &mut GradientsParams,
    to: Option<&mut GradientsParams>,
    id: ParamId,
    rank: usize,
) {
    macro_rules! by_rank {
        ($($d:literal),*) => {
            match rank {
                $($d => {
                    if let (Some(g), Some(to)) = (from.remove::<$d>(id), to) {
                        to.register::<$d>(id, g);
                    }
                })*
                _ => panic!("parameter of rank {rank}: ranks 1 to 8 are supported"),
            }
        };
    }
    by_rank!(1, 2, 3, 4, 5, 6, 7, 8);
}
