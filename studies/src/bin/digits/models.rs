//! The two models of the study, without a backend type parameter (burn 0.22: the `Device`
//! picks the backend).
//!
//! Both are small on purpose, so that the whole study runs on two CPU cores: an MLP
//! (64 -> 128 -> 128 -> 10, 26,122 parameters in 6 tensors) and a transformer that reads the
//! image as 8 row-tokens of 8 pixels (d_model 32, 2 pre-norm layers, 2 heads, d_ff 64; 18,026
//! parameters in 39 tensors: embedding, positional embedding, attention, feed-forward,
//! LayerNorms, biases and a head, so the groups adapeft chooses from are realistic).
use std::fmt;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Int, Tensor};

use adapeft_studies::progress::Progress;

use crate::data::{CLASSES, PIXELS, SIDE, Split};

/// A batch: images `[n, 64]` in `[0, 1]` and labels `[n]`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Tensor<2>,
    pub labels: Tensor<1, Int>,
}

/// A model that maps images `[n, 64]` to class logits `[n, 10]`.
pub trait Classifier: Module {
    /// Logits `[n, CLASSES]`.
    fn logits(&self, images: Tensor<2>) -> Tensor<2>;

    /// Mean cross-entropy on a batch (the fine-tuning loss and adapeft's objective).
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let logits = self.logits(batch.images.clone());
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, batch.labels.clone())
    }

    /// The pretraining loss: cross-entropy with label smoothing [`PRETRAIN_SMOOTHING`].
    fn pretraining_loss(&self, batch: &Batch) -> Tensor<1> {
        let logits = self.logits(batch.images.clone());
        CrossEntropyLossConfig::new()
            .with_smoothing(Some(PRETRAIN_SMOOTHING))
            .init(&logits.device())
            .forward(logits, batch.labels.clone())
    }
}

/// Label smoothing of pretraining. Without it the pretrained models end with huge logits
/// (a cross-entropy of about 27 nats on a relabelled batch), and every fine-tuning method
/// spends its steps shrinking them instead of adapting: smoothing keeps the pretrained
/// classifier calibrated, as pretrained checkpoints one fine-tunes usually are.
pub const PRETRAIN_SMOOTHING: f32 = 0.1;

/// Which model, with its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// 64 -> hidden -> hidden -> 10 with ReLU.
    Mlp { hidden: usize },
    /// Row-token transformer.
    Transformer {
        d_model: usize,
        layers: usize,
        heads: usize,
        d_ff: usize,
    },
}

impl ModelKind {
    /// The two models of the study.
    pub const STUDY: [ModelKind; 2] = [
        ModelKind::Mlp { hidden: 128 },
        ModelKind::Transformer {
            d_model: 32,
            layers: 2,
            heads: 2,
            d_ff: 64,
        },
    ];

    /// A short name for tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp { .. } => "mlp",
            ModelKind::Transformer { .. } => "transformer",
        }
    }

    /// Whether the model has LayerNorms (LayerNorm tuning is N/A for the MLP).
    pub fn has_norms(self) -> bool {
        matches!(self, ModelKind::Transformer { .. })
    }
}

/// What a run over one model needs, for the study, the oracle benchmark and the units
/// benchmark alike: their configuration `C`, the data, the pretraining cache, the device,
/// the progress display and the outcome `O` the run adds to. Each names its own instance
/// (`StudyModel`, `OracleModel`, `UnitsModel`) and implements [`ModelVisitor`] on it.
pub struct ModelRun<'a, C, O> {
    pub config: &'a C,
    pub split: &'a Split,
    pub cache_dir: &'a Path,
    pub device: &'a Device,
    pub progress: &'a Progress,
    pub outcome: &'a mut O,
}

/// Code that runs on any of the study's models: [`ModelKind::visit`] calls
/// [`ModelVisitor::visit`] with the model's type and constructor, so the study and the oracle
/// benchmark are written once, generic over the model, and only `visit` matches on the kind.
pub trait ModelVisitor {
    /// What a visit returns.
    type Output;

