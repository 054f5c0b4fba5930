//! Images in, labels out: decoding JPEG and PNG files, torchvision-style
//! preprocessing into the height-width-channel `f32` tensor a net takes, and
//! class names for its outputs ([`Labels`]).
//!
//! ```no_run
//! use cnnjit::image::{Labels, Limits, Preprocess};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let x = Preprocess::imagenet().open("cat.jpg", &Limits::default())?;
//! assert_eq!(x.shape, [224, 224, 3]); // HWC, as cnnjit lays out volumes
//! let names = Labels::imagenet();
//! assert_eq!(names.name(281), Some("tabby"));
//! # Ok(()) }
//! ```
//!
//! # Decoding ([`open`], [`decode`])
//! Only JPEG and PNG, by their signature (not the file name), with the
//! `image` crate's pure-Rust decoders (zune-jpeg, png). Every image becomes
//! 8-bit RGB, as Pillow's `Image.open(f).convert("RGB")` makes it:
//! - alpha is dropped, not composited (RGBA, grey + alpha);
//! - palette images are expanded, grey is copied to the three channels;
//! - 16-bit samples keep their high byte (`v >> 8`), as Pillow reads 16-bit
//!   RGB PNGs (for 16-bit grey, Pillow's `I;16 -> RGB` clips at 255 instead:
//!   we scale, on purpose);
//! - CMYK JPEGs are converted to RGB by the decoder (zune-jpeg), within 1/255
//!   of Pillow's conversion on the fixture;
//! - EXIF orientation and ICC profiles are ignored (as by Pillow's `open`).
//!
//! Untrusted files: a file that is not JPEG or PNG, corrupt or truncated is a
//! typed [`Error`] naming the file, never a panic. Before any pixel is
//! decoded, the header's dimensions are checked against [`Limits`] (default:
//! 16,384 pixels a side and 256 MiB of decoded pixels, i.e. at most
//! 89,478,485 RGB pixels, Pillow's `MAX_IMAGE_PIXELS`), so a decompression
//! bomb is an [`Error::TooLarge`] naming the file and its dimensions; the
//! decoder's own allocations are capped at the same number of bytes.
//!
//! # Preprocessing ([`Preprocess`])
//! In this order, each step optional where it says so: make the image grey
//! (Pillow's `convert("L")`, ITU-R 601-2 luma in Pillow's fixed point) if
//! asked; resize so that the short side has the given length (torchvision's
//! `Resize(n)`: the long side `floor(n * long / short)`, Pillow's antialiased
//! bilinear filter, whose support grows with the downscale factor, in 8 bits,
//! here by the `fast_image_resize` crate's port of it); centre crop
//! (torchvision's `CenterCrop`, offsets rounded half to even like Python's
//! `round`; a crop larger than the image is an error, torchvision would pad);
//! scale to [0, 1]; subtract the mean and divide by the deviation of each
//! channel; lay out as RGB, BGR or grey, height-width-channel.
//!
//! Against torchvision 0.29 / Pillow 13 on the fixtures of
//! `scripts/make_image_fixtures.py` (tests/fixtures/images, checked by
//! tests/it/image.rs): within one 8-bit step before `Normalize` on PNGs
//! (`fast_image_resize` rounds a few pixels differently from Pillow; mode
//! conversions alone are exact), three on JPEGs (zune-jpeg's IDCT and chroma
//! upsampling differ from libjpeg-turbo's). Measured after `Normalize` with
//! ImageNet's deviations: 0.0175 (one step) on a PNG downscaled 4.7x, 0.035
//! (two steps) on a JPEG upscaled 1.28x. The `image` crate's own triangle
//! resize is as close (0.0175 and 0.052) but 5 to 7 times slower on the
//! whole 224x224 pipeline (benches/image_preprocess.rs).
//!
//! [`check_input`] compares a preprocessed shape with a net's input and says
//! what to change.

mod labels;

pub use labels::{Labels, MAX_BYTES as MAX_LABELS_BYTES};

