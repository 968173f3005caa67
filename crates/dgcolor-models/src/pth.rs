//! Writing PyTorch `.pth` state dicts as `torch.save` writes them: a protocol-2 pickle and an
//! uncompressed zip.

use std::io::Write;
use std::path::Path;

use candle_core::{bail, DType, Device, Result, Tensor};

/// Writes a state dict as PyTorch's `torch.save` does (zip of `<stem>/data.pkl`, a protocol-2
/// pickle of an `OrderedDict` of `torch._utils._rebuild_tensor_v2` calls, raw little-endian
/// storages `<stem>/data/<i>` aligned to 64 bytes, `<stem>/version`), loadable with
/// `torch.load(..., weights_only=True)`. Tensors must be f32 or i64.
pub fn write_pth(path: &Path, entries: &[(String, Tensor)]) -> Result<()> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && s.is_ascii() && !s.contains('/'))
        .unwrap_or("archive");
    let mut pickle = Pickle::default();
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    pickle.begin_ordered_dict();
    for (i, (key, t)) in entries.iter().enumerate() {
        let t = t.to_device(&Device::Cpu)?;
        let (storage, bytes) = match t.dtype() {
            DType::F32 => (
                "FloatStorage",
                t.flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
            DType::I64 => (
                "LongStorage",
                t.flatten_all()?
                    .to_vec1::<i64>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            other => bail!("write_pth: `{key}` is {other:?}; only f32 and i64 are written"),
        };
        pickle.tensor_entry(key, storage, &i.to_string(), t.dims());
        records.push((format!("{stem}/data/{i}"), bytes));
    }
    pickle.end_ordered_dict();
    let mut zip = ZipWriter::default();
    zip.add(&format!("{stem}/data.pkl"), &pickle.finish());
    zip.add(&format!("{stem}/byteorder"), b"little");
    for (name, bytes) in &records {
        zip.add(name, bytes);
    }
    zip.add(&format!("{stem}/version"), b"3\n");
    let bytes = zip.finish();
    let mut f = std::fs::File::create(path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    f.write_all(&bytes)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    Ok(())
}

/// Pickle opcodes used.
const PROTO: u8 = 0x80;
const GLOBAL: u8 = b'c';
const EMPTY_TUPLE: u8 = b')';
const REDUCE: u8 = b'R';
const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const BINUNICODE: u8 = b'X';
const BININT: u8 = b'J';
const BINPERSID: u8 = b'Q';
const NEWFALSE: u8 = 0x89;
const SETITEMS: u8 = b'u';
const STOP: u8 = b'.';

#[derive(Default)]
struct Pickle {
    out: Vec<u8>,
}

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(GLOBAL);
        self.out
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn string(&mut self, s: &str) {
        self.out.push(BINUNICODE);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: usize) {
        self.out.push(BININT);
        self.out
            .extend_from_slice(&i32::try_from(v).unwrap_or(i32::MAX).to_le_bytes());
    }

    fn int_tuple(&mut self, values: impl Iterator<Item = usize>) {
        self.out.push(MARK);
        for v in values {
            self.int(v);
        }
        self.out.push(TUPLE);
    }

    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.push(EMPTY_TUPLE);
        self.out.push(REDUCE);
    }

    pub fn begin_ordered_dict(&mut self) {
        self.out.extend_from_slice(&[PROTO, 2]);
        self.empty_ordered_dict();
        self.out.push(MARK);
    }

    /// `key: _rebuild_tensor_v2(storage, 0, shape, contiguous strides, False, OrderedDict())`.
    pub fn tensor_entry(&mut self, key: &str, storage: &str, storage_key: &str, dims: &[usize]) {
        let numel: usize = dims.iter().product();
        self.string(key);
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(MARK);
        // Persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel).
        self.out.push(MARK);
        self.string("storage");
        self.global("torch", storage);
        self.string(storage_key);
        self.string("cpu");
        self.int(numel);
        self.out.push(TUPLE);
        self.out.push(BINPERSID);
        self.int(0);
        self.int_tuple(dims.iter().copied());
        let mut strides = vec![1usize; dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * dims[i + 1];
        }
        self.int_tuple(strides.into_iter());
        self.out.push(NEWFALSE);
        self.empty_ordered_dict();
        self.out.push(TUPLE);
        self.out.push(REDUCE);
    }

    pub fn end_ordered_dict(&mut self) {
        self.out.push(SETITEMS);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(STOP);
        self.out
    }
}

