//! Bit patterns of gradients and updated weights, for checking that a change inside candle
//! (the vendored candle-core patch, `vendor/candle-core.patch`) leaves every number the
//! networks and algorithms compute unchanged: `tests/grad_dump.rs` writes a dump from a build against
//! the patched candle-core and one from a build against the pristine crate
//! (`scripts/candle-patch.sh gradcheck`), and [`compare`] reads them side by side.
//!
//! A dump is a sequence of named f32 arrays stored as their raw bits (no rounding through
//! text), so the comparison is bit for bit. Two values that differ only in the sign of a zero
//! are counted apart from real differences: adding a gradient into a fresh tensor of zeros
//! (what unpatched candle does with the first gradient of every node) turns `-0.0` into
//! `+0.0`, storing it directly (the patch) keeps `-0.0`; both are the same number.

use std::io::{self, Read, Write};

const MAGIC: &[u8; 8] = b"DGGRAD01";

/// One named array of a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub bits: Vec<u32>,
}

impl Entry {
    pub fn new(name: impl Into<String>, values: &[f32]) -> Self {
        Self {
            name: name.into(),
            bits: values.iter().map(|v| v.to_bits()).collect(),
        }
    }
}

/// Writes `entries` (magic, then per entry: name length u32, name, count u64, bits u32 LE).
pub fn write(out: &mut impl Write, entries: &[Entry]) -> io::Result<()> {
    out.write_all(MAGIC)?;
    for e in entries {
        out.write_all(&(e.name.len() as u32).to_le_bytes())?;
        out.write_all(e.name.as_bytes())?;
        out.write_all(&(e.bits.len() as u64).to_le_bytes())?;
        for b in &e.bits {
            out.write_all(&b.to_le_bytes())?;
        }
    }
    Ok(())
}

/// Reads a dump written by [`write`].
pub fn read(input: &mut impl Read) -> io::Result<Vec<Entry>> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("dump: {what}"));
    if bytes.get(..8) != Some(MAGIC) {
        return Err(bad("not a gradient dump (bad magic)"));
    }
    let mut at = 8;
    let mut entries = Vec::new();
    while at < bytes.len() {
        let mut take = |n: usize| -> io::Result<&[u8]> {
            let s = bytes.get(at..at + n).ok_or_else(|| bad("truncated"))?;
            at += n;
            Ok(s)
        };
        let len = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize;
        let name = String::from_utf8(take(len)?.to_vec()).map_err(|_| bad("name not UTF-8"))?;
        let count = u64::from_le_bytes(take(8)?.try_into().unwrap()) as usize;
        let raw = take(count.checked_mul(4).ok_or_else(|| bad("count"))?)?;
        let bits = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        entries.push(Entry { name, bits });
    }
    Ok(entries)
}

/// What [`compare`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    pub entries: usize,
    pub values: usize,
    /// Values with identical bits.
    pub identical: usize,
    /// `+0.0` on one side, `-0.0` on the other: `(entry name, count)` per entry that has any.
    pub zero_signs: Vec<(String, usize)>,
    /// Real differences: `(entry name, index, a, b)`, the first few of each entry.
    pub differences: Vec<(String, usize, f32, f32)>,
    pub differing_values: usize,
    /// Structural mismatches (names, order, lengths).
    pub layout: Vec<String>,
}

impl Comparison {
    /// Nothing differs but, at most, the sign of some zeros.
    pub fn equal_up_to_zero_signs(&self) -> bool {
        self.layout.is_empty() && self.differing_values == 0
    }

    pub fn zero_sign_values(&self) -> usize {
        self.zero_signs.iter().map(|(_, n)| n).sum()
    }

    /// A human-readable report.
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} arrays, {} values: {} bit-identical, {} differ only in the sign of a zero, {} differ\n",
            self.entries,
            self.values,
            self.identical,
            self.zero_sign_values(),
            self.differing_values
        );
        for l in &self.layout {
            s += &format!("  layout: {l}\n");
        }
        for (name, n) in &self.zero_signs {
            s += &format!("  zero signs: {name}: {n}\n");
        }
        for (name, i, a, b) in &self.differences {
            s += &format!(
                "  DIFFERS: {name}[{i}]: {a:e} ({:#010x}) vs {b:e} ({:#010x})\n",
                a.to_bits(),
                b.to_bits()
            );
        }
        s
    }
}

