//! Text to [`BertInput`]: Hugging Face's `tokenizers` reading the model's `tokenizer.json`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PaddingParams, Tokenizer, TruncationParams};

use crate::error::BertError;
use crate::model::{Bert, BertInput};

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
    max_len: usize,
}

impl BertTokenizer {
    /// Reads `path`; sequences longer than `max_len` tokens are cut to it. Keep `max_len` at
    /// most the encoder's `max_position_embeddings`, or use [`BertTokenizer::for_model`],
    /// which checks it.
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
            max_len,
        })
    }

    /// [`BertTokenizer::from_file`] for `bert`: refuses a `max_len` longer than the encoder's
    /// position table, so that every batch it makes fits the model.
    ///
    /// # Errors
    /// [`BertError::TooLong`] naming `max_len` and the encoder's positions, and the errors of
    /// [`BertTokenizer::from_file`].
    pub fn for_model(
        path: impl AsRef<Path>,
        max_len: usize,
        bert: &Bert,
    ) -> Result<Self, BertError> {
        if max_len > bert.max_positions() {
            return Err(BertError::TooLong {
                what: "a tokenizer's max_len",
                tokens: max_len,
                positions: bert.max_positions(),
            });
        }
        Self::from_file(path, max_len)
    }

    /// The longest sequence this tokenizer makes, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
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

/// The special tokens a BERT vocabulary must hold: padding, unknown pieces, the sequence
/// start and the separator.
pub const SPECIAL_TOKENS: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];

/// Writes a BERT word-piece tokenizer for `vocab` (token `i` gets id `i`; word pieces that
/// continue a word start with `##`) into `dir`: `vocab.txt` (one token a line, as BERT
/// checkpoints ship it) and `tokenizer.json` (lower-casing BERT normaliser, BERT
/// pre-tokenizer, `[CLS] A [SEP]` template), built with `tokenizers`' own builders and saved
/// by it. Returns the path of `tokenizer.json`. For small test models and quick studies, so
/// that nothing needs a download.
///
/// ```
/// use adapeft_bert::{BertTokenizer, write_wordpiece_tokenizer};
///
/// let dir = std::env::temp_dir().join("adapeft-bert-doc-tokenizer");
/// let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "cat", "##s"];
/// let path = write_wordpiece_tokenizer(&dir, &vocab)?;
/// let tokenizer = BertTokenizer::from_file(&path, 16)?;
/// assert_eq!(tokenizer.tokens("A cats dog")?, ["[CLS]", "a", "cat", "##s", "[UNK]", "[SEP]"]);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), adapeft_bert::BertError>(())
/// ```
pub fn write_wordpiece_tokenizer(
    dir: impl AsRef<Path>,
    vocab: &[&str],
) -> Result<PathBuf, BertError> {
    let dir = dir.as_ref();
    let path = dir.join("tokenizer.json");
    let bad = |reason: String| BertError::Tokenizer {
        path: path.clone(),
        reason,
    };
    let io = |path: PathBuf| move |source| BertError::Io { path, source };
    let id = |token: &str| {
        vocab
            .iter()
            .position(|t| *t == token)
            .map(|i| i as u32)
            .ok_or_else(|| bad(format!("the vocabulary lacks {token}")))
    };
    let [pad, unk, cls, sep] = SPECIAL_TOKENS.map(id);
    let (pad, _, cls, sep) = (pad?, unk?, cls?, sep?);
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = vocab.iter().find(|t| !seen.insert(**t)) {
        return Err(bad(format!("the vocabulary holds {dup} twice")));
    }
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let vocab_path = dir.join("vocab.txt");
    let mut lines = vocab.join("\n");
    lines.push('\n');
    std::fs::write(&vocab_path, lines).map_err(io(vocab_path.clone()))?;

    let model = WordPiece::from_file(&vocab_path.to_string_lossy())
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let template = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(|e| bad(e.to_string()))?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::default()))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(template))
        .with_decoder(Some(WordPieceDecoder::default()))
        .with_padding(Some(PaddingParams {
            pad_id: pad,
            pad_token: "[PAD]".into(),
            ..PaddingParams::default()
        }));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    tokenizer
        .save(&path, true)
        .map_err(|e| bad(e.to_string()))?;
    Ok(path)
}
