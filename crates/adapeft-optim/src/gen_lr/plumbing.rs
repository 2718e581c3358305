//! Module plumbing of a GeN probe: the update the optimizer would make, as per-parameter
//! deltas, and the module moved along it.

use std::collections::HashMap;

use adapeft_importance::{ParamVisitor, visit_params};
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::Tensor;

use crate::masked::StepOptimizer;

/// Flattened per-parameter tensors, by id.
pub(crate) type Deltas = HashMap<ParamId, Tensor<1>>;

/// The update `optim` would make now at `lr`, per parameter it can move (it has a gradient
/// and the optimizer may update it), from a copy of the optimizer (its state does not advance)
/// and of the gradients (the real step needs them).
pub(crate) fn update_deltas<O: StepOptimizer, M: Module>(
    optim: &O,
    lr: ModuleLearningRate,
    module: &M,
    grads: &GradientsParams,
) -> Deltas {
    let copied = copy_gradients(grads, module);
    let stepped = optim.clone().step_module(lr, module.clone(), copied);
    let mut after = Collect(HashMap::new());
    visit_params(&stepped, &mut after);
    let mut deltas = Differences {
        after: after.0,
        grads,
        optim,
        out: HashMap::new(),
    };
    visit_params(module, &mut deltas);
    deltas.out
}

/// A copy of the gradients of `module`'s parameters (burn's container is not `Clone`; its
/// tensors are immutable values, so the copy shares their storage).
pub(crate) fn copy_gradients<M: Module>(grads: &GradientsParams, module: &M) -> GradientsParams {
    struct Copy<'a> {
        from: &'a GradientsParams,
        to: GradientsParams,
    }
    impl ParamVisitor for Copy<'_> {
        fn visit<const D: usize>(&mut self, _path: &str, param: &Param<Tensor<D>>) {
            if let Some(g) = self.from.get::<D>(param.id) {
                self.to.register::<D>(param.id, g);
            }
        }
    }
    let mut copy = Copy {
        from: grads,
        to: GradientsParams::new(),
    };
    visit_params(module, &mut copy);
    copy.to
}

/// Flattened parameter values by id.
struct Collect(Deltas);

impl ParamVisitor for Collect {
    fn visit<const D: usize>(&mut self, _path: &str, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let n = value.shape().num_elements();
        self.0.insert(param.id, value.reshape([n]));
    }
}

/// `after - before` for every parameter the step can have changed.
struct Differences<'a, O> {
    after: Deltas,
    grads: &'a GradientsParams,
    optim: &'a O,
    out: Deltas,
}

impl<O: StepOptimizer> ParamVisitor for Differences<'_, O> {
    fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        if self.grads.get::<D>(param.id).is_none() || !self.optim.may_update(&param.id, path) {
            return;
        }
        let Some(after) = self.after.remove(&param.id) else {
            return;
        };
        let before = param.val().inner();
        let n = before.shape().num_elements();
        self.out.insert(param.id, after - before.reshape([n]));
    }
}

/// The module at `w + t delta`, every parameter without gradient tracking.
pub(crate) struct Along<'a> {
    pub deltas: &'a Deltas,
    pub t: f64,
}

impl ModuleMapper for Along<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let delta = self.deltas.get(&param.id).cloned();
        let t = self.t;
        param.map(|w| {
            let shape = w.shape();
            let w = w.inner();
            match delta {
                Some(d) if t != 0.0 => w + d.mul_scalar(t).reshape(shape),
                _ => w,
            }
        })
    }
}
