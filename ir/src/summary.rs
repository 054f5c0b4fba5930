//! The summary of a network: the lecture's per-layer table (layer,
//! hyper-parameters, output shape, parameters, FLOPs) with totals, and a
//! footer like Keras' and torchinfo's.
//!
//! Every table the project prints clips its cells with [`clip`] to
//! [`MAX_CELL`] characters, so a layer named with 65,536 characters prints
//! as its first characters and an ellipsis rather than a line of that width.
//!
//! [`LayerInfo`] and [`Summary`] are plain data that a `const` can hold, so
//! the `cnn!` macro emits them as literals; the CLI builds them with
//! [`Summary::of`] from the same figures.

use crate::cost::Figures;
use crate::{Graph, List, Shape, Str};
use std::borrow::Cow;
use std::fmt;

/// The widest cell, in characters, that a table prints; longer text is
/// clipped by [`clip`].
pub const MAX_CELL: usize = 48;

/// `text` as a table cell of at most `max` characters (`max` at least 1):
/// unchanged if it fits, else its first `max - 1` characters and `…`.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let keep = text
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(text.len(), |(at, _)| at);
            Cow::Owned(format!("{}…", &text[..keep]))
        }
    }
}

/// One row of the summary table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// Unique layer name (`conv1`, `layer1.0.bn2`).
    pub name: Str,
    /// Layer kind as the language writes it (`conv`, `maxpool`).
    pub kind: Str,
    /// Hyper-parameters in the lecture's notation (`K=6, f=(5,5), s=(1,1)`).
    pub hyper: Str,
    /// Output shape of one image.
    pub output: Shape,
    /// Learnable parameters.
    pub params: u64,
    /// FLOPs by the lecture's rule.
    pub flops: u64,
    /// Multiply-accumulates (conv, dwconv, dense).
    pub macs: u64,
}

/// A network's table and totals; `Display` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The net's name.
    pub name: Str,
    /// The input's shape.
    pub input: Shape,
    /// One row per layer.
    pub layers: List<LayerInfo>,
    /// Learnable parameters.
    pub params: u64,
    /// bn running statistics (not learnable).
    pub buffers: u64,
    /// FLOPs by the lecture's rule.
    pub flops: u64,
    /// Multiply-accumulates.
    pub macs: u64,
    /// `4 * params`.
    pub param_bytes: u64,
    /// Every layer's output of one image, in bytes.
    pub activation_bytes: u64,
    /// The runtime's arena for one image, in bytes.
    pub peak_inference_bytes: u64,
    /// Output elements of the layers kept for the backward pass.
    pub stored_elements: u64,
    /// Multiply-accumulates of one training step of one image.
    pub train_macs: u64,
}

impl Summary {
    /// Bytes to train with `batch` images (see [`crate::cost::training_bytes`]).
    pub const fn training_bytes(&self, batch: u64) -> u64 {
        crate::cost::training_bytes(self.params, self.input.len(), self.stored_elements, batch)
    }
}

impl Summary {
    /// The summary of `graph` with its `figures` and arena size.
    pub fn of(graph: &Graph, figures: &Figures, peak_inference_bytes: u64) -> Summary {
        Summary {
            name: graph.name.clone(),
            input: graph.input_shape(),
            layers: layer_infos(graph, figures).into(),
            params: figures.params,
            buffers: figures.buffers,
            flops: figures.flops,
            macs: figures.macs,
            param_bytes: figures.param_bytes,
            activation_bytes: figures.activation_bytes,
            peak_inference_bytes,
            stored_elements: figures.stored_elements,
            train_macs: figures.train_macs,
        }
    }
}

/// The rows of the table, one per layer (the input excluded).
pub fn layer_infos(graph: &Graph, figures: &Figures) -> Vec<LayerInfo> {
    graph
        .layers()
        .map(|(id, node)| {
            let cost = figures.layers[id.index()];
            LayerInfo {
                name: node.name.clone(),
                kind: node.op.kind().into(),
                hyper: node.op.hyper_parameters().into(),
                output: node.output,
                params: cost.params,
                flops: cost.flops,
                macs: cost.macs,
            }
        })
        .collect()
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 5]> = self
            .layers
            .iter()
            .map(|l| {
                [
                    l.name.to_string(),
                    if l.hyper.is_empty() {
                        l.kind.to_string()
                    } else {
                        format!("{} {}", l.kind, l.hyper)
                    },
                    l.output.to_string(),
                    thousands(l.params),
                    thousands(l.flops),
                ]
                .map(|cell| clip(&cell, MAX_CELL).into_owned())
            })
            .collect();
        let header = ["Layer", "Hyper-parameters", "Output", "Params", "FLOPs"];
        let input = [
            "input".to_string(),
            String::new(),
            self.input.to_string(),
            "0".into(),
            "0".into(),
        ];
        let total = [
            "Total".to_string(),
            String::new(),
            String::new(),
            thousands(self.params),
            thousands(self.flops),
        ];
        let mut widths = header.map(str::len);
        for row in rows.iter().chain([&input, &total]) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            writeln!(
                f,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4]
            )
        };
        let rule = "-".repeat(widths.iter().sum::<usize>() + 8);
        writeln!(f, "{}", clip(&self.name, MAX_CELL))?;
        line(f, &header.map(String::from))?;
        writeln!(f, "{rule}")?;
        line(f, &input)?;
        for row in &rows {
            line(f, row)?;
        }
        writeln!(f, "{rule}")?;
        line(f, &total)?;
        writeln!(f, "{rule}")?;
        writeln!(f, "Total params: {}", thousands(self.params))?;
        if self.buffers > 0 {
            writeln!(
                f,
                "Non-learnable buffers (bn running statistics): {}",
                thousands(self.buffers)
            )?;
        }
        writeln!(f, "MACs (conv, dense): {}", thousands(self.macs))?;
        writeln!(f, "FLOPs (MACs + pooling): {}", thousands(self.flops))?;
        writeln!(f, "Params size: {}", megabytes(self.param_bytes))?;
        writeln!(
            f,
            "Activations (all layers, one image): {}",
            megabytes(self.activation_bytes)
        )?;
        writeln!(
            f,
            "Peak inference memory (arena, one image): {}",
            megabytes(self.peak_inference_bytes)
        )?;
        writeln!(
            f,
            "Training MACs per image (forward + backward): {}",
            thousands(self.train_macs)
        )?;
        write!(
            f,
            "Training memory (params, gradients, stored outputs and their gradients): {} at batch 1, {} at batch 32",
            megabytes(self.training_bytes(1)),
            megabytes(self.training_bytes(32))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{clip, thousands};

    #[test]
    fn clip_keeps_short_text_and_ends_long_text_with_an_ellipsis() {
        assert_eq!(clip("conv1", 5), "conv1");
        assert_eq!(clip("conv12", 5), "conv…");
        assert_eq!(clip("ééééé", 5), "ééééé");
        assert_eq!(clip("éééééé", 5), "éééé…");
        assert_eq!(clip("abc", 0), "…");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(61706), "61,706");
        assert_eq!(thousands(1_135_256_096), "1,135,256,096");
    }
}
