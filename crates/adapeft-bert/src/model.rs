//! The encoder: embeddings, post-norm transformer layers, mean pooling.
//!
//! Parameter paths (what adapeft's groupings, selections and `transfer_to` see) follow the
//! pipeline, not Hugging Face's names; [`crate::load`] maps one onto the other:
//!
//! | burn path | Hugging Face name |
//! |---|---|
//! | `embeddings.word.weight` | `embeddings.word_embeddings.weight` |
//! | `embeddings.position.weight` | `embeddings.position_embeddings.weight` |
//! | `embeddings.token_type.weight` | `embeddings.token_type_embeddings.weight` |
//! | `embeddings.norm.{gamma,beta}` | `embeddings.LayerNorm.{weight,bias}` |
//! | `layers.{i}.attention.{query,key,value}.{weight,bias}` | `encoder.layer.{i}.attention.self.{query,key,value}.{weight,bias}` |
//! | `layers.{i}.attention.output.{weight,bias}` | `encoder.layer.{i}.attention.output.dense.{weight,bias}` |
//! | `layers.{i}.attention_norm.{gamma,beta}` | `encoder.layer.{i}.attention.output.LayerNorm.{weight,bias}` |
//! | `layers.{i}.ffn.intermediate.{weight,bias}` | `encoder.layer.{i}.intermediate.dense.{weight,bias}` |
//! | `layers.{i}.ffn.output.{weight,bias}` | `encoder.layer.{i}.output.dense.{weight,bias}` |
//! | `layers.{i}.ffn_norm.{gamma,beta}` | `encoder.layer.{i}.output.LayerNorm.{weight,bias}` |
//!
//! With these names adapeft's default kind rules put every tensor in its kind (embedding,
//! attention, feed-forward, norm, bias) and `layers.{i}` is the layer index `transfer_to`
//! maps across depths.

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::BertConfig;
use crate::error::BertError;

/// Added to the attention scores of padding keys: their softmax weight is exactly 0 in f32.
const MASKED_SCORE: f32 = -1.0e9;

/// A tokenized batch of `n` sequences padded to a common length `l`.
#[derive(Debug, Clone)]
pub struct BertInput {
    /// Word-piece ids `[n, l]` (padding positions hold the pad id).
    pub token_ids: Tensor<2, Int>,
    /// Segment ids `[n, l]` (all 0 for single sentences).
    pub type_ids: Tensor<2, Int>,
    /// 1 for a real token, 0 for padding `[n, l]`.
    pub attention_mask: Tensor<2, Int>,
}

impl BertInput {
    /// Pads `sequences` (each `(token ids, type ids)`, of equal lengths, with their special
    /// tokens already added) on the right with `pad_id` to the longest, and builds the mask.
    pub fn pad(
        sequences: &[(Vec<u32>, Vec<u32>)],
        pad_id: u32,
        device: &Device,
    ) -> Result<Self, BertError> {
        let n = sequences.len();
        let l = sequences
            .iter()
            .map(|(ids, _)| ids.len())
            .max()
            .unwrap_or(0);
        if n == 0 || l == 0 {
            return Err(BertError::Input(
                "an empty batch or an empty sequence".into(),
            ));
        }
        let mut ids = Vec::with_capacity(n * l);
        let mut types = Vec::with_capacity(n * l);
        let mut mask = Vec::with_capacity(n * l);
        for (i, (tok, ty)) in sequences.iter().enumerate() {
            if tok.len() != ty.len() {
                return Err(BertError::Input(format!(
                    "sequence {i}: {} token ids but {} type ids",
                    tok.len(),
                    ty.len()
                )));
            }
            let pad = l - tok.len();
            ids.extend(tok.iter().map(|&t| t as i64));
            ids.extend(std::iter::repeat_n(pad_id as i64, pad));
            types.extend(ty.iter().map(|&t| t as i64));
            types.extend(std::iter::repeat_n(0, pad));
            mask.extend(std::iter::repeat_n(1i64, tok.len()));
            mask.extend(std::iter::repeat_n(0, pad));
        }
        let tensor = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [n, l]), device);
        Ok(BertInput {
            token_ids: tensor(ids),
            type_ids: tensor(types),
            attention_mask: tensor(mask),
        })
    }

    /// `[n, l]`: batch size and padded length.
    pub fn dims(&self) -> [usize; 2] {
        self.token_ids.dims()
    }

    /// The same batch on another device.
    pub fn to_device(&self, device: &Device) -> Self {
        BertInput {
            token_ids: self.token_ids.clone().to_device(device),
            type_ids: self.type_ids.clone().to_device(device),
            attention_mask: self.attention_mask.clone().to_device(device),
        }
    }
}

