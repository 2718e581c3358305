//! [`GradientMask`]: which parameters train, as a filter on gradients.

use std::collections::HashSet;

use adapeft_importance::{ParamSlot, ParamVisitor, layout, visit_params};
use adapeft_selection::Selection;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::tensor::Tensor;

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
    /// Parameters of any rank are filtered (see [`GradientMask::check`] for the ranks burn's
    /// optimizers can step).
    pub fn filter<M: Module>(&self, grads: GradientsParams, module: &M) -> GradientsParams {
        struct Remove<'a> {
            mask: &'a GradientMask,
            grads: GradientsParams,
        }
        impl ParamVisitor for Remove<'_> {
            fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
                if !self.mask.matches(&param.id, path) {
                    self.grads.remove::<D>(param.id);
                }
            }
        }
        let mut remove = Remove { mask: self, grads };
        visit_params(module, &mut remove);
        remove.grads
    }

    /// Checks that burn's optimizers can step every parameter of `module` inside the mask:
    /// burn's `ModuleOptimizer` (and so [`Masked`](crate::Masked), which hands it the
    /// trainable gradients) steps parameters of rank 1 to [`MAX_TRAINABLE_RANK`] and panics on
    /// a higher one. Parameters outside the mask may have any rank: they are only filtered.
    /// Call it once before training a model that may hold such parameters.
    ///
    /// # Errors
    ///
    /// [`OptimError::UnsupportedRank`] naming the first such parameter (in module order) and
    /// its rank.
    pub fn check<M: Module>(&self, module: &M) -> Result<(), OptimError> {
        match self
            .trainable(module)
            .into_iter()
            .find(|slot| slot.shape.len() > MAX_TRAINABLE_RANK)
        {
            Some(slot) => Err(OptimError::UnsupportedRank {
                rank: slot.shape.len(),
                path: slot.path,
            }),
            None => Ok(()),
        }
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
