//! The two real benchmarks of the paper (docs/METHOD.md §5), PACS and Office-Home, as data:
//! their domains, classes, published image counts and the paper's source/target settings.
//! Everything that must agree between the folder loaders, the parquet reader, `data info`
//! and the experiment presets reads it from here, once.

use serde::{Deserialize, Serialize};

/// PACS domains, in the order the paper's tables use.
pub const PACS_DOMAINS: [&str; 4] = ["art_painting", "cartoon", "photo", "sketch"];
/// PACS classes in the official order: label `k` of the split files (1-based) is
/// `PACS_CLASSES[k - 1]`, and class id `k - 1` everywhere in dgcolor.
pub const PACS_CLASSES: [&str; 7] = [
    "dog", "elephant", "giraffe", "guitar", "horse", "house", "person",
];
/// Images per domain in the official release (Li et al. 2017), in [`PACS_DOMAINS`] order.
pub const PACS_COUNTS: [usize; 4] = [2048, 2344, 1670, 3929];

/// Office-Home domains as released (note the space in `Real World`).
pub const OFFICE_HOME_DOMAINS: [&str; 4] = ["Art", "Clipart", "Product", "Real World"];
/// Images per domain in the release (15 588 in all), in [`OFFICE_HOME_DOMAINS`] order.
pub const OFFICE_HOME_COUNTS: [usize; 4] = [2427, 4365, 4439, 4357];
/// The 65 Office-Home class directories, sorted bytewise as `sorted()` / ImageFolder sort
/// them (so `TV` precedes `Table`). Copies in the wild disagree on the case of a few
/// names (`ToothBrush` / `Toothbrush`): names are matched case-insensitively and the
/// user's spelling is kept.
pub const OFFICE_HOME_CLASSES: [&str; 65] = [
    "Alarm_Clock",
    "Backpack",
    "Batteries",
    "Bed",
    "Bike",
    "Bottle",
    "Bucket",
    "Calculator",
    "Calendar",
    "Candles",
    "Chair",
    "Clipboards",
    "Computer",
    "Couch",
    "Curtains",
    "Desk_Lamp",
    "Drill",
    "Eraser",
    "Exit_Sign",
    "Fan",
    "File_Cabinet",
    "Flipflops",
    "Flowers",
    "Folder",
    "Fork",
    "Glasses",
    "Hammer",
    "Helmet",
    "Kettle",
    "Keyboard",
    "Knives",
    "Lamp_Shade",
    "Laptop",
    "Marker",
    "Monitor",
    "Mop",
    "Mouse",
    "Mug",
    "Notebook",
    "Oven",
    "Pan",
    "Paper_Clip",
    "Pen",
    "Pencil",
    "Postit_Notes",
    "Printer",
    "Push_Pin",
    "Radio",
    "Refrigerator",
    "Ruler",
    "Scissors",
    "Screwdriver",
    "Shelf",
    "Sink",
    "Sneakers",
    "Soda",
    "Speaker",
    "Spoon",
    "TV",
    "Table",
    "Telephone",
    "ToothBrush",
    "Toys",
    "Trash_Can",
    "Webcam",
];

/// A benchmark dgcolor knows the published shape of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    Pacs,
    OfficeHome,
}

impl Benchmark {
    /// Parses `pacs`, `office-home` (also `office_home`, `officehome`).
    pub fn parse(name: &str) -> Option<Self> {
        match normalize_name(name).as_str() {
            "pacs" => Some(Self::Pacs),
            "officehome" => Some(Self::OfficeHome),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pacs => "pacs",
            Self::OfficeHome => "office-home",
        }
    }

    /// Human name, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Self::Pacs => "PACS",
            Self::OfficeHome => "Office-Home",
        }
    }

    pub fn domains(self) -> &'static [&'static str] {
        match self {
            Self::Pacs => &PACS_DOMAINS,
            Self::OfficeHome => &OFFICE_HOME_DOMAINS,
        }
    }

    pub fn classes(self) -> &'static [&'static str] {
        match self {
            Self::Pacs => &PACS_CLASSES,
            Self::OfficeHome => &OFFICE_HOME_CLASSES,
        }
    }

    /// Published image count of a domain (name matched with [`normalize_name`]).
    pub fn published_count(self, domain: &str) -> Option<usize> {
        let counts: &[usize] = match self {
            Self::Pacs => &PACS_COUNTS,
            Self::OfficeHome => &OFFICE_HOME_COUNTS,
        };
        let key = normalize_name(domain);
        self.domains()
            .iter()
            .position(|d| normalize_name(d) == key)
            .map(|i| counts[i])
    }

    /// The canonical spelling of a domain name (`Real_World` -> `Real World`), if known.
    pub fn canonical_domain(self, name: &str) -> Option<&'static str> {
        let key = normalize_name(name);
        self.domains()
            .iter()
            .copied()
            .find(|d| normalize_name(d) == key)
    }

    /// The Hugging Face dataset holding a parquet copy.
    pub fn hub_repo(self) -> &'static str {
        match self {
            Self::Pacs => "flwrlabs/pacs",
            Self::OfficeHome => "flwrlabs/office-home",
        }
    }
}

/// The key under which domain (and dataset) names are compared: ASCII lowercase with
/// everything but letters and digits removed, so `Real World`, `Real_World`, `RealWorld`
/// and `real-world` are one domain. Users type names on a command line, where a space is
/// awkward; the reference code renamed the directory for the same reason.
pub fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// One paper setting: source domains and the unseen target.
pub type Setting = (Vec<&'static str>, &'static str);

/// The paper's settings (docs/METHOD.md §5): always two sources and one target, in table
/// order. `dataset` is `pacs`, `office-home` or `synth` (synth uses PACS's domain names,
/// so it mirrors the PACS settings). Unknown names give an empty list.
pub fn paper_settings(dataset: &str) -> Vec<Setting> {
    match normalize_name(dataset).as_str() {
        "pacs" | "synth" => vec![
            (vec!["art_painting", "cartoon"], "photo"),
            (vec!["cartoon", "photo"], "art_painting"),
            (vec!["photo", "art_painting"], "cartoon"),
        ],
        "officehome" => vec![
            (vec!["Art", "Real World"], "Clipart"),
            (vec!["Real World", "Clipart"], "Art"),
            (vec!["Clipart", "Art"], "Real World"),
        ],
        _ => Vec::new(),
    }
}

/// Leave-one-domain-out settings (every other domain is a source), the DomainBed option.
pub fn leave_one_out_settings(dataset: &str) -> Vec<Setting> {
    let domains: &[&'static str] = match normalize_name(dataset).as_str() {
        "pacs" | "synth" => &PACS_DOMAINS,
        "officehome" => &OFFICE_HOME_DOMAINS,
        _ => return Vec::new(),
    };
    domains
        .iter()
        .map(|&t| (domains.iter().copied().filter(|&d| d != t).collect(), t))
        .collect()
}