    /// Runs on the model `kind`, of type `M`; `fresh` builds a freshly initialised one.
    fn visit<M: Classifier>(self, kind: ModelKind, fresh: impl Fn(&Device) -> M) -> Self::Output;
}

impl ModelKind {
    /// Calls `visitor` with this model's type and constructor.
    pub fn visit<V: ModelVisitor>(self, visitor: V) -> V::Output {
        match self {
            ModelKind::Mlp { hidden } => visitor.visit(self, move |d: &Device| Mlp::new(hidden, d)),
            ModelKind::Transformer {
                d_model,
                layers,
                heads,
                d_ff,
            } => visitor.visit(self, move |d: &Device| {
                RowTransformer::new(d_model, layers, heads, d_ff, d)
            }),
        }
    }
}

/// The configuration in words (part of the pretraining cache key): `mlp-h128`,
/// `transformer-d32-l2-h4-ff64`.
impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ModelKind::Mlp { hidden } => write!(f, "mlp-h{hidden}"),
            ModelKind::Transformer {
                d_model,
                layers,
                heads,
                d_ff,
            } => write!(f, "transformer-d{d_model}-l{layers}-h{heads}-ff{d_ff}"),
        }
    }
}

/// The MLP.
#[derive(Module, Debug)]
pub struct Mlp {
    pub input: Linear,
    pub hidden: Linear,
    pub head: Linear,
}

impl Mlp {
    /// A freshly initialised MLP with `hidden` units per hidden layer.
    pub fn new(hidden: usize, device: &Device) -> Self {
        Mlp {
            input: LinearConfig::new(PIXELS, hidden).init(device),
            hidden: LinearConfig::new(hidden, hidden).init(device),
            head: LinearConfig::new(hidden, CLASSES).init(device),
        }
    }
}

impl Classifier for Mlp {
    fn logits(&self, images: Tensor<2>) -> Tensor<2> {
        let h = relu(self.input.forward(images));
        let h = relu(self.hidden.forward(h));
        self.head.forward(h)
    }
}

/// The row-token transformer: each of the 8 image rows is a token of 8 pixels, embedded by a
/// shared linear map plus a learned position embedding, encoded by burn-nn's pre-norm
/// `TransformerEncoder`, normalised, mean-pooled and classified.
#[derive(Module, Debug)]
pub struct RowTransformer {
    /// Token embedding, 8 pixels -> d_model.
    pub embed: Linear,
    /// Learned position embedding `[1, 8, d_model]` (3-D, so LoRA leaves it alone).
    pub pos_embed: Param<Tensor<3>>,
    pub encoder: TransformerEncoder,
    /// Final LayerNorm (a pre-norm encoder leaves its output unnormalised).
    pub norm: LayerNorm,
    pub head: Linear,
}

impl RowTransformer {
    /// A freshly initialised transformer.
    pub fn new(d_model: usize, layers: usize, heads: usize, d_ff: usize, device: &Device) -> Self {
        RowTransformer {
            embed: LinearConfig::new(SIDE, d_model).init(device),
            pos_embed: Param::from_tensor(Tensor::random(
                [1, SIDE, d_model],
                Distribution::Normal(0.0, 0.1),
                device,
            )),
            encoder: TransformerEncoderConfig::new(d_model, d_ff, heads, layers)
                .with_dropout(0.0)
                .with_norm_first(true)
                .init(device),
            norm: LayerNormConfig::new(d_model).init(device),
            head: LinearConfig::new(d_model, CLASSES).init(device),
        }
    }
}

impl Classifier for RowTransformer {
    fn logits(&self, images: Tensor<2>) -> Tensor<2> {
        let [n, _] = images.dims();
        let tokens = images.reshape([n, SIDE, SIDE]);
        let h = self.embed.forward(tokens) + self.pos_embed.val();
        let h = self.encoder.forward(TransformerEncoderInput::new(h));
        let h = self.norm.forward(h);
        let pooled = h.mean_dim(1).squeeze_dim::<2>(1);
        self.head.forward(pooled)
    }
}
