//! `cnnjit run --image`: decodes and preprocesses image files
//! ([`cnnjit::image`]) into one batch, runs it, and prints each image's top
//! classes with their names and probabilities. The outputs become
//! probabilities by the net's own softmax when its last layer is one, else
//! by a softmax applied here; the first line says which.

use cnnjit::image::{self, Labels, Limits, Preprocess};
use cnnjit::runtime::memory::Budget;
use std::path::PathBuf;

/// The image options of `cnnjit run`.
pub struct Images {
    /// The files, in order.
    pub files: Vec<PathBuf>,
    /// The preprocessing.
    pub preprocess: Preprocess,
    /// `imagenet` or a labels file; `None`: print class indices.
    pub labels: Option<String>,
}

/// The labels `--labels` names: the shipped ImageNet names or a file.
fn labels(arg: &str) -> Result<Labels, image::Error> {
    if arg == "imagenet" {
        Ok(Labels::imagenet())
    } else {
        Labels::open(arg)
    }
}

/// Runs `model` on the images, taking their batch from `memory`; returns the
/// outputs (one row per image) and the report.
pub fn classify(
    model: &mut cnnjit::Model,
    images: &Images,
    top: usize,
    memory: &mut Budget,
) -> Result<(Vec<f32>, String), String> {
    let fail = |e: image::Error| format!("error: {e}");
    let out_len = model.output_len();
    let labels = images
        .labels
        .as_deref()
        .map(labels)
        .transpose()
        .map_err(fail)?;
    if let Some(labels) = &labels {
        labels.check_outputs(out_len).map_err(fail)?;
    }
    let input_len: usize = model
        .graph()
        .input_shape()
        .dims()
        .iter()
        .map(|&d| d as usize)
        .product();
    let n = images.files.len();
    let mut batch = memory
        .zeroed(n.saturating_mul(input_len), || {
            format!("a batch of {n} images")
        })
        .map_err(|e| format!("error: {e}"))?;
    for (file, slot) in images.files.iter().zip(batch.chunks_exact_mut(input_len)) {
        let decoded = image::open(file, &Limits::default()).map_err(fail)?;
        let shape = images
            .preprocess
            .output_shape(decoded.width(), decoded.height())
            .map_err(|reason| {
                fail(image::Error::Preprocess {
                    path: file.clone(),
                    reason,
                })
            })?;
        image::check_input(&shape, model.graph(), file).map_err(fail)?;
        images
            .preprocess
            .apply_into(&decoded, file, slot)
            .map_err(fail)?;
    }
    let mut outputs = memory
        .zeroed(n.saturating_mul(out_len), || {
            format!("the outputs of {n} images")
        })
        .map_err(|e| format!("error: {e}"))?;
    model
        .forward_batch(&batch, &mut outputs)
        .map_err(|e| format!("error: running net `{}`: {e}", model.graph().name))?;
    let own_softmax = model
        .graph()
        .nodes
        .last()
        .is_some_and(|node| node.op == cnnjit::ir::Op::Softmax);
    let mut report = if own_softmax {
        "probabilities: the net's own softmax\n".to_string()
    } else {
        "probabilities: softmax applied to the outputs (the net's last layer is not softmax)\n"
            .to_string()
    };
    for (file, scores) in images
        .files
        .iter()
        .zip(outputs.chunks_exact(out_len.max(1)))
    {
        if scores.iter().any(|x| !x.is_finite()) {
            return Err(format!(
                "error: {}: the net's output is not finite, so it has no top classes",
                file.display()
            ));
        }
        let probabilities = if own_softmax {
            scores.to_vec()
        } else {
            softmax(scores)
        };
        report.push_str(&format!("{}:\n", file.display()));
        for class in super::top_k(&probabilities, top) {
            let name = match labels.as_ref().and_then(|l| l.name(class)) {
                Some(name) => format!("{name} ({class})"),
                None => format!("class {class}"),
            };
            report.push_str(&format!("  {:.4}  {name}\n", probabilities[class]));
        }
    }
    Ok((outputs, report))
}

/// `exp(x - max) / sum`, in f64.
fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = scores.iter().map(|&x| f64::from(x - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}
