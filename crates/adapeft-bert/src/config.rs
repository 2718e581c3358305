//! The encoder's configuration, read from a Hugging Face `config.json`.

use std::path::Path;

use burn::config::Config;
use burn::tensor::Device;
use serde::Deserialize;

use crate::error::BertError;
use crate::model::Bert;

/// The shape and settings of a BERT encoder: a burn `Config`, so `new(..)` takes the sizes
/// and `with_*` sets the rest. [`BertConfig::from_hf_json`] reads a Hugging Face
/// `config.json`; [`BertConfig::init`] builds a randomly initialised [`Bert`].
///
/// ```
/// use adapeft_bert::BertConfig;
///
/// // all-MiniLM-L6-v2's shape.
/// let config = BertConfig::new(30522, 384, 6, 12, 1536).with_dropout(0.0);
/// assert_eq!(config.head_dim(), 32);
/// ```
#[derive(Config, Debug)]
pub struct BertConfig {
    /// Size of the word-piece vocabulary.
    pub vocab_size: usize,
    /// Width of every token state.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_layers: usize,
    /// Attention heads per layer (`hidden_size` must be a multiple).
    pub num_heads: usize,
    /// Width of the feed-forward block's hidden layer.
    pub intermediate_size: usize,
    /// Longest input, in tokens (learned absolute positions).
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of segment (token-type) embeddings.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (BERT's is `1e-12`).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout after the embeddings and after each block's output projection
    /// (Hugging Face's `hidden_dropout_prob`). Active only on an autodiff device.
    #[config(default = 0.1)]
    pub hidden_dropout: f64,
    /// Dropout on the attention probabilities (`attention_probs_dropout_prob`).
    #[config(default = 0.1)]
    pub attention_dropout: f64,
    /// Id of the padding token.
    #[config(default = 0)]
    pub pad_token_id: usize,
}

impl BertConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Both dropout probabilities set to `p` (`0.0` for deterministic losses, as adapeft's
    /// estimators need: a probe that drops different units at each evaluation measures noise).
    pub fn with_dropout(self, p: f64) -> Self {
        self.with_hidden_dropout(p).with_attention_dropout(p)
    }

    /// Reads a Hugging Face BERT `config.json` (`model_type` `bert`, `hidden_act` `gelu`,
    /// absolute positions); fields it does not know are ignored.
    pub fn from_hf_json(path: impl AsRef<Path>) -> Result<Self, BertError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| BertError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: String| BertError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let hf: HfBertConfig =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a BERT config: {e}")))?;
        if let Some(kind) = hf.model_type.as_deref()
            && kind != "bert"
        {
            return Err(bad(format!("model_type {kind:?}, expected \"bert\"")));
        }
        if hf.hidden_act != "gelu" {
            return Err(bad(format!(
                "hidden_act {:?}: only \"gelu\" (the exact, erf-based GELU) is implemented",
                hf.hidden_act
            )));
        }
        if let Some(kind) = hf.position_embedding_type.as_deref()
            && kind != "absolute"
        {
            return Err(bad(format!(
                "position_embedding_type {kind:?}: only \"absolute\" is implemented"
            )));
        }
        let config = BertConfig::new(
            hf.vocab_size,
            hf.hidden_size,
            hf.num_hidden_layers,
            hf.num_attention_heads,
            hf.intermediate_size,
        )
        .with_max_position_embeddings(hf.max_position_embeddings)
        .with_type_vocab_size(hf.type_vocab_size)
        .with_layer_norm_eps(hf.layer_norm_eps)
        .with_hidden_dropout(hf.hidden_dropout_prob)
        .with_attention_dropout(hf.attention_probs_dropout_prob)
        .with_pad_token_id(hf.pad_token_id);
        config.check().map_err(bad)?;
        Ok(config)
    }

    /// The sizes are consistent (non-zero, heads divide the width, dropouts in `[0, 1)`).
    pub fn check(&self) -> Result<(), String> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_heads", self.num_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} is 0"));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout),
            ("attention_probs_dropout_prob", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} {p} is not in [0, 1)"));
            }
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(format!(
                "layer_norm_eps {} is not positive",
                self.layer_norm_eps
            ));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(format!(
                "pad_token_id {} is outside the vocabulary ({})",
                self.pad_token_id, self.vocab_size
            ));
        }
        Ok(())
    }

    /// A randomly initialised encoder (burn's default initialisers).
    ///
    /// # Panics
    /// If [`BertConfig::check`] fails.
    pub fn init(&self, device: &Device) -> Bert {
        if let Err(reason) = self.check() {
            panic!("invalid BertConfig: {reason}");
        }
        Bert::new(self, device)
    }
}

/// The fields of a Hugging Face `config.json` this crate reads (the rest are ignored).
#[derive(Deserialize)]
struct HfBertConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_types")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    attention_probs_dropout_prob: f64,
    #[serde(default)]
    pad_token_id: usize,
    position_embedding_type: Option<String>,
}

// Hugging Face's `BertConfig` defaults, for files that leave a field out.
fn default_act() -> String {
    "gelu".into()
}
fn default_positions() -> usize {
    512
}
fn default_types() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_minilm_config() {
        let dir = adapeft_testing::temp_dir("bert");
        // all-MiniLM-L6-v2's config.json, as shipped.
        let path = write(
            dir.path(),
            r#"{"_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
            "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 384,
            "initializer_range": 0.02, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
            "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
            "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
            "transformers_version": "4.8.2", "type_vocab_size": 2, "use_cache": true,
            "vocab_size": 30522}"#,
        );
        let c = BertConfig::from_hf_json(&path).unwrap();
        assert_eq!(
            (c.vocab_size, c.hidden_size, c.num_layers, c.num_heads),
            (30522, 384, 6, 12)
        );
        assert_eq!(
            (c.intermediate_size, c.max_position_embeddings),
            (1536, 512)
        );
        assert_eq!(
            (c.type_vocab_size, c.pad_token_id, c.head_dim()),
            (2, 0, 32)
        );
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!((c.hidden_dropout, c.attention_dropout), (0.1, 0.1));
    }

    #[test]
    fn refuses_what_is_not_implemented_naming_the_field() {
        let dir = adapeft_testing::temp_dir("bert");
        let base = r#""vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "intermediate_size": 16"#;
        for (extra, needle) in [
            (
                r#""num_attention_heads": 2, "hidden_act": "relu""#,
                "hidden_act \"relu\"",
            ),
            (
                r#""num_attention_heads": 2, "model_type": "roberta""#,
                "model_type \"roberta\"",
            ),
            (
                r#""num_attention_heads": 2, "position_embedding_type": "relative_key""#,
                "position_embedding_type",
            ),
            (r#""num_attention_heads": 3"#, "not a multiple"),
        ] {
            let path = write(dir.path(), &format!("{{{base}, {extra}}}"));
            let err = BertConfig::from_hf_json(&path).unwrap_err();
            assert!(matches!(err, BertError::Config { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
            assert!(err.to_string().contains("config.json"), "{err}");
        }
        let path = write(dir.path(), r#"{"hidden_size": 8}"#);
        let err = BertConfig::from_hf_json(&path).unwrap_err();
        assert!(err.to_string().contains("vocab_size"), "{err}");
        let err = BertConfig::from_hf_json(dir.path().join("absent.json")).unwrap_err();
        assert!(matches!(err, BertError::Io { .. }), "{err}");
    }
}
