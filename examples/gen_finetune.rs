//! Learning-rate-free fine-tuning of a selected subset: AdaPEFT chooses what trains, the
//! `Masked` adapter keeps AdamW (with weight decay) off everything else, and the GeN learning
//! rate finds the step size from the loss itself, from a start 100 times too small and 100
//! times too large.
//!
//! The model is a small MLP "pretrained" on one synthetic classification task and fine-tuned
//! on a related one (the same inputs, rotated class centres). Fixed-rate runs at the same
//! starting rates and at a hand-tuned rate are printed beside GeN for comparison.
//!
//! Run with `cargo run --example gen_finetune`.

use adapeft::importance::{Direction, GradientProbe, Objective};
use adapeft::optim::{Gen, GenConfig, Masked};
use adapeft::{AdaPeftConfig, Budget};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor};

#[derive(Module, Debug)]
struct Mlp {
    input: Linear,
    hidden: Linear,
    head: Linear,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Mlp {
            input: LinearConfig::new(16, 64).init(device),
            hidden: LinearConfig::new(64, 64).init(device),
            head: LinearConfig::new(64, 4).init(device),
        }
    }

    fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.input.forward(x).tanh();
        let h = self.hidden.forward(h).tanh();
        self.head.forward(h)
    }
}

struct Batch {
    x: Tensor<2>,
    y: Tensor<1, Int>,
}

impl Objective<Batch> for Mlp {
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        CrossEntropyLossConfig::new()
            .init(&batch.x.device())
            .forward(self.logits(batch.x.clone()), batch.y.clone())
    }
}

/// `n` points around 4 class centres; `shift` rotates which centre belongs to which class.
fn task(n: usize, shift: usize, device: &Device) -> Batch {
    let centres = Tensor::<2>::random([4, 16], Distribution::Normal(0.0, 1.5), device);
    let labels: Vec<i64> = (0..n).map(|i| (i % 4) as i64).collect();
    let which: Vec<i64> = labels.iter().map(|&c| (c + shift as i64) % 4).collect();
    let index = Tensor::<1, Int>::from_ints(which.as_slice(), device);
    let x = centres.select(0, index)
        + Tensor::<2>::random([n, 16], Distribution::Normal(0.0, 1.0), device);
    Batch {
        x,
        y: Tensor::<1, Int>::from_ints(labels.as_slice(), device),
    }
}

fn loss_of(model: &Mlp, batch: &Batch) -> f64 {
    model.loss(batch).into_scalar::<f64>()
}

/// Fine-tunes with GeN (`use_gen: true`) or at a fixed rate; returns the final loss and rate.
fn finetune(
    model: &Mlp,
    batch: &Batch,
    selection: &adapeft::Selection,
    lr: f64,
    use_gen: bool,
) -> (f64, f64) {
    let steps = 150;
    let masked = Masked::new(
        AdamWConfig::new().with_weight_decay(0.01).build(),
        selection,
    );
    let mut model = model.clone();
    if use_gen {
        let mut gen_lr = Gen::new(masked, lr, GenConfig::new()).expect("valid settings");
        for _ in 0..steps {
            let grads = GradientsParams::from_grads(model.loss(batch).backward(), &model);
            model = gen_lr
                .step(model, grads, |m: &Mlp| m.loss(batch))
                .expect("scalar loss");
        }
        let rejected = gen_lr
            .history()
            .iter()
            .filter(|p| p.rejected.is_some())
            .count();
        println!(
            "    GeN: {} probes ({rejected} not trusted), rate {:.2e} -> {:.2e}",
            gen_lr.history().len(),
            lr,
            gen_lr.lr()
        );
        (loss_of(&model, batch), gen_lr.lr())
    } else {
        let mut masked = masked;
        for _ in 0..steps {
            let grads = GradientsParams::from_grads(model.loss(batch).backward(), &model);
            model = masked.step(lr, model, grads);
        }
        (loss_of(&model, batch), lr)
    }
}

fn main() -> Result<(), adapeft::AdaPeftError> {
    let device = Device::flex().autodiff();
    device.seed(7);

    // "Pretraining" on the source task.
    let source = task(512, 0, &device);
    let mut model = Mlp::new(&device);
    let mut optim = AdamWConfig::new().init();
    for _ in 0..300 {
        let grads = GradientsParams::from_grads(model.loss(&source).backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    let target = task(512, 1, &device);
    println!(
        "pretrained: source loss {:.4}, target loss before fine-tuning {:.4}",
        loss_of(&model, &source),
        loss_of(&model, &target)
    );

    // Select 10% of the parameters, scored along Adam's direction (we fine-tune with AdamW).
    let selection = AdaPeftConfig::new()
        .with_estimator(GradientProbe {
            direction: Direction::adam(),
            ..GradientProbe::default()
        })
        .select(&model, std::slice::from_ref(&target), Budget::Fraction(0.1))?;
    println!("{}", selection.summary());

    println!("fine-tuning the selection for 150 AdamW steps:");
    let mut best = (f64::INFINITY, 0.0);
    for lr in [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0] {
        let (loss, _) = finetune(&model, &target, &selection, lr, false);
        println!("  fixed rate {lr:.0e}: final loss {loss:.4}");
        if loss < best.0 {
            best = (loss, lr);
        }
    }
    println!(
        "  hand-tuned: rate {:.0e}, final loss {:.4}",
        best.1, best.0
    );
    for start in [best.1 / 100.0, best.1 * 100.0] {
        println!("  GeN from {start:.0e}:");
        let (loss, lr) = finetune(&model, &target, &selection, start, true);
        println!(
            "    final loss {loss:.4} ({:+.1}% against hand-tuned), final rate {lr:.2e}",
            100.0 * (loss / best.0 - 1.0)
        );
    }
    Ok(())
}