use crate::Tensor;
use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// What went wrong with an image, a preprocessing or a labels file; every
/// variant names its file (or the origin given to [`decode`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are neither JPEG nor PNG.
    #[error("{}: not a JPEG or PNG image{}", path.display(), found.map(|f| format!(" (found {f})")).unwrap_or_default())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The format its signature says, if the `image` crate knows it.
        found: Option<&'static str>,
    },
    /// Corrupt or truncated data, or a feature the decoder does not support.
    #[error("{}: cannot decode the image: {reason}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// The header declares an image larger than the [`Limits`].
    #[error("{}: the image is {width}x{height} pixels{}, over the limit of {} (a decompression bomb?); raise Limits if it is genuine", path.display(), bytes.map(|b| format!(" ({} MiB decoded)", b.div_ceil(1 << 20))).unwrap_or_default(), limit)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The declared width.
        width: u32,
        /// The declared height.
        height: u32,
        /// The bytes of its decoded pixels, where the decoder knows them.
        bytes: Option<u64>,
        /// The limits it broke.
        limit: Limits,
    },
    /// A [`Preprocess`] that cannot apply to this image or is malformed.
    #[error("{}: {reason}", path.display())]
    Preprocess {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The preprocessed image does not have the net's input shape.
    #[error("{}: preprocessed to {} (HxWxC), but net `{net}` takes {}; {hint}", path.display(), show(got), show(expected))]
    Shape {
        /// The file.
        path: PathBuf,
        /// The preprocessed shape (H, W, C).
        got: Vec<usize>,
        /// The net's input shape.
        expected: Vec<usize>,
        /// The net's name.
        net: String,
        /// What to change.
        hint: String,
    },
    /// A labels file that is not one name per line.
    #[error("{origin}:{line}: {reason}")]
    Labels {
        /// The file.
        origin: String,
        /// Its 1-based line (0: the whole file).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A labels file whose number of names is not the net's number of outputs.
    #[error("{origin} has {names} class names, but the net has {outputs} outputs")]
    LabelCount {
        /// The file.
        origin: String,
        /// Names in the file.
        names: usize,
        /// The net's outputs.
        outputs: usize,
    },
}

fn show(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Bounds on an image before it is decoded (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest width, in pixels.
    pub max_width: u32,
    /// The largest height, in pixels.
    pub max_height: u32,
    /// The most bytes the decoder may allocate, its decoded pixels included.
    pub max_alloc: u64,
}

impl Limits {
    /// 16,384 pixels a side, 256 MiB of decoded pixels.
    pub const DEFAULT: Limits = Limits {
        max_width: 16_384,
        max_height: 16_384,
        max_alloc: 256 << 20,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{} pixels and {} MiB",
            self.max_width,
            self.max_height,
            self.max_alloc >> 20
        )
    }
}

/// An 8-bit RGB image, as [`open`] and [`decode`] return it.
pub type RgbImage = ::image::RgbImage;

/// Decodes the JPEG or PNG file at `path` into 8-bit RGB (see the [module
/// docs](self) for the conversions and the checks).
pub fn open(path: impl AsRef<Path>, limits: &Limits) -> Result<RgbImage, Error> {
    let path = path.as_ref();
    // A compressed file is smaller than its pixels: read at most the limit.
    let Some(bytes) = read_at_most(path, limits.max_alloc)? else {
        return Err(Error::Decode {
            path: path.to_path_buf(),
            reason: format!("the file is larger than the limit of {limits}"),
        });
    };
    decode(&bytes, path, limits)
}

/// The file at `path` whole, or `None` if it holds more than `max` bytes:
/// at most `max + 1` bytes are read, so a huge file (or a device that never
/// ends) is never read whole.
fn read_at_most(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Decodes a JPEG or PNG image held in memory; `origin` names it in errors.
pub fn decode(bytes: &[u8], origin: impl AsRef<Path>, limits: &Limits) -> Result<RgbImage, Error> {
    use ::image::{ImageDecoder, ImageFormat};
    let path = origin.as_ref();
    let decode_error = |e: ::image::ImageError| Error::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ::image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(io_error)?;
    match reader.format() {
        Some(ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(Error::Decode {
                path: path.to_path_buf(),
                reason: "the JPEG is truncated (no end-of-image marker after its last scan)".into(),
            })
        }
        Some(ImageFormat::Jpeg | ImageFormat::Png) => {}
        other => {
            return Err(Error::UnknownFormat {
                path: path.to_path_buf(),
                found: other.and_then(|f| f.extensions_str().first().copied()),
            })
        }
    }
    // The side limits are checked below, to name the dimensions; the
    // decoder's allocations are capped from the start.
    let mut decoder_limits = ::image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decoder_limits);
    let too_large = |width, height, bytes| Error::TooLarge {
        path: path.to_path_buf(),
        width,
        height,
        bytes,
        limit: *limits,
    };
    // Limits met while reading the header (before its dimensions are known)
    // are decode errors that say which limit.
    let decoder = reader.into_decoder().map_err(|e| Error::Decode {
        path: path.to_path_buf(),
        reason: match e {
            ::image::ImageError::Limits(e) => format!("{e} (limits: {limits})"),
            e => e.to_string(),
        },
    })?;
    let (width, height) = decoder.dimensions();
    let bytes = decoder.total_bytes();
    if width > limits.max_width || height > limits.max_height || bytes > limits.max_alloc {
        return Err(too_large(width, height, Some(bytes)));
    }
    let image = ::image::DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ::image::ImageError::Limits(_) => too_large(width, height, Some(bytes)),
        e => decode_error(e),
    })?;
    Ok(to_rgb8(image))
}

