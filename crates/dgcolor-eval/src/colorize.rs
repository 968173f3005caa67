//! Colourizing arbitrary files. The network runs at its own size S; its ab prediction is
//! upsampled (bilinear) to the input's resolution and combined with the input's own
//! full-resolution L, so the output keeps every detail of the input. Inputs are decoded
//! in their displayed orientation (EXIF applied). A folder of user files is colourized
//! file by file ([`colorize_files`]): one unreadable file does not stop the others, and a
//! truncated JPEG is colourized as far as the decoder fills it in, flagged.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use dgcolor_algorithms::checkpoint::META_MODEL;
use dgcolor_algorithms::Checkpoint;
use dgcolor_data::{
    decode_rgb8, decode_rgb8_lenient, lab_image, lab_planes_to_rgb8, resize_rgb8,
    rgb8_to_lab_planes, unscale_ab, ResizeFilter, IMAGE_EXTENSIONS,
};
use dgcolor_models::{AbPredictor, Generator, InferenceGenerator, ModelConfig};

use crate::error::{EvalError, Result};
use crate::published::{config_beside, PublishedConfig, CONFIG_FILE};

/// A generator in eval mode from a checkpoint or model file written by dgcolor (a run
/// directory's checkpoint is found by `dgcolor_runs`): BatchNorm folded into the
/// convolutions, weights as plain tensors (no autograd graph). The model config comes from
/// the file's `model_config` metadata (checkpoints) or, for a published model's
/// `model.safetensors`, from the `config.json` beside it.
pub fn load_generator(file: &Path, device: &Device) -> Result<InferenceGenerator> {
    if !file.is_file() {
        return Err(EvalError::format(
            file,
            "no such checkpoint file (expected a .safetensors file written by dgcolor)",
        ));
    }
    let ckpt = Checkpoint::load(file, device)?;
    let cfg = model_config(file, &ckpt)?;
    let varmap = VarMap::new();
    let generator = Generator::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    ckpt.restore_varmap(&varmap)
        .map_err(|e| EvalError::format(file, e))?;
    Ok(InferenceGenerator::from_generator(&generator, &varmap)?)
}

/// The model config of a weights file: its metadata, else the published `config.json`
/// beside it.
fn model_config(file: &Path, ckpt: &Checkpoint) -> Result<ModelConfig> {
    if let Some(json) = ckpt.meta.get(META_MODEL) {
        return serde_json::from_str(json).map_err(|e| EvalError::format(file, e));
    }
    match config_beside(file) {
        Some(path) => Ok(PublishedConfig::read(&path)?.model),
        None => Err(EvalError::format(
            file,
            format!(
                "no model config: neither `{META_MODEL}` metadata nor a {CONFIG_FILE} beside it"
            ),
        )),
    }
}

/// Colourizes one image file; returns the RGB8 result at the input's (displayed)
/// resolution. A truncated file is an error, as in datasets; [`colorize_file`] accepts it.
pub fn colorize_image<G: AbPredictor + ?Sized>(
    generator: &G,
    input: &Path,
    filter: ResizeFilter,
    device: &Device,
) -> Result<image::RgbImage> {
    colorize_rgb(generator, &decode_rgb8(input)?, filter, device)
}

/// A colourized file: what [`colorize_file`] returns.
#[derive(Clone, Debug)]
pub struct Colorized {
    /// The RGB8 result at the input's displayed resolution.
    pub rgb: image::RgbImage,
    /// `Some(why)` when the input is truncated: the decoder filled in the missing part
    /// and that is what was colourized.
    pub truncated: Option<String>,
}

/// [`colorize_image`] that also accepts a truncated file the decoder can fill in, flagged
/// in [`Colorized::truncated`] so that the caller can warn.
pub fn colorize_file<G: AbPredictor + ?Sized>(
    generator: &G,
    input: &Path,
    filter: ResizeFilter,
    device: &Device,
) -> Result<Colorized> {
    let decoded = decode_rgb8_lenient(input)?;
    Ok(Colorized {
        rgb: colorize_rgb(generator, &decoded.rgb, filter, device)?,
        truncated: decoded.truncated,
    })
}

/// Colourizes a decoded image; the result has its resolution.
pub fn colorize_rgb<G: AbPredictor + ?Sized>(
    generator: &G,
    rgb: &image::RgbImage,
    filter: ResizeFilter,
    device: &Device,
) -> Result<image::RgbImage> {
    let (w, h) = rgb.dimensions();
    let s = generator.config().size;
    let small = lab_image(&resize_rgb8(rgb, s as u32, s as u32, filter));
    let l = candle_core::Tensor::from_slice(&small.l, (1, 1, s, s), device)?;
    let ab: Vec<f32> = generator.predict_ab(&l)?.flatten_all()?.to_vec1()?;
    let (l_full, _) = rgb8_to_lab_planes(rgb.as_raw());
    let mut ab_full = Vec::with_capacity(2 * (w * h) as usize);
    for plane in ab.chunks(s * s) {
        ab_full.extend(
            resize_bilinear(plane, s, s, w as usize, h as usize)
                .into_iter()
                .map(unscale_ab),
        );
    }
    let out = lab_planes_to_rgb8(&l_full, &ab_full);
    Ok(image::RgbImage::from_raw(w, h, out).expect("buffer of w*h*3 bytes"))
}

