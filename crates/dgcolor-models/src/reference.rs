//! Interchange with the reference code's checkpoints (Lhyejin/DG-Colorization,
//! `src/train.py`): three PyTorch state dicts, `F_<epoch>.pth` (the head encoder),
//! `C_<epoch>.pth` (the tail encoder) and `D_<epoch>.pth` (the decoder).
//!
//! The reference's head and tail encoders are both subclasses of its full 8-level `Encoder`,
//! so F and C each hold `down1..downD` although F only runs levels 1..3 and C only 4..D; and
//! every `DownConv`/`UpConv` owns a BatchNorm even where it is never applied (`down1`,
//! `downD`, `upD`). Keys and shapes, for base width nf and depth D (reference: nf 64, D 8):
//!
//! | file | key | shape | ours |
//! |------|-----|-------|------|
//! | F, C | `down{i}.conv.weight` / `.bias` | `[w_i, w_{i-1}, 4, 4]` / `[w_i]` (w_0 = 1) | F: `head.down{i}` for i <= 3; C: `tail.down{i}` for i >= 4 |
//! | F, C | `down{i}.bn.{weight,bias,running_mean,running_var}` | `[w_i]` | used for 1 < i < D only |
//! | F, C | `down{i}.bn.num_batches_tracked` | `[]` (int64) | never used (momentum is 0.1) |
//! | D | `up{k}.upconv.weight` / `.bias` | `[c_in_k, c_out_k, 4, 4]` / `[c_out_k]` | `decoder.up{k}` |
//! | D | `up{k}.bn.*` | `[c_out_k]` | used for k < D only |
//!
//! with w_i = nf * 2^min(i-1, 3), c_in_1 = w_D, c_in_k = 2 w_{D-k+1}, c_out_k = w_{D-k}
//! (k < D) and c_out_D = 2. [`import_reference`] checks every key and shape, reads only the
//! tensors we use and ignores the rest; [`export_reference`] writes all of them: the unused
//! levels of F are copied from our tail (and those of C from our head), so F and C are each a
//! complete, working encoder, and the unused BatchNorms get PyTorch's initial values (weight
//! 1, bias 0, mean 0, variance 1); every `num_batches_tracked` is 0 because we do not count
//! BatchNorm forwards (PyTorch only reads it when `momentum=None`).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{bail, DType, Device, Result, Tensor};

use crate::config::level_width;

/// Writes the state dicts [`export_reference`] returns as `.pth` files (see [`crate::pth`]);
/// re-exported here next to [`read_state_dict`], which reads them.
pub use crate::pth::write_pth;

/// The three reference state dicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefFile {
    /// `F_<epoch>.pth`: the head encoder.
    Head,
    /// `C_<epoch>.pth`: the tail encoder.
    Tail,
    /// `D_<epoch>.pth`: the decoder.
    Decoder,
}

impl RefFile {
    pub const ALL: [RefFile; 3] = [RefFile::Head, RefFile::Tail, RefFile::Decoder];

    /// `F`, `C` or `D`: the reference's file prefix (and our export's file stem).
    pub fn letter(self) -> &'static str {
        match self {
            RefFile::Head => "F",
            RefFile::Tail => "C",
            RefFile::Decoder => "D",
        }
    }
}

/// A state dict as written: (key, tensor) in PyTorch's order.
pub type StateDict = Vec<(String, Tensor)>;

/// Where one tensor of a reference state dict comes from on our side.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Our VarMap variable of that name.
    Ours(String),
    /// A constant (an unused BatchNorm's initial value).
    Const(f32),
    /// `num_batches_tracked`, int64.
    Count,
}

/// One tensor of a reference state dict.
#[derive(Clone, Debug, PartialEq)]
pub struct RefTensor {
    pub file: RefFile,
    /// Key in the state dict, e.g. `down2.bn.running_mean`.
    pub key: String,
    pub shape: Vec<usize>,
    /// Our variable when this tensor is one the reference actually uses (read on import).
    pub used_as: Option<String>,
    /// What export writes here.
    pub export_from: Source,
}

const BN_STATS: [(&str, f32); 4] = [
    ("weight", 1.0),
    ("bias", 0.0),
    ("running_mean", 0.0),
    ("running_var", 1.0),
];