/// Compares two dumps entry by entry and value by value.
pub fn compare(a: &[Entry], b: &[Entry]) -> Comparison {
    let mut c = Comparison {
        entries: a.len(),
        ..Default::default()
    };
    if a.len() != b.len() {
        c.layout
            .push(format!("{} arrays vs {} arrays", a.len(), b.len()));
    }
    for (ea, eb) in a.iter().zip(b) {
        if ea.name != eb.name || ea.bits.len() != eb.bits.len() {
            c.layout.push(format!(
                "{} ({} values) vs {} ({} values)",
                ea.name,
                ea.bits.len(),
                eb.name,
                eb.bits.len()
            ));
            continue;
        }
        let (mut zero_signs, mut shown) = (0, 0);
        for (i, (&x, &y)) in ea.bits.iter().zip(&eb.bits).enumerate() {
            c.values += 1;
            if x == y {
                c.identical += 1;
            } else if (x | y) & 0x7fff_ffff == 0 {
                zero_signs += 1;
            } else {
                c.differing_values += 1;
                if shown < 5 {
                    shown += 1;
                    c.differences
                        .push((ea.name.clone(), i, f32::from_bits(x), f32::from_bits(y)));
                }
            }
        }
        if zero_signs > 0 {
            c.zero_signs.push((ea.name.clone(), zero_signs));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(entries: &[Entry]) -> Vec<Entry> {
        let mut buf = Vec::new();
        write(&mut buf, entries).unwrap();
        read(&mut buf.as_slice()).unwrap()
    }

    #[test]
    fn dumps_round_trip_every_bit_pattern() {
        let weird = [
            0.0f32,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            1e-45,
            -3.5,
        ];
        let entries = vec![Entry::new("a.weight", &weird), Entry::new("empty", &[])];
        let back = round_trip(&entries);
        assert_eq!(back, entries);
        assert!(read(&mut &b"NOTADUMP"[..]).is_err());
        let mut buf = Vec::new();
        write(&mut buf, &entries).unwrap();
        for cut in [1, 4, 10, 20] {
            let short = &buf[..buf.len() - cut];
            assert!(read(&mut &short[..]).is_err(), "dump cut by {cut} accepted");
        }
    }

    #[test]
    fn compare_tells_zero_signs_from_real_differences() {
        let a = vec![
            Entry::new("g", &[1.0, 0.0, -0.0, 2.0]),
            Entry::new("w", &[0.5, 0.25]),
        ];
        assert_eq!(compare(&a, &a).identical, 6);
        assert!(compare(&a, &a).equal_up_to_zero_signs());

        // Zero signs swapped: equal as numbers, reported.
        let b = vec![
            Entry::new("g", &[1.0, -0.0, 0.0, 2.0]),
            Entry::new("w", &[0.5, 0.25]),
        ];
        let c = compare(&a, &b);
        assert!(c.equal_up_to_zero_signs());
        assert_eq!(c.zero_signs, vec![("g".to_string(), 2)]);
        assert_eq!(c.identical, 4);

        // One ulp apart: a real difference.
        let d = vec![
            Entry::new("g", &[1.0, 0.0, -0.0, 2.0]),
            Entry::new("w", &[0.5, f32::from_bits(0.25f32.to_bits() + 1)]),
        ];
        let c = compare(&a, &d);
        assert!(!c.equal_up_to_zero_signs());
        assert_eq!(c.differing_values, 1);
        assert_eq!(c.differences[0].0, "w");
        assert!(c.report().contains("DIFFERS: w[1]"), "{}", c.report());

        // A zero against a tiny denormal is a real difference too.
        let e = vec![
            Entry::new("g", &[1.0, 1e-45, -0.0, 2.0]),
            Entry::new("w", &[0.5, 0.25]),
        ];
        assert_eq!(compare(&a, &e).differing_values, 1);

        // Layout: a missing array or another length.
        assert!(!compare(&a, &a[..1]).equal_up_to_zero_signs());
        let f = vec![Entry::new("g", &[1.0]), Entry::new("w", &[0.5, 0.25])];
        assert!(!compare(&a, &f).equal_up_to_zero_signs());
    }
}
