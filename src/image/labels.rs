//! Class names for a net's outputs: [`Labels`], whose doc gives the file format.

use super::Error;
use std::path::Path;

/// The largest labels file read (ImageNet's 1,000 names take 10 KB).
pub const MAX_BYTES: u64 = 16 << 20;

/// ImageNet-1k's class names in torchvision's order, written by
/// `scripts/imagenet_labels.py`.
const IMAGENET: &str = include_str!("imagenet_classes.txt");

/// Names for a net's outputs: a text file of one name per line, line `i + 1`
/// naming output `i`. Names are trimmed of surrounding spaces (and of a
/// Windows `\r`); the last line may end in a newline or not. An empty file,
/// a blank line, a file that is not UTF-8 or larger than [`MAX_BYTES`] is an
/// [`Error::Labels`] naming the file and the line. Duplicated names are
/// allowed (the file is the user's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    origin: String,
    names: Vec<String>,
}

impl Labels {
    /// ImageNet-1k's 1,000 class names, as torchvision's classifiers number
    /// them (`ResNet50_Weights.IMAGENET1K_V1.meta["categories"]`), shipped
    /// with the crate.
    pub fn imagenet() -> Labels {
        Labels::parse(IMAGENET, "imagenet").expect("the shipped names parse")
    }

    /// Reads the labels file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Labels, Error> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let Some(bytes) = super::read_at_most(path, MAX_BYTES)? else {
            return Err(Error::Labels {
                origin,
                line: 0,
                reason: format!("larger than {} MiB: not a labels file?", MAX_BYTES >> 20),
            });
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::Labels {
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            origin: origin.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        Labels::parse(text, &origin)
    }

    /// Parses one name per line; `origin` names the text in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Labels, Error> {
        let error = |line, reason: &str| Error::Labels {
            origin: origin.to_string(),
            line,
            reason: reason.to_string(),
        };
        let body = text.strip_suffix('\n').unwrap_or(text);
        if body.trim().is_empty() {
            return Err(error(0, "no class names (one name per line)"));
        }
        let names = body
            .split('\n')
            .enumerate()
            .map(|(i, line)| match line.trim() {
                "" => Err(error(i + 1, "a blank line: every line names one class")),
                name => Ok(name.to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Labels {
            origin: origin.to_string(),
            names,
        })
    }

    /// Where the names came from (a path, or `imagenet`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Never true for a parsed file (an empty one is an error); for clippy.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `index`, if there is one.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// All names, class 0 first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Checks that there is exactly one name per output of a net with
    /// `outputs` outputs.
    pub fn check_outputs(&self, outputs: usize) -> Result<(), Error> {
        if self.names.len() == outputs {
            Ok(())
        } else {
            Err(Error::LabelCount {
                origin: self.origin.clone(),
                names: self.names.len(),
                outputs,
            })
        }
    }
}
