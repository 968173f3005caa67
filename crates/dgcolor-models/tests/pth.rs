//! `write_pth`: the zip container as PyTorch's loader reads it (entry names and order, stored
//! entries, 64-byte aligned data, CRC-32s), the storages' bytes, and the round trip through
//! candle's `.pth` reader.

use std::io::{Cursor, Read};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use dgcolor_models::pth::{write_pth, ALIGNMENT};
use dgcolor_models::read_state_dict;
use zip::{CompressionMethod, ZipArchive};

/// f32 and i64 tensors of ranks 0 to 3, one of them empty and one a transposed view.
fn entries() -> Vec<(String, Tensor)> {
    let cpu = Device::Cpu;
    let conv: Vec<f32> = (0..2 * 3 * 4 * 4).map(|i| i as f32 * 0.25 - 7.0).collect();
    vec![
        (
            "down1.conv.weight".into(),
            Tensor::from_vec(conv, (2, 3, 4, 4), &cpu).unwrap(),
        ),
        (
            "down1.conv.bias".into(),
            Tensor::new(&[f32::MIN_POSITIVE, -0.0, f32::INFINITY], &cpu).unwrap(),
        ),
        (
            "down1.bn.num_batches_tracked".into(),
            Tensor::new(-7i64, &cpu).unwrap(),
        ),
        (
            "longs".into(),
            Tensor::new(&[[1i64, i64::MIN], [i64::MAX, 0]], &cpu).unwrap(),
        ),
        (
            "empty".into(),
            Tensor::zeros((0, 5), DType::F32, &cpu).unwrap(),
        ),
        (
            "transposed".into(),
            Tensor::arange(0f32, 6., &cpu)
                .unwrap()
                .reshape((2, 3))
                .unwrap()
                .t()
                .unwrap(),
        ),
    ]
}

/// A tensor's values in row-major order as little-endian bytes.
fn le_bytes(t: &Tensor) -> Vec<u8> {
    let flat = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I64 => flat
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize
}

#[test]
fn archive_has_pytorch_layout_aligned_stored_entries_and_valid_crcs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.pth");
    let entries = entries();
    write_pth(&path, &entries).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let mut zip = ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
    let mut expected = vec!["weights/data.pkl".to_string(), "weights/byteorder".into()];
    expected.extend((0..entries.len()).map(|n| format!("weights/data/{n}")));
    expected.push("weights/version".into());
    let names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().into_owned())
        .collect();
    assert_eq!(names, expected);

    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        assert_eq!(entry.compression(), CompressionMethod::Stored, "{name}");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(entry.size() as usize, content.len(), "{name}");
        assert_eq!(crc32fast::hash(&content), entry.crc32(), "{name}: CRC-32");

        // Where PyTorch's loader finds the data: after the local header, its name and its
        // extra field (which holds the alignment padding).
        let header = entry.header_start() as usize;
        assert_eq!(&bytes[header..header + 4], b"PK\x03\x04", "{name}");
        let local_crc = u32::from_le_bytes(bytes[header + 14..header + 18].try_into().unwrap());
        assert_eq!(local_crc, entry.crc32(), "{name}: local header CRC-32");
        let data = header + 30 + u16_at(&bytes, header + 26) + u16_at(&bytes, header + 28);
        assert_eq!(data % ALIGNMENT as usize, 0, "{name} data at {data}");
        assert_eq!(&bytes[data..data + content.len()], content, "{name}");

        match name.strip_prefix("weights/").unwrap() {
            "data.pkl" => {
                assert_eq!(&content[..2], [0x80, 2], "protocol 2");
                assert_eq!(content.last(), Some(&b'.'), "STOP");
                // The keys (BINUNICODE strings) come in the order given.
                let at = |key: &str| {
                    let mut op = vec![b'X'];
                    op.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    op.extend_from_slice(key.as_bytes());
                    content.windows(op.len()).position(|w| w == op).unwrap()
                };
                let positions: Vec<usize> = entries.iter().map(|(k, _)| at(k)).collect();
                assert!(positions.is_sorted(), "{positions:?}");
            }
            "byteorder" => assert_eq!(content, b"little"),
            "version" => assert_eq!(content, b"3\n"),
            storage => {
                let n: usize = storage.strip_prefix("data/").unwrap().parse().unwrap();
                assert_eq!(content, le_bytes(&entries[n].1), "{name}");
            }
        }
    }
}

#[test]
fn round_trips_through_candle_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("F.pth");
    let entries = entries();
    write_pth(&path, &entries).unwrap();

    // candle returns the keys in no particular order; the order is checked on `data.pkl`.
    let back = candle_core::pickle::read_all(&path).unwrap();
    let mut names: Vec<&str> = back.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
    let dict = read_state_dict(&path).unwrap();
    assert_eq!(dict.len(), entries.len());
    for (key, t) in &entries {
        for read in [&back.iter().find(|(k, _)| k == key).unwrap().1, &dict[key]] {
            assert_eq!(read.dtype(), t.dtype(), "{key}");
            assert_eq!(read.dims(), t.dims(), "{key}");
            assert_eq!(le_bytes(read), le_bytes(t), "{key}");
        }
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn rewriting_replaces_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("D.pth");
    write_pth(&path, &entries()).unwrap();
    let one = vec![(
        "only".to_string(),
        Tensor::new(&[3f32, 4.], &Device::Cpu).unwrap(),
    )];
    write_pth(&path, &one).unwrap();
    assert_eq!(dir_names(dir.path()), ["D.pth"]);
    let back = read_state_dict(&path).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back["only"].to_vec1::<f32>().unwrap(), [3., 4.]);
}

#[test]
fn unwritable_tensors_are_errors_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pth");
    let cpu = Device::Cpu;
    let half = vec![(
        "half".to_string(),
        Tensor::zeros(3, DType::F16, &cpu).unwrap(),
    )];
    let err = write_pth(&path, &half).unwrap_err().to_string();
    assert!(err.contains("`half` is F16"), "{err}");
    // Empty, so nothing is allocated, but one dimension does not fit the pickle's BININT.
    let huge = vec![(
        "huge".to_string(),
        Tensor::zeros((0, 1usize << 31), DType::F32, &cpu).unwrap(),
    )];
    let err = write_pth(&path, &huge).unwrap_err().to_string();
    assert!(err.contains("`huge` has shape [0, 2147483648]"), "{err}");
    let missing_dir = dir.path().join("no such dir").join("x.pth");
    assert!(write_pth(&missing_dir, &entries()).is_err());
    assert!(
        dir_names(dir.path()).is_empty(),
        "{:?}",
        dir_names(dir.path())
    );
}
