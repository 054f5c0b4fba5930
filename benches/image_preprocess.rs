//! The ImageNet preprocessing of one photo (resize the short side to 256,
//! centre crop 224x224, normalise, HWC f32), with the two resizers
//! considered: `fast_image_resize`'s port of Pillow's antialiased bilinear
//! (what `Preprocess::apply` uses) against the `image` crate's
//! `imageops::resize` with its triangle filter, both followed by the same
//! crop and normalisation. Photos of 640x480 and 1920x1080, decoded already.
//!
//! `cargo bench --bench image_preprocess`.

use cnnjit::image::{Preprocess, RgbImage};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::time::Duration;

/// A smooth colour field with sharp edges, deterministic.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let edge = if (x / 37 + y / 29) % 2 == 0 { 60 } else { 0 };
        image::Rgb([
            ((x * 255 / width) as u8).saturating_add(edge),
            (y * 255 / height) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

fn preprocess(c: &mut Criterion) {
    let mut group = c.benchmark_group("image_preprocess");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let imagenet = Preprocess::imagenet();
    // The same steps after a resize done elsewhere.
    let crop_only = Preprocess {
        resize: None,
        ..Preprocess::imagenet()
    };
    for (w, h) in [(640, 480), (1920, 1080)] {
        let img = photo(w, h);
        let (rw, rh) = (256 * w / h, 256);
        group.bench_function(format!("{w}x{h}/fast_image_resize"), |b| {
            b.iter(|| imagenet.apply(&img, "bench").expect("fits"))
        });
        group.bench_function(format!("{w}x{h}/image_crate_triangle"), |b| {
            b.iter(|| {
                let resized =
                    image::imageops::resize(&img, rw, rh, image::imageops::FilterType::Triangle);
                crop_only.apply(&resized, "bench").expect("fits")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, preprocess);
criterion_main!(benches);
