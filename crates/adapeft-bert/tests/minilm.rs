//! The real all-MiniLM-L6-v2 against the committed f64 reference fixture
//! (`tests/fixtures/minilm_embeddings.json`, made by `reference/minilm_reference.py`).
//!
//! Runs when the weights are in the workspace's cache (`$CARGO_TARGET_DIR/adapeft/minilm`,
//! else `target/adapeft/minilm`); otherwise it says so and passes, since a developer's suite
//! must not need the download, except when `CI` is set: CI fetches the weights first
//! (`.ci/run`), so there a missing cache fails. Fetch them with the command the message
//! names, or with `WeightCache::fetch`. A cache that holds the files but with other contents
//! fails.

use std::path::PathBuf;

use adapeft_bert::{
    BertConfig, BertTokenizer, FetchError, MINILM, WeightCache, load_hf_safetensors,
    minilm_cache_dir,
};
use burn::tensor::Device;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    command: String,
    model_safetensors_sha256: String,
    tokenizer_json_sha256: String,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    tokens: Vec<String>,
    ids: Vec<u32>,
    mean_pooled: Vec<f64>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_embeddings.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The workspace's target folder, as cargo chose it.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")),
    }
}

#[test]
fn fixture_was_made_from_the_pinned_files() {
    let f = fixture();
    let pinned = |name: &str| {
        MINILM
            .files
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, sha)| *sha)
            .unwrap()
    };
    assert_eq!(f.model_safetensors_sha256, pinned("model.safetensors"));
    assert_eq!(f.tokenizer_json_sha256, pinned("tokenizer.json"));
    assert!(f.command.contains("minilm_reference.py"));
    assert_eq!(f.sentences.len(), 5);
    assert!(f.sentences.iter().all(|s| s.mean_pooled.len() == 384));
}

#[test]
fn pooled_embeddings_match_the_f64_reference() {
    let cache = WeightCache::new(minilm_cache_dir(target_dir()));
    let files = match cache.find(&MINILM) {
        Ok(files) => files,
        Err(err @ FetchError::NotCached { .. }) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set, and CI fetches all-MiniLM-L6-v2 before the tests: {err}"
            );
            eprintln!("SKIPPED: all-MiniLM-L6-v2 is not cached: {err}");
            return;
        }
        Err(err) => panic!("{err}"),
    };
    let device = Device::flex();
    let config = BertConfig::from_hf_json(files.config()).unwrap();
    assert_eq!(
        (config.num_layers, config.hidden_size, config.num_heads),
        (6, 384, 12)
    );
    let bert = load_hf_safetensors(config.init(&device), files.safetensors()).unwrap();
    let tokenizer = BertTokenizer::from_file(files.tokenizer(), 256).unwrap();
    let fixture = fixture();

    // The tokenizer gives the reference's word pieces.
    for s in &fixture.sentences {
        assert_eq!(tokenizer.tokens(&s.text).unwrap(), s.tokens, "{}", s.text);
        assert_eq!(tokenizer.encode(&s.text).unwrap().0, s.ids, "{}", s.text);
    }
    // One padded batch (lengths 4 to 13) against the reference's unpadded sentences.
    let texts: Vec<&str> = fixture.sentences.iter().map(|s| s.text.as_str()).collect();
    let pooled = bert
        .mean_pooled(&tokenizer.batch(&texts, &device).unwrap())
        .unwrap();
    let got: Vec<f32> = pooled.into_data().try_to_vec::<f32>().unwrap();
    let mut worst = 0.0f64;
    for (i, s) in fixture.sentences.iter().enumerate() {
        for (j, &expected) in s.mean_pooled.iter().enumerate() {
            worst = worst.max((got[i * 384 + j] as f64 - expected).abs());
        }
    }
    eprintln!("all-MiniLM-L6-v2: max abs difference to the f64 reference {worst:.3e}");
    assert!(worst < 1e-4, "max abs difference {worst}");
}