/// What became of one input of [`colorize_files`].
#[derive(Debug)]
pub struct ColorizeOutcome {
    pub input: PathBuf,
    pub output: PathBuf,
    /// `Ok(truncated)` when the output was written, `truncated` as in
    /// [`Colorized::truncated`]; the reason it was not otherwise.
    pub result: Result<Option<String>>,
}

impl ColorizeOutcome {
    /// `input: reason` for an input that was not written, naming the input once.
    pub fn failure(&self) -> Option<String> {
        let err = self.result.as_ref().err()?;
        Some(match err {
            EvalError::Data(e) if e.path() == Some(self.input.as_path()) => e.to_string(),
            e => format!("{}: {e}", self.input.display()),
        })
    }
}

/// Colourizes every (input, output) pair (see [`plan_outputs`]) into PNGs, creating
/// folders as needed. An input that cannot be read or written does not stop the others:
/// every outcome goes to `report` as it happens and all are returned, in order. Outputs
/// already written stay.
pub fn colorize_files<G: AbPredictor + ?Sized>(
    generator: &G,
    pairs: &[(PathBuf, PathBuf)],
    filter: ResizeFilter,
    device: &Device,
    mut report: impl FnMut(&ColorizeOutcome),
) -> Vec<ColorizeOutcome> {
    pairs
        .iter()
        .map(|(input, output)| {
            let result = colorize_file(generator, input, filter, device).and_then(|c| {
                if let Some(dir) = output.parent() {
                    std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
                }
                c.rgb
                    .save(output)
                    .map_err(|e| EvalError::format(output, format!("writing the PNG: {e}")))?;
                Ok(c.truncated)
            });
            let outcome = ColorizeOutcome {
                input: input.clone(),
                output: output.clone(),
                result,
            };
            report(&outcome);
            outcome
        })
        .collect()
}

/// Bilinear resampling with half-pixel centres (PyTorch's `align_corners=False`).
pub fn resize_bilinear(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    let coords = |d: usize, s: usize| -> Vec<(usize, usize, f32)> {
        (0..d)
            .map(|i| {
                let x = ((i as f32 + 0.5) * s as f32 / d as f32 - 0.5).max(0.0);
                let x0 = (x.floor() as usize).min(s - 1);
                let x1 = (x0 + 1).min(s - 1);
                (x0, x1, x - x0 as f32)
            })
            .collect()
    };
    let xs = coords(dw, sw);
    let ys = coords(dh, sh);
    let mut out = Vec::with_capacity(dw * dh);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            let top = src[y0 * sw + x0] * (1.0 - fx) + src[y0 * sw + x1] * fx;
            let bottom = src[y1 * sw + x0] * (1.0 - fx) + src[y1 * sw + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// Expands inputs (files, or folders searched recursively for images) into
/// (input, output) pairs; folder structure is kept under `out`.
pub fn plan_outputs(inputs: &[PathBuf], out: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut pairs = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let base = input.file_name().map(PathBuf::from).unwrap_or_default();
            let mut files = Vec::new();
            collect_images(input, &mut files)?;
            for f in files {
                let rel = f.strip_prefix(input).expect("walked below input");
                pairs.push((f.clone(), out.join(&base).join(rel).with_extension("png")));
            }
        } else if input.is_file() {
            let name = input
                .file_name()
                .ok_or_else(|| EvalError::format(input, "not a file name"))?;
            pairs.push((input.clone(), out.join(name).with_extension("png")));
        } else {
            return Err(EvalError::format(input, "no such file or folder"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (input, output) in &pairs {
        if !seen.insert(output.clone()) {
            return Err(EvalError::format(
                input,
                format!("two inputs would both be written to {}", output.display()),
            ));
        }
    }
    Ok(pairs)
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(EvalError::io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(EvalError::io(dir))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::resize_bilinear;

    #[test]
    fn bilinear_matches_half_pixel_convention() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]),
        //     size=(4, 4), mode="bilinear", align_corners=False)
        // -> [[0.00, 0.25, 0.75, 1.00], [0.50, 0.75, 1.25, 1.50],
        //     [1.50, 1.75, 2.25, 2.50], [2.00, 2.25, 2.75, 3.00]]
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        let want = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
        // Same size is the identity.
        assert_eq!(
            resize_bilinear(&[1.0, 2.0, 3.0], 3, 1, 3, 1),
            vec![1.0, 2.0, 3.0]
        );
    }
}
