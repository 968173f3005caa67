//! Writing PyTorch `.pth` state dicts that `torch.load(path, weights_only=True)` reads, with
//! or without `mmap=True`.
//!
//! A `.pth` file is an uncompressed zip archive whose entries all sit under one folder, the
//! archive name (the file stem). We write the records `torch.load` needs, in the order
//! `torch.save` writes them:
//!
//! | entry | content |
//! |-------|---------|
//! | `<archive>/data.pkl` | a protocol-2 pickle of an `OrderedDict` mapping each key to a `torch._utils._rebuild_tensor_v2` call on a persistent storage id |
//! | `<archive>/byteorder` | `little` |
//! | `<archive>/data/<n>` | the raw little-endian storage of the n-th tensor |
//! | `<archive>/version` | `3\n` |
//!
//! (`torch.save` also writes `.format_version`, `.storage_alignment` and
//! `.data/serialization_id`, which `torch.load` does not require.)
//!
//! Each entry is stored, not deflated, and its data starts at a multiple of 64 bytes (the
//! padding lives in the local header's extra field) because PyTorch's `mmap=True` loader maps
//! storages in place. The zip container, CRCs included, is the `zip` crate's; the pickle
//! stream is written here, since no maintained crate writes the persistent-id pickle that
//! `torch.load` expects. Reading goes through candle ([`candle_core::pickle`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::{bail, DType, Device, Result, Tensor};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Alignment of every entry's data in the archive, as `torch.save` aligns storages.
pub const ALIGNMENT: u16 = 64;

/// Writes `entries` (key, tensor), in that order, as a PyTorch state dict at `path`, through
/// a temporary file in the same directory renamed over `path`, so a reader never sees a
/// partial file. Tensors may live on any device and be non-contiguous; they must be f32 or
/// i64 (the dtypes of the reference state dicts), and every dimension, stride and element
/// count must fit the pickle's 32-bit integers.
pub fn write_pth(path: &Path, entries: &[(String, Tensor)]) -> Result<()> {
    let pickle = state_dict_pickle(entries)?;
    let archive = archive_name(path);
    let tmp = temp_sibling(path);
    let written = write_archive(&tmp, archive, &pickle, entries)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_error(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The folder all entries live under: the file stem, as `torch.save` names it, or `archive`
/// when the stem is not plain ASCII.
fn archive_name(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && s.is_ascii() && !s.contains('/'))
        .unwrap_or("archive")
}

/// `.<file name>.tmp<pid>` next to `path`: same directory, so the rename stays on one
/// file system.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pth".into());
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {e}", path.display()))
}

/// The pickle class of a tensor's storage, or an error for dtypes we do not write.
fn storage_class(key: &str, dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("FloatStorage"),
        DType::I64 => Ok("LongStorage"),
        other => bail!("write_pth: `{key}` is {other:?}; only f32 and i64 are written"),
    }
}

/// `data.pkl`: the state dict's pickle, storage `n` being the n-th entry's data.
fn state_dict_pickle(entries: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut pickle = Pickle::default();
    pickle.begin_ordered_dict();
    for (n, (key, t)) in entries.iter().enumerate() {
        let storage = storage_class(key, t.dtype())?;
        let dims = t.dims();
        let strides = contiguous_strides(dims);
        let numel = t.elem_count();
        let too_big = |v: &usize| i32::try_from(*v).is_err();
        if too_big(&numel) || dims.iter().chain(&strides).any(too_big) {
            bail!("write_pth: `{key}` has shape {dims:?}; sizes above 2^31 - 1 are not written")
        }
        pickle.tensor_entry(key, storage, &n.to_string(), numel, dims, &strides);
    }
    pickle.end_ordered_dict();
    Ok(pickle.finish())
}

/// Row-major strides of a tensor of shape `dims`, which is how its storage is written.
fn contiguous_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

/// A tensor's elements in row-major order as little-endian bytes.
fn storage_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let flat = t.to_device(&Device::Cpu)?.flatten_all()?;
    Ok(match flat.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I64 => flat
            .to_vec1::<i64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => bail!("write_pth: {other:?} storage"),
    })
}

