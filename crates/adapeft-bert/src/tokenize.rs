//! Text to [`BertInput`]: Hugging Face's `tokenizers` reading the model's `tokenizer.json`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::BertError;
use crate::model::BertInput;

/// A word-piece tokenizer read from a Hugging Face `tokenizer.json` (normaliser,
/// pre-tokenizer, vocabulary and `[CLS] .. [SEP]` template as the file defines them), with
/// the file's own padding switched off (batches are padded to their longest sequence by
/// [`BertInput::pad`]) and truncation to `max_len` tokens, special tokens included.
///
/// ```no_run
/// use adapeft_bert::BertTokenizer;
/// use burn::tensor::Device;
///
/// let tokenizer = BertTokenizer::from_file("tokenizer.json", 128)?;
/// let input = tokenizer.batch(&["a small domesticated carnivorous mammal"], &Device::flex())?;
/// # Ok::<(), adapeft_bert::BertError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    path: PathBuf,
}

impl BertTokenizer {
    /// Reads `path`; sequences longer than `max_len` tokens are cut to it (keep `max_len` at
    /// most the encoder's `max_position_embeddings`).
    pub fn from_file(path: impl AsRef<Path>, max_len: usize) -> Result<Self, BertError> {
        let path = path.as_ref().to_path_buf();
        let bad = |reason: String| BertError::Tokenizer {
            path: path.clone(),
            reason,
        };
        if !path.is_file() {
            return Err(bad("no such file".into()));
        }
        if max_len < 2 {
            return Err(bad(format!(
                "max_len {max_len} leaves no room for [CLS] and [SEP]"
            )));
        }
        let mut inner = Tokenizer::from_file(&path).map_err(|e| bad(e.to_string()))?;
        let pad_id = match inner.get_padding() {
            Some(padding) => padding.pad_id,
            None => inner
                .token_to_id("[PAD]")
                .ok_or_else(|| bad("no padding settings and no [PAD] token".into()))?,
        };
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| bad(e.to_string()))?;
        Ok(BertTokenizer {
            inner,
            pad_id,
            path,
        })
    }

    /// The id padding positions get.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The file this tokenizer was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token ids and segment ids of one text, special tokens added, truncated.
    pub fn encode(&self, text: &str) -> Result<(Vec<u32>, Vec<u32>), BertError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| BertError::Encode {
                text: text.to_string(),
                reason: e.to_string(),
            })?;
        Ok((
            encoding.get_ids().to_vec(),
            encoding.get_type_ids().to_vec(),
        ))
    }

    /// The word pieces of one text, special tokens included (for reading and tests).
    pub fn tokens(&self, text: &str) -> Result<Vec<String>, BertError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| BertError::Encode {
                text: text.to_string(),
                reason: e.to_string(),
            })?;
        Ok(encoding.get_tokens().to_vec())
    }

    /// A padded batch of `texts` on `device`.
    pub fn batch(&self, texts: &[&str], device: &Device) -> Result<BertInput, BertError> {
        let sequences = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        BertInput::pad(&sequences, self.pad_id, device)
    }
}
