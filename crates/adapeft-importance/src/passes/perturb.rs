//! The two burn walks of the engine: [`Perturb`] builds the module at `w + delta` from a
//! clone of the user's, [`Collect`] reads flattened values or gradients back. Both match
//! parameters by [`ParamId`] (the index of [`Groups::params`](crate::Groups::params)) and
//! need no path, so they stay plain burn visitors rather than path-tracking walks.
//!
//! burn tensors are immutable values and a module clone shares them, so the module at
//! `w + delta` is a *new* module: each perturbed parameter is rebuilt from its original
//! tensor plus the perturbation. The user's model is never written to, which makes "restore
//! exactly" hold by construction (bit for bit, and with the same require-grad state) rather
//! than by subtracting the perturbation back.

use std::collections::HashMap;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Gradients, Tensor};

use super::vector::ParamVec;

/// Builds a model at `w + delta` from a clone of the original.
pub(super) struct Perturb<'p> {
    pub(super) index: &'p HashMap<ParamId, usize>,
    pub(super) delta: &'p ParamVec,
    /// `Some(mask)`: make the marked parameters tracked leaves.
    pub(super) track: Option<&'p [bool]>,
}

impl ModuleMapper for Perturb<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(&i) = self.index.get(&param.id) else {
            return param.map(|t| t.inner());
        };
        let delta = self.delta[i].clone();
        let tracked = self.track.is_some_and(|g| g[i]);
        param.map(|t| {
            let shape = t.shape();
            let mut t = t.inner();
            if let Some(d) = delta {
                t = t + d.reshape(shape);
            }
            if tracked {
                t.autodiff().require_grad()
            } else {
                t
            }
        })
    }
}

/// Collects flattened values (or gradients) of the wanted parameters.
pub(super) struct Collect<'c> {
    pub(super) index: &'c HashMap<ParamId, usize>,
    pub(super) wanted: &'c [bool],
    pub(super) out: ParamVec,
    pub(super) grads: Option<&'c Gradients>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(&i) = self.index.get(&param.id) else {
            return;
        };
        if !self.wanted[i] {
            return;
        }
        let value = param.val();
        let n = value.shape().num_elements();
        let flat = match self.grads {
            None => value.inner().reshape([n]),
            Some(grads) => match value.grad(grads) {
                Some(g) => g.reshape([n]),
                // A parameter the loss does not depend on has a zero gradient.
                None => Tensor::zeros([n], (&value.device().without_autodiff(), value.dtype())),
            },
        };
        self.out[i] = Some(flat);
    }
}