/// Stored (uncompressed) zip, with each record's data aligned to 64 bytes by padding
/// in the local header's extra field, as `torch.save` does.
#[derive(Default)]
struct ZipWriter {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

const ALIGN: usize = 64;

impl ZipWriter {
    pub fn add(&mut self, name: &str, data: &[u8]) {
        let offset = self.out.len() as u32;
        let crc = crc32(data);
        let header_len = 30 + name.len();
        // Extra field: id "FB", 2-byte length, zero padding.
        let mut pad = (ALIGN - (self.out.len() + header_len + 4) % ALIGN) % ALIGN;
        let extra_len = 4 + pad;
        if extra_len > u16::MAX as usize {
            pad = 0;
        }
        let mut extra = vec![b'F', b'B'];
        extra.extend_from_slice(&(pad as u16).to_le_bytes());
        extra.resize(4 + pad, 0);
        let size = data.len() as u32;
        let le16 = |v: u16| v.to_le_bytes();
        let le32 = |v: u32| v.to_le_bytes();
        // Local file header.
        self.out.extend_from_slice(&le32(0x0403_4b50));
        self.out.extend_from_slice(&le16(20)); // version needed
        self.out.extend_from_slice(&le16(0)); // flags
        self.out.extend_from_slice(&le16(0)); // stored
        self.out.extend_from_slice(&le16(0)); // mod time
        self.out.extend_from_slice(&le16(0x21)); // mod date (1980-01-01)
        self.out.extend_from_slice(&le32(crc));
        self.out.extend_from_slice(&le32(size));
        self.out.extend_from_slice(&le32(size));
        self.out.extend_from_slice(&le16(name.len() as u16));
        self.out.extend_from_slice(&le16(extra.len() as u16));
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(&extra);
        self.out.extend_from_slice(data);
        // Central directory entry.
        self.central.extend_from_slice(&le32(0x0201_4b50));
        self.central.extend_from_slice(&le16(20)); // version made by
        self.central.extend_from_slice(&le16(20)); // version needed
        self.central.extend_from_slice(&le16(0));
        self.central.extend_from_slice(&le16(0));
        self.central.extend_from_slice(&le16(0));
        self.central.extend_from_slice(&le16(0x21));
        self.central.extend_from_slice(&le32(crc));
        self.central.extend_from_slice(&le32(size));
        self.central.extend_from_slice(&le32(size));
        self.central.extend_from_slice(&le16(name.len() as u16));
        self.central.extend_from_slice(&le16(0)); // extra
        self.central.extend_from_slice(&le16(0)); // comment
        self.central.extend_from_slice(&le16(0)); // disk
        self.central.extend_from_slice(&le16(0)); // internal attributes
        self.central.extend_from_slice(&le32(0)); // external attributes
        self.central.extend_from_slice(&le32(offset));
        self.central.extend_from_slice(name.as_bytes());
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        let cd_offset = self.out.len() as u32;
        let cd_size = self.central.len() as u32;
        self.out.extend_from_slice(&self.central);
        self.out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        self.out.extend_from_slice(&[0, 0, 0, 0]); // disk numbers
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&cd_size.to_le_bytes());
        self.out.extend_from_slice(&cd_offset.to_le_bytes());
        self.out.extend_from_slice(&[0, 0]); // comment length
        self.out
    }
}

fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            (0..8).fold(i as u32, |c, _| {
                if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            })
        })
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