/// Every tensor of the F, C and D state dicts of a depth-`depth`, width-`nf` model, in the
/// order PyTorch's `state_dict()` lists them.
pub fn reference_layout(nf: usize, depth: usize) -> Vec<RefTensor> {
    let w = |i: usize| level_width(nf, i);
    let mut out = Vec::new();
    for file in [RefFile::Head, RefFile::Tail] {
        for i in 1..=depth {
            // The network whose level this is on our side, whichever file it is written to.
            let owner = if i <= 3 { "head" } else { "tail" };
            let used = (file == RefFile::Head) == (i <= 3);
            let c_in = if i == 1 { 1 } else { w(i - 1) };
            let conv = [("weight", vec![w(i), c_in, 4, 4]), ("bias", vec![w(i)])];
            for (p, shape) in conv {
                let ours = format!("{owner}.down{i}.conv.{p}");
                out.push(RefTensor {
                    file,
                    key: format!("down{i}.conv.{p}"),
                    shape,
                    used_as: used.then(|| ours.clone()),
                    export_from: Source::Ours(ours),
                });
            }
            let has_bn = i > 1 && i < depth;
            push_bn(
                &mut out,
                file,
                &format!("down{i}"),
                w(i),
                has_bn,
                used,
                owner,
            );
        }
    }
    for k in 1..=depth {
        let c_in = if k == 1 {
            w(depth)
        } else {
            2 * w(depth - k + 1)
        };
        let c_out = if k < depth { w(depth - k) } else { 2 };
        for (p, shape) in [("weight", vec![c_in, c_out, 4, 4]), ("bias", vec![c_out])] {
            let ours = format!("decoder.up{k}.upconv.{p}");
            out.push(RefTensor {
                file: RefFile::Decoder,
                key: format!("up{k}.upconv.{p}"),
                shape,
                used_as: Some(ours.clone()),
                export_from: Source::Ours(ours),
            });
        }
        push_bn(
            &mut out,
            RefFile::Decoder,
            &format!("up{k}"),
            c_out,
            k < depth,
            true,
            "decoder",
        );
    }
    out
}

fn push_bn(
    out: &mut Vec<RefTensor>,
    file: RefFile,
    block: &str,
    channels: usize,
    has_bn: bool,
    used: bool,
    owner: &str,
) {
    for (p, init) in BN_STATS {
        let ours = format!("{owner}.{block}.bn.{p}");
        out.push(RefTensor {
            file,
            key: format!("{block}.bn.{p}"),
            shape: vec![channels],
            used_as: (has_bn && used).then(|| ours.clone()),
            export_from: if has_bn {
                Source::Ours(ours)
            } else {
                Source::Const(init)
            },
        });
    }
    out.push(RefTensor {
        file,
        key: format!("{block}.bn.num_batches_tracked"),
        shape: vec![],
        used_as: None,
        export_from: Source::Count,
    });
}

/// Base width and depth of a reference state-dict triple: nf from `down1.conv.weight` of F,
/// the depth from the number of `down{i}.conv.weight` keys of F.
pub fn infer_nf_depth(head: &BTreeMap<String, Tensor>) -> Result<(usize, usize)> {
    let Some(w1) = head.get("down1.conv.weight") else {
        bail!("reference import: F (head encoder) has no `down1.conv.weight`; is it a head-encoder state dict?")
    };
    let nf = w1.dims().first().copied().unwrap_or(0);
    let mut depth = 0;
    while head.contains_key(&format!("down{}.conv.weight", depth + 1)) {
        depth += 1;
    }
    if nf == 0 || depth < 4 {
        bail!(
            "reference import: F has nf {nf} (from down1.conv.weight {:?}) and {depth} levels; need nf >= 1 and at least 4 levels",
            w1.shape()
        )
    }
    Ok((nf, depth))
}

/// Removes DataParallel's `module.` prefix when every key carries it.
pub fn strip_module_prefix(dict: BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    if !dict.is_empty() && dict.keys().all(|k| k.starts_with("module.")) {
        dict.into_iter()
            .map(|(k, v)| (k["module.".len()..].to_string(), v))
            .collect()
    } else {
        dict
    }
}

/// Reads one `.pth` state dict (PyTorch's zip format, via candle's unpickler).
pub fn read_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let tensors = candle_core::pickle::read_all(path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    Ok(strip_module_prefix(tensors.into_iter().collect()))
}

