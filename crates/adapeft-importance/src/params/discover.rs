//! Parameter discovery: [`discover`] lists every float parameter of a module with its path,
//! id, shape and require-grad state; [`layout`] lists path, id and shape without touching
//! lazy parameters. Both are built on the one walk of `walk.rs`.

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;

use super::walk::{ParamVisitor, visit_params};

/// One float tensor parameter of a model, as found by [`discover`].
///
/// `require_grad` is the effective state of the tensor (reading it initialises a lazy
/// parameter, as any forward pass would).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Dotted module path, for example `encoder.layers.0.norm.gamma`. The base weight of a
    /// LoRA-adapted tensor keeps its own path (`fc.weight`); its factors are
    /// `fc.weight.lora.a` and `fc.weight.lora.b`.
    pub path: String,
    /// burn's identifier of the parameter (what optimizers and [`burn::module::ParamGroup`]s use).
    pub id: ParamId,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// Number of elements.
    pub numel: u64,
    /// Whether the parameter's tensor currently requires gradients. burn tracks gradients only
    /// on an autodiff device (`device.autodiff()`): on a plain device this is `false` for every
    /// parameter, whatever `Module::train` would later restore.
    pub require_grad: bool,
    /// Set for the factors of a LoRA adapter attached with `Module::apply_lora`; holds the path
    /// of the adapted base weight (`fc.weight`).
    pub lora_of: Option<String>,
}

impl ParamInfo {
    /// The last segment of the path (`weight`, `bias`, `gamma`, `a`, ...).
    pub fn leaf(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// The path without its last segment (the owning module), or `""` for a top-level tensor.
    pub fn module_path(&self) -> &str {
        self.path.rsplit_once('.').map(|(m, _)| m).unwrap_or("")
    }
}

/// Lists every float tensor parameter of `model`, in visiting order.
///
/// Integer and boolean parameters and module flags are not trainable and are skipped.
///
/// ```
/// use adapeft_importance::discover;
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
///
/// let device = Device::flex();
/// let model = LinearConfig::new(3, 2).init(&device);
/// let params = discover(&model);
/// assert_eq!(params.len(), 2);
/// assert_eq!(params[0].path, "weight");
/// assert_eq!(params[0].numel, 6);
/// assert_eq!(params[1].path, "bias");
/// ```
pub fn discover<M: Module>(model: &M) -> Vec<ParamInfo> {
    struct Discover(Vec<ParamInfo>);
    impl ParamVisitor for Discover {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            let shape = param.lazy_shape();
            self.0.push(ParamInfo {
                path: path.to_string(),
                id: param.id,
                numel: shape.num_elements() as u64,
                shape: shape.to_vec(),
                require_grad: param.val().is_require_grad(),
                lora_of: lora_base(path),
            });
        }
    }
    let mut discover = Discover(Vec::new());
    visit_params(model, &mut discover);
    discover.0
}

/// Where one float tensor parameter sits in a model, as listed by [`layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSlot {
    /// Dotted module path, as in [`ParamInfo::path`].
    pub path: String,
    /// burn's identifier of the parameter.
    pub id: ParamId,
    /// The tensor's shape (its length is the tensor's rank).
    pub shape: Vec<usize>,
}

impl ParamSlot {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Lists every float tensor parameter of `model` (path, id, shape) in visiting order, like
/// [`discover`] but **without initialising lazy parameters**: for code that must not touch the
/// weights (loading, matching a mask) and has no use for the require-grad state.
pub fn layout<M: Module>(model: &M) -> Vec<ParamSlot> {
    struct Layout(Vec<ParamSlot>);
    impl ParamVisitor for Layout {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            self.0.push(ParamSlot {
                path: path.to_string(),
                id: param.id,
                shape: param.lazy_shape().to_vec(),
            });
        }
    }
    let mut layout = Layout(Vec::new());
    visit_params(model, &mut layout);
    layout.0
}

/// `"...weight.lora.a"` -> `Some("...weight")`.
fn lora_base(path: &str) -> Option<String> {
    let mut parts = path.rsplitn(3, '.');
    let (_leaf, lora, base) = (parts.next()?, parts.next()?, parts.next()?);
    (lora == "lora").then(|| base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_base_recognises_adapter_factors() {
        assert_eq!(lora_base("fc.weight.lora.a").as_deref(), Some("fc.weight"));
        assert_eq!(
            lora_base("layers.0.fc.weight.lora.b").as_deref(),
            Some("layers.0.fc.weight")
        );
        assert_eq!(lora_base("fc.weight"), None);
        assert_eq!(lora_base("lora.a"), None);
    }
}