/// Word, position and token-type embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    pub word: Embedding,
    pub position: Embedding,
    pub token_type: Embedding,
    pub norm: LayerNorm,
    pub dropout: Dropout,
}

/// Multi-head self-attention with its output projection.
#[derive(Module, Debug)]
pub struct BertAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub dropout: Dropout,
    pub num_heads: usize,
}

/// The position-wise feed-forward block: `hidden -> intermediate -> GELU -> hidden`.
#[derive(Module, Debug)]
pub struct BertFeedForward {
    pub intermediate: Linear,
    pub output: Linear,
}

/// One post-norm encoder layer:
/// `x = norm(x + attention(x))`, then `x = norm(x + ffn(x))`.
#[derive(Module, Debug)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub attention_norm: LayerNorm,
    pub ffn: BertFeedForward,
    pub ffn_norm: LayerNorm,
    pub dropout: Dropout,
}

/// A BERT encoder (no pooler: sentence embeddings are the mean of the token states).
///
/// Built randomly by [`BertConfig::init`] or from a Hugging Face checkpoint by
/// [`crate::load_hf_safetensors`]. Dropout is active only on an autodiff device (burn's rule);
/// set it to 0 with [`BertConfig::with_dropout`] for deterministic training losses.
///
/// ```
/// use adapeft_bert::{BertConfig, BertInput};
/// use burn::tensor::Device;
///
/// let device = Device::flex();
/// let bert = BertConfig::new(20, 8, 2, 2, 16).init(&device);
/// // Two sequences of 4 and 2 tokens: the second is padded with id 0.
/// let input = BertInput::pad(&[(vec![1, 5, 6, 2], vec![0; 4]), (vec![1, 2], vec![0; 2])], 0, &device)?;
/// assert_eq!(bert.forward(&input)?.dims(), [2, 4, 8]);
/// assert_eq!(bert.mean_pooled(&input)?.dims(), [2, 8]);
/// # Ok::<(), adapeft_bert::BertError>(())
/// ```
#[derive(Module, Debug)]
pub struct Bert {
    pub embeddings: BertEmbeddings,
    pub layers: Vec<BertLayer>,
}