/// Writes the zip archive to `path`. Storages are converted to bytes one tensor at a time,
/// as they are written, so the copies of only one tensor are held at once.
fn write_archive(
    path: &Path,
    archive: &str,
    pickle: &[u8],
    entries: &[(String, Tensor)],
) -> Result<()> {
    let zip_error = |e: zip::result::ZipError| io_error(path, e);
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    // Fixed 1980-01-01 timestamps keep the output a function of the tensors alone.
    let options = SimpleFileOptions::DEFAULT
        .compression_method(CompressionMethod::Stored)
        .with_alignment(ALIGNMENT);
    let mut record = |name: &str, data: &[u8]| -> Result<()> {
        zip.start_file(format!("{archive}/{name}"), options)
            .map_err(zip_error)?;
        zip.write_all(data).map_err(|e| io_error(path, e))
    };
    record("data.pkl", pickle)?;
    record("byteorder", b"little")?;
    for (n, (_, t)) in entries.iter().enumerate() {
        record(&format!("data/{n}"), &storage_bytes(t)?)?;
    }
    record("version", b"3\n")?;
    let file = zip
        .finish()
        .map_err(zip_error)?
        .into_inner()
        .map_err(|e| io_error(path, e.error()))?;
    file.sync_all().map_err(|e| io_error(path, e))
}

/// The pickle opcodes `data.pkl` uses (protocol 2).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const GLOBAL: u8 = b'c';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const REDUCE: u8 = b'R';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const BINUNICODE: u8 = b'X';
    pub const BININT: u8 = b'J';
    pub const BINPERSID: u8 = b'Q';
    pub const NEWFALSE: u8 = 0x89;
    pub const SETITEMS: u8 = b'u';
    pub const STOP: u8 = b'.';
}

/// A protocol-2 pickle of an `OrderedDict` of tensors, built opcode by opcode. Only the
/// globals `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and
/// `torch.<Type>Storage` appear, all of which `weights_only=True` allows.
#[derive(Default)]
struct Pickle {
    out: Vec<u8>,
}

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(op::GLOBAL);
        self.out
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn string(&mut self, s: &str) {
        self.out.push(op::BINUNICODE);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A 32-bit integer; callers check that `v` fits.
    fn int(&mut self, v: usize) {
        self.out.push(op::BININT);
        self.out
            .extend_from_slice(&i32::try_from(v).unwrap_or(i32::MAX).to_le_bytes());
    }

    fn int_tuple(&mut self, values: &[usize]) {
        self.out.push(op::MARK);
        for &v in values {
            self.int(v);
        }
        self.out.push(op::TUPLE);
    }

    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.push(op::EMPTY_TUPLE);
        self.out.push(op::REDUCE);
    }

    /// The protocol header, an empty `OrderedDict` and the mark its items follow.
    fn begin_ordered_dict(&mut self) {
        self.out.extend_from_slice(&[op::PROTO, 2]);
        self.empty_ordered_dict();
        self.out.push(op::MARK);
    }

    /// `key: _rebuild_tensor_v2(storage, 0, dims, strides, False, OrderedDict())`, the storage
    /// being the persistent id `('storage', torch.<storage>, storage_key, 'cpu', numel)`.
    fn tensor_entry(
        &mut self,
        key: &str,
        storage: &str,
        storage_key: &str,
        numel: usize,
        dims: &[usize],
        strides: &[usize],
    ) {
        self.string(key);
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(op::MARK);
        self.out.push(op::MARK);
        self.string("storage");
        self.global("torch", storage);
        self.string(storage_key);
        self.string("cpu");
        self.int(numel);
        self.out.push(op::TUPLE);
        self.out.push(op::BINPERSID);
        self.int(0); // storage offset
        self.int_tuple(dims);
        self.int_tuple(strides);
        self.out.push(op::NEWFALSE); // requires_grad
        self.empty_ordered_dict(); // backward hooks
        self.out.push(op::TUPLE);
        self.out.push(op::REDUCE);
    }

    /// Sets every key-value pair pushed since [`Self::begin_ordered_dict`].
    fn end_ordered_dict(&mut self) {
        self.out.push(op::SETITEMS);
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(op::STOP);
        self.out
    }
}