/// Whether an end-of-image marker (`FF D9`) follows the last start-of-scan
/// (`FF DA`): the decoder fills a truncated scan with grey where Pillow
/// refuses it ("image file is truncated"). Entropy-coded data cannot hold
/// either marker (an `FF` there is followed by `00` or a restart number).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w == [0xFF, m];
    bytes
        .windows(2)
        .rposition(marker(0xDA))
        .is_some_and(|sos| bytes[sos..].windows(2).any(marker(0xD9)))
}

/// Pillow's `convert("RGB")`: alpha dropped, 16 bits to their high byte.
fn to_rgb8(image: ::image::DynamicImage) -> RgbImage {
    use ::image::DynamicImage as D;
    match image {
        D::ImageRgb8(rgb) => rgb,
        D::ImageLuma16(_) | D::ImageLumaA16(_) | D::ImageRgb16(_) | D::ImageRgba16(_) => {
            let wide = image.into_rgb16();
            let (w, h) = wide.dimensions();
            let narrow = wide
                .into_raw()
                .into_iter()
                .map(|v| (v >> 8) as u8)
                .collect();
            RgbImage::from_raw(w, h, narrow).expect("one byte per 16-bit sample")
        }
        // 8-bit grey, grey + alpha, RGBA: copies and drops, no rounding.
        other => other.into_rgb8(),
    }
}

/// The channels a net takes, in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channels {
    /// Red, green, blue (torchvision's order).
    Rgb,
    /// Blue, green, red (Caffe's and OpenCV's order).
    Bgr,
    /// One channel: Pillow's `convert("L")`, before resizing.
    Grey,
}

impl Channels {
    /// How many channels.
    pub fn count(self) -> usize {
        match self {
            Channels::Rgb | Channels::Bgr => 3,
            Channels::Grey => 1,
        }
    }
}

/// From an 8-bit RGB image to a net's input: the steps of the [module
/// docs](self), with their parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Resize so that the short side has this length (torchvision's
    /// `Resize(n)`); `None`: keep the size.
    pub resize: Option<u32>,
    /// Centre crop to (height, width); `None`: no crop.
    pub crop: Option<(u32, u32)>,
    /// The channels and their order.
    pub channels: Channels,
    /// Subtracted from each channel after scaling to [0, 1], in the order of
    /// `channels` (one value per channel).
    pub mean: Vec<f32>,
    /// Each channel is then divided by this (one value per channel).
    pub std: Vec<f32>,
}

/// The most bytes a resized image may take before it is cropped (a long,
/// thin image resized by its short side grows by the same factor).
pub const MAX_RESIZED_BYTES: u64 = 256 << 20;

/// The names [`Preprocess::preset`] knows.
pub const PRESETS: [&str; 3] = ["imagenet", "digits", "none"];