impl Bert {
    pub(crate) fn new(c: &BertConfig, device: &Device) -> Self {
        let norm = || {
            LayerNormConfig::new(c.hidden_size)
                .with_epsilon(c.layer_norm_eps)
                .init(device)
        };
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let hidden_dropout = || DropoutConfig::new(c.hidden_dropout).init();
        let embeddings = BertEmbeddings {
            word: EmbeddingConfig::new(c.vocab_size, c.hidden_size).init(device),
            position: EmbeddingConfig::new(c.max_position_embeddings, c.hidden_size).init(device),
            token_type: EmbeddingConfig::new(c.type_vocab_size, c.hidden_size).init(device),
            norm: norm(),
            dropout: hidden_dropout(),
        };
        let layers = (0..c.num_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    query: linear(c.hidden_size, c.hidden_size),
                    key: linear(c.hidden_size, c.hidden_size),
                    value: linear(c.hidden_size, c.hidden_size),
                    output: linear(c.hidden_size, c.hidden_size),
                    dropout: DropoutConfig::new(c.attention_dropout).init(),
                    num_heads: c.num_heads,
                },
                attention_norm: norm(),
                ffn: BertFeedForward {
                    intermediate: linear(c.hidden_size, c.intermediate_size),
                    output: linear(c.intermediate_size, c.hidden_size),
                },
                ffn_norm: norm(),
                dropout: hidden_dropout(),
            })
            .collect();
        Bert { embeddings, layers }
    }

    /// The first `layers` layers only (all of them if there are fewer): the shallow copy of a
    /// pretrained encoder on which a selection can be made cheaply and then carried to the
    /// full depth with adapeft's `transfer_to` (paths `layers.{i}` keep their indices).
    pub fn truncated(mut self, layers: usize) -> Self {
        self.layers.truncate(layers);
        self
    }

    /// Width of the token states.
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word.weight.dims()[1]
    }

    /// Longest input this encoder has positions for.
    pub fn max_positions(&self) -> usize {
        self.embeddings.position.weight.dims()[0]
    }

    /// Whether this encoder can take `input`: no longer than [`Bert::max_positions`], every
    /// token id within the word embedding and every segment id within the token-type
    /// embedding (reads the ids from the device).
    ///
    /// # Errors
    /// [`BertError::TooLong`] naming both lengths, or [`BertError::Input`] naming the first
    /// id out of range.
    pub fn check(&self, input: &BertInput) -> Result<(), BertError> {
        let [_, l] = input.dims();
        if l > self.max_positions() {
            return Err(BertError::TooLong {
                what: "a batch",
                tokens: l,
                positions: self.max_positions(),
            });
        }
        let e = &self.embeddings;
        for (what, ids, table) in [
            ("token", &input.token_ids, e.word.weight.dims()[0]),
            ("segment", &input.type_ids, e.token_type.weight.dims()[0]),
        ] {
            let data = ids.clone().into_data().convert::<i64>();
            let values = data
                .as_slice::<i64>()
                .map_err(|err| BertError::Input(format!("unreadable {what} ids: {err:?}")))?;
            if let Some((i, &id)) = values
                .iter()
                .enumerate()
                .find(|&(_, &id)| id < 0 || id as usize >= table)
            {
                return Err(BertError::Input(format!(
                    "{what} id {id} at sequence {}, position {} is not below the embedding's {table} rows",
                    i / l,
                    i % l
                )));
            }
        }
        Ok(())
    }

    /// The last layer's token states `[n, l, hidden]` (padding positions hold states too;
    /// they never influence the real tokens').
    ///
    /// # Errors
    /// [`BertError::TooLong`] if the batch is longer than [`Bert::max_positions`] (a
    /// tokenizer made by [`BertTokenizer::for_model`](crate::BertTokenizer::for_model)
    /// truncates to it).
    pub fn forward(&self, input: &BertInput) -> Result<Tensor<3>, BertError> {
        self.check(input)?;
        let [n, l] = input.dims();
        let device = input.token_ids.device();
        let e = &self.embeddings;
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device).reshape([1, l]);
        let x = e.word.forward(input.token_ids.clone())
            + e.position.forward(positions)
            + e.token_type.forward(input.type_ids.clone());
        let mut x = e.dropout.forward(e.norm.forward(x));
        // 0 for real keys, MASKED_SCORE for padding: [n, 1, 1, l], broadcast over heads and
        // queries.
        let key_bias = (input.attention_mask.clone().float().neg() + 1.0)
            .mul_scalar(MASKED_SCORE)
            .reshape([n, 1, 1, l]);
        for layer in &self.layers {
            x = layer.forward(x, key_bias.clone());
        }
        Ok(x)
    }

    /// Sentence embeddings `[n, hidden]`: the mean of the real tokens' final states
    /// (sentence-transformers' mean pooling; not normalised).
    ///
    /// # Errors
    /// As [`Bert::forward`].
    pub fn mean_pooled(&self, input: &BertInput) -> Result<Tensor<2>, BertError> {
        let states = self.forward(input)?;
        Ok(mean_pool(states, &input.attention_mask))
    }
}

/// The mean over the real tokens of `states` `[n, l, d]` by `mask` `[n, l]` -> `[n, d]`.
pub fn mean_pool(states: Tensor<3>, mask: &Tensor<2, Int>) -> Tensor<2> {
    let [n, l, _] = states.dims();
    let mask = mask.clone().float().reshape([n, l, 1]);
    let counts = mask.clone().sum_dim(1).squeeze_dim::<2>(1); // [n, 1]
    let sums = (states * mask).sum_dim(1).squeeze_dim::<2>(1); // [n, d]
    sums / counts
}

impl BertLayer {
    fn forward(&self, x: Tensor<3>, key_bias: Tensor<4>) -> Tensor<3> {
        let attended = self
            .dropout
            .forward(self.attention.forward(x.clone(), key_bias));
        let x = self.attention_norm.forward(x + attended);
        let transformed = self.dropout.forward(self.ffn.forward(x.clone()));
        self.ffn_norm.forward(x + transformed)
    }
}

impl BertAttention {
    fn forward(&self, x: Tensor<3>, key_bias: Tensor<4>) -> Tensor<3> {
        let [n, l, d] = x.dims();
        let h = self.num_heads;
        let dh = d / h;
        // [n, l, d] -> [n, h, l, dh]
        let heads = |t: Tensor<3>| t.reshape([n, l, h, dh]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt()) + key_bias;
        let weights = self.dropout.forward(softmax(scores, 3));
        let context = weights.matmul(v).swap_dims(1, 2).reshape([n, l, d]);
        self.output.forward(context)
    }
}

impl BertFeedForward {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.output.forward(gelu(self.intermediate.forward(x)))
    }
}