/// Our variables (f32, by VarMap name) from the three reference state dicts, with the nf and
/// depth inferred from F. Every key of the layout must be present with its shape, and no
/// other key may be: all problems are reported together, by file and key.
pub fn import_reference(
    head: &BTreeMap<String, Tensor>,
    tail: &BTreeMap<String, Tensor>,
    decoder: &BTreeMap<String, Tensor>,
) -> Result<(usize, usize, BTreeMap<String, Tensor>)> {
    let (nf, depth) = infer_nf_depth(head)?;
    let dicts = |f: RefFile| match f {
        RefFile::Head => head,
        RefFile::Tail => tail,
        RefFile::Decoder => decoder,
    };
    let layout = reference_layout(nf, depth);
    let mut problems = Vec::new();
    let mut ours = BTreeMap::new();
    for t in &layout {
        let name = format!("{}.{}", t.file.letter(), t.key);
        match dicts(t.file).get(&t.key) {
            None => problems.push(format!("missing {name} (expected shape {:?})", t.shape)),
            Some(v) => {
                // A 0-dim counter may also come as [1].
                let ok =
                    v.dims() == t.shape.as_slice() || (t.shape.is_empty() && v.elem_count() == 1);
                if !ok {
                    problems.push(format!(
                        "mis-shaped {name}: {:?}, expected {:?}",
                        v.dims(),
                        t.shape
                    ));
                } else if let Some(var) = &t.used_as {
                    ours.insert(var.clone(), v.to_dtype(DType::F32)?);
                }
            }
        }
    }
    for f in RefFile::ALL {
        for key in dicts(f).keys() {
            if !layout.iter().any(|t| t.file == f && &t.key == key) {
                problems.push(format!("unexpected {}.{key}", f.letter()));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "reference import (nf {nf}, depth {depth} inferred from F): {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        )
    }
    Ok((nf, depth, ours))
}

/// The three state dicts, in PyTorch's key order, for our variables `vars` (head, tail and
/// decoder of a depth-`depth`, width-`nf` generator).
pub fn export_reference(
    vars: &BTreeMap<String, Tensor>,
    nf: usize,
    depth: usize,
) -> Result<Vec<(RefFile, StateDict)>> {
    let mut files: Vec<(RefFile, StateDict)> =
        RefFile::ALL.iter().map(|&f| (f, Vec::new())).collect();
    let cpu = Device::Cpu;
    for t in reference_layout(nf, depth) {
        let tensor = match &t.export_from {
            Source::Ours(name) => {
                let Some(v) = vars.get(name) else {
                    bail!(
                        "reference export: our variable `{name}` (for {}.{}) is missing",
                        t.file.letter(),
                        t.key
                    )
                };
                if v.dims() != t.shape.as_slice() {
                    bail!(
                        "reference export: `{name}` has shape {:?}, {}.{} needs {:?}",
                        v.dims(),
                        t.file.letter(),
                        t.key,
                        t.shape
                    )
                }
                v.to_device(&cpu)?.to_dtype(DType::F32)?
            }
            Source::Const(c) => Tensor::full(*c, t.shape.as_slice(), &cpu)?,
            Source::Count => Tensor::new(0i64, &cpu)?,
        };
        let slot = files
            .iter_mut()
            .find(|(f, _)| *f == t.file)
            .expect("every file listed");
        slot.1.push((t.key, tensor));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_vars(nf: usize, depth: usize) -> BTreeMap<String, Tensor> {
        reference_layout(nf, depth)
            .into_iter()
            .filter_map(|t| match t.export_from {
                Source::Ours(name) => Some((name, t.shape)),
                _ => None,
            })
            .enumerate()
            .map(|(i, (name, shape))| {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = (0..n).map(|j| (i * 1000 + j) as f32).collect();
                (name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
            })
            .collect()
    }

    #[test]
    fn reference_key_count_at_depth_8() {
        let layout = reference_layout(64, 8);
        // F, C: 8 levels x (2 conv + 5 bn); D: 8 x (2 + 5).
        for f in RefFile::ALL {
            assert_eq!(layout.iter().filter(|t| t.file == f).count(), 56);
        }
        let up6 = layout
            .iter()
            .find(|t| t.key == "up6.upconv.weight")
            .unwrap();
        assert_eq!(up6.shape, vec![512, 128, 4, 4]); // num_filter * 4 * 2 -> num_filter * 2
    }

    #[test]
    fn export_then_import_round_trips_through_pth() {
        let (nf, depth) = (2, 6);
        let vars = fake_vars(nf, depth);
        let dir = std::env::temp_dir().join(format!("dgcolor-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut dicts = Vec::new();
        for (file, entries) in export_reference(&vars, nf, depth).unwrap() {
            let path = dir.join(format!("{}.pth", file.letter()));
            write_pth(&path, &entries).unwrap();
            dicts.push(read_state_dict(&path).unwrap());
        }
        let (nf2, depth2, back) = import_reference(&dicts[0], &dicts[1], &dicts[2]).unwrap();
        assert_eq!((nf2, depth2), (nf, depth));
        assert_eq!(back.len(), vars.len());
        for (name, t) in &vars {
            let a: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = back[name].flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(a, b, "{name}");
        }
        // F's unused tail levels are our tail's, so F holds a whole encoder.
        assert_eq!(
            dicts[0]["down5.conv.bias"].to_vec1::<f32>().unwrap(),
            vars["tail.down5.conv.bias"].to_vec1::<f32>().unwrap()
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn import_names_every_problem() {
        let (nf, depth) = (2, 6);
        let vars = fake_vars(nf, depth);
        let mut dicts: Vec<BTreeMap<String, Tensor>> = export_reference(&vars, nf, depth)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.into_iter().collect())
            .collect();
        dicts[1].remove("down5.bn.running_var");
        dicts[2].insert(
            "up3.upconv.bias".into(),
            Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
        );
        dicts[0].insert(
            "extra.weight".into(),
            Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = import_reference(&dicts[0], &dicts[1], &dicts[2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing C.down5.bn.running_var"), "{err}");
        assert!(err.contains("mis-shaped D.up3.upconv.bias: [7]"), "{err}");
        assert!(err.contains("unexpected F.extra.weight"), "{err}");
        assert!(err.contains("3 problem(s)"), "{err}");
    }
}