impl Preprocess {
    /// torchvision's ImageNet evaluation transform: `Resize(256)`,
    /// `CenterCrop(224)`, `ToTensor()`, `Normalize(mean=[0.485, 0.456,
    /// 0.406], std=[0.229, 0.224, 0.225])`, RGB; 224x224x3.
    pub fn imagenet() -> Preprocess {
        Preprocess {
            resize: Some(256),
            crop: Some((224, 224)),
            channels: Channels::Rgb,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// The digits demo's LeNet-5 (examples/digits.rs,
    /// scripts/train_lenet_digits.py): grey, short side 32, centre crop
    /// 32x32, [0, 1] with no mean or deviation; 32x32x1. The net learnt light
    /// digits on a dark ground (scikit-learn's digits): invert a photo of
    /// dark ink on paper first.
    pub fn digits() -> Preprocess {
        Preprocess {
            resize: Some(32),
            crop: Some((32, 32)),
            channels: Channels::Grey,
            mean: vec![0.0],
            std: vec![1.0],
        }
    }

    /// Only scale to [0, 1], RGB, at the image's own size.
    pub fn none() -> Preprocess {
        Preprocess {
            resize: None,
            crop: None,
            channels: Channels::Rgb,
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        }
    }

    /// The preset called `name` (one of [`PRESETS`]).
    pub fn preset(name: &str) -> Option<Preprocess> {
        match name {
            "imagenet" => Some(Preprocess::imagenet()),
            "digits" => Some(Preprocess::digits()),
            "none" => Some(Preprocess::none()),
            _ => None,
        }
    }

    /// The (height, width) after resizing a `width` x `height` image.
    fn resized(&self, width: u32, height: u32) -> (u32, u32) {
        let Some(short) = self.resize else {
            return (height, width);
        };
        let scale = |long: u32, side: u32| {
            u32::try_from(u64::from(short) * u64::from(long) / u64::from(side)).unwrap_or(u32::MAX)
        };
        if width <= height {
            (scale(height, width), short)
        } else {
            (short, scale(width, height))
        }
    }

    /// The shape (height, width, channels) this preprocessing gives a
    /// `width` x `height` image, or why it cannot apply.
    pub fn output_shape(&self, width: u32, height: u32) -> Result<[usize; 3], String> {
        let channels = self.channels.count();
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(format!(
                "the preprocessing has {} means and {} deviations for {channels} channel(s)",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return Err(format!(
                "a deviation of {s} (it must be finite and non-zero)"
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err("a mean that is not finite".into());
        }
        if self.resize == Some(0) || self.crop.is_some_and(|(h, w)| h == 0 || w == 0) {
            return Err("a resize or a crop to zero pixels".into());
        }
        let (h, w) = self.resized(width, height);
        if h == 0 || w == 0 {
            return Err(format!("a {width}x{height} image has no pixels"));
        }
        if u64::from(h) * u64::from(w) * channels as u64 > MAX_RESIZED_BYTES {
            return Err(format!(
                "resizing the {width}x{height} image to a short side of {} makes {w}x{h} pixels, over {} MiB",
                self.resize.unwrap_or_default(),
                MAX_RESIZED_BYTES >> 20
            ));
        }
        let (h, w) = match self.crop {
            Some((ch, cw)) if ch > h || cw > w => {
                return Err(format!(
                "cannot crop {ch}x{cw} (HxW) from the {h}x{w} image resized from {height}x{width}",
            ))
            }
            Some(crop) => crop,
            None => (h, w),
        };
        Ok([h as usize, w as usize, channels])
    }

    /// Decodes the file at `path` ([`open`]) and preprocesses it.
    pub fn open(&self, path: impl AsRef<Path>, limits: &Limits) -> Result<Tensor, Error> {
        let path = path.as_ref();
        self.apply(&open(path, limits)?, path)
    }

    /// Preprocesses `image` into a new HWC tensor; `origin` names it in errors.
    pub fn apply(&self, image: &RgbImage, origin: impl AsRef<Path>) -> Result<Tensor, Error> {
        let shape = self.shape_of(image, origin.as_ref())?;
        let mut data = vec![0.0; shape.iter().product()];
        self.fill(image, &mut data);
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Preprocesses `image` into `out`, which must hold exactly its
    /// [`output_shape`](Self::output_shape) (one image of a batch, say).
    pub fn apply_into(
        &self,
        image: &RgbImage,
        origin: impl AsRef<Path>,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let origin = origin.as_ref();
        let shape = self.shape_of(image, origin)?;
        let len: usize = shape.iter().product();
        if out.len() != len {
            return Err(Error::Preprocess {
                path: origin.to_path_buf(),
                reason: format!(
                    "the output holds {} values, the image preprocessed to {} has {len}",
                    out.len(),
                    show(&shape)
                ),
            });
        }
        self.fill(image, out);
        Ok(())
    }

    fn shape_of(&self, image: &RgbImage, origin: &Path) -> Result<[usize; 3], Error> {
        self.output_shape(image.width(), image.height())
            .map_err(|reason| Error::Preprocess {
                path: origin.to_path_buf(),
                reason,
            })
    }

    /// The steps, on a checked shape: `out` holds the output shape.
    fn fill(&self, image: &RgbImage, out: &mut [f32]) {
        let (width, height) = image.dimensions();
        let (pixels, channels) = match self.channels {
            Channels::Grey => (grey(image.as_raw()), 1),
            Channels::Rgb | Channels::Bgr => (image.as_raw().clone(), 3),
        };
        let (h, w) = self.resized(width, height);
        let pixels = if (h, w) == (height, width) {
            pixels
        } else {
            resize(pixels, (width, height), (w, h), channels)
        };
        let (ch, cw) = self.crop.unwrap_or((h, w));
        let (top, left) = (centre_offset(h, ch), centre_offset(w, cw));
        let scale: Vec<f32> = self.std.iter().map(|s| 1.0 / (255.0 * s)).collect();
        let shift: Vec<f32> = self
            .mean
            .iter()
            .zip(&self.std)
            .map(|(m, s)| m / s)
            .collect();
        let (row_len, w) = (w as usize * channels, cw as usize * channels);
        for (y, out_row) in out.chunks_exact_mut(w).enumerate() {
            let start = (top as usize + y) * row_len + left as usize * channels;
            let row = &pixels[start..start + w];
            for (px, out_px) in row
                .chunks_exact(channels)
                .zip(out_row.chunks_exact_mut(channels))
            {
                for (c, o) in out_px.iter_mut().enumerate() {
                    let source = if self.channels == Channels::Bgr {
                        2 - c
                    } else {
                        c
                    };
                    *o = f32::from(px[source]) * scale[c] - shift[c];
                }
            }
        }
    }
}

/// Pillow's `convert("L")` of 8-bit RGB: `(R 19595 + G 38470 + B 7471 + 2^15) >> 16`.
fn grey(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            let l = u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471;
            ((l + 0x8000) >> 16) as u8
        })
        .collect()
}

/// torchvision's `CenterCrop` offset: `round((size - crop) / 2)`, half to
/// even (Python's `round`); `crop <= size`.
fn centre_offset(size: u32, crop: u32) -> u32 {
    let d = size - crop;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Pillow's bilinear resampling with antialiasing (its convolution with a
/// support scaled by the downscale factor), 8-bit, by `fast_image_resize`.
fn resize(pixels: Vec<u8>, from: (u32, u32), to: (u32, u32), channels: usize) -> Vec<u8> {
    use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions};
    let kind = if channels == 1 {
        PixelType::U8
    } else {
        PixelType::U8x3
    };
    let source = Image::from_vec_u8(from.0, from.1, pixels, kind)
        .expect("the buffer holds width x height pixels");
    let mut target = Image::new(to.0, to.1, kind);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    fast_image_resize::Resizer::new()
        .resize(&source, &mut target, &options)
        .expect("pixel types agree and both images are non-empty");
    target.into_vec()
}

/// Checks that a preprocessed `shape` (H, W, C) is the input of `graph`;
/// the error says which preprocessing would fit.
pub fn check_input(
    shape: &[usize],
    graph: &crate::Graph,
    origin: impl AsRef<Path>,
) -> Result<(), Error> {
    let expected: Vec<usize> = graph
        .input_shape()
        .dims()
        .into_iter()
        .map(|d| d as usize)
        .collect();
    if shape == expected.as_slice() {
        return Ok(());
    }
    let hint = match expected.as_slice() {
        [h, w, c] => {
            let mut hints = Vec::new();
            if shape.get(..2) != Some(&[*h, *w][..]) {
                hints.push(format!("crop (or resize) to {h}x{w}"));
            }
            if shape.get(2) != Some(c) {
                hints.push(match c {
                    1 => "make it grey".to_string(),
                    3 => "keep its three colour channels".to_string(),
                    c => format!("the net takes {c} channels, an image has 1 or 3"),
                });
            }
            format!(
                "{} (e.g. --preprocess imagenet or digits)",
                hints.join(" and ")
            )
        }
        _ => "the net takes a flat vector, not an image".to_string(),
    };
    Err(Error::Shape {
        path: origin.as_ref().to_path_buf(),
        got: shape.to_vec(),
        expected,
        net: graph.name.to_string(),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::centre_offset;

    /// Python's `int(round((size - crop) / 2.0))`, by hand.
    #[test]
    fn centre_offsets_round_half_to_even() {
        for (size, crop, want) in [
            (10, 4, 3),
            (11, 4, 4),  // 3.5 -> 4
            (45, 28, 8), // 8.5 -> 8
            (9, 4, 2),   // 2.5 -> 2
            (4, 4, 0),
            (5, 4, 0), // 0.5 -> 0
            (6, 3, 2), // 1.5 -> 2
        ] {
            assert_eq!(centre_offset(size, crop), want, "{size} {crop}");
        }
    }
}
