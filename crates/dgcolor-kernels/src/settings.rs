//! The run-time switches of this crate, read from the environment once per process.
//!
//! | variable              | values                                   | default | what it does |
//! |-----------------------|------------------------------------------|---------|--------------|
//! | `DGCOLOR_KERNELS`     | `auto`, `candle`, `lowered`, `convs`     | `auto`  | which code runs convolutions, BatchNorm, LeakyReLU and Adam ([`KernelChoice`]) |
//! | `DGCOLOR_WINOGRAD`    | `1`, `0`                                 | `1`     | `0` sends the CPU convolutions that would use Winograd F(2x2, 2x2) through im2col |
//! | `DGCOLOR_CUDA_EVENTS` | `0`, `1`                                 | `0`     | `1` keeps cudarc's per-allocation CUDA events |
//! | `DGCOLOR_CUDA_POOL`   | `keep`, `trim`                           | `keep`  | `trim` leaves CUDA's memory pool returning freed memory to the driver at each synchronisation |
//! | `DGCOLOR_CUDNN_CACHE` | `1`, `0`                                 | `1`     | `0` asks cuDNN's heuristic for an algorithm on every convolution call |
//!
//! Unset and empty mean the default. Any other value is an error ([`SettingsError`]) naming
//! the variable, the value and the valid values. Several switches change the order of
//! floating-point sums (the kernels, Winograd, cuDNN's algorithms), hence the results in
//! their last bits, so a run records the [`Settings`] in force (they serialise as a
//! `[settings]` table: `kernels = "auto"`, `winograd = true`, `cuda_events = false`,
//! `cuda_pool = "keep"`, `cudnn_cache = true`).
//!
//! Other `DGCOLOR_*` variables belong to tests and scripts (`DGCOLOR_TEST_DEVICE`,
//! `DGCOLOR_PARITY_DIR`, `DGCOLOR_CUDA_DIR`, `DGCOLOR_GPU_PACK`, `DGCOLOR_KERNEL_PROFILE`)
//! and are not read here, so unknown `DGCOLOR_*` names are not rejected.
//!
//! Binaries read the settings in [`crate::setup_process`], which returns the error so that a
//! bad value stops the program before any work; everything in this crate then asks
//! [`settings`]. Code that never calls `setup_process` (tests, library users) gets the
//! environment parsed on the first call of [`settings`], which panics with the same message
//! on an invalid value: a silently ignored switch would make a before/after measurement
//! compare the same code with itself.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The variables read by [`Settings::from_env`], in the order of the table above.
pub const VARIABLES: [&str; 5] = [
    KERNELS.name,
    WINOGRAD.name,
    CUDA_EVENTS.name,
    CUDA_POOL.name,
    CUDNN_CACHE.name,
];

/// One environment variable: its name, the values it accepts (the default first), and how
/// a value sets its field (`None` for a value it does not accept).
struct Var {
    name: &'static str,
    values: &'static [&'static str],
    set: fn(&mut Settings, &str) -> Option<()>,
}

const KERNELS: Var = Var {
    name: "DGCOLOR_KERNELS",
    values: &["auto", "candle", "lowered", "convs"],
    set: |s, v| KernelChoice::parse(v).map(|k| s.kernels = k),
};
const WINOGRAD: Var = Var {
    name: "DGCOLOR_WINOGRAD",
    values: &["1", "0"],
    set: |s, v| parse_bool(v).map(|b| s.winograd = b),
};
const CUDA_EVENTS: Var = Var {
    name: "DGCOLOR_CUDA_EVENTS",
    values: &["0", "1"],
    set: |s, v| parse_bool(v).map(|b| s.cuda_events = b),
};
const CUDA_POOL: Var = Var {
    name: "DGCOLOR_CUDA_POOL",
    values: &["keep", "trim"],
    set: |s, v| PoolPolicy::parse(v).map(|p| s.cuda_pool = p),
};
const CUDNN_CACHE: Var = Var {
    name: "DGCOLOR_CUDNN_CACHE",
    values: &["1", "0"],
    set: |s, v| parse_bool(v).map(|b| s.cudnn_cache = b),
};
const ALL_VARS: [&Var; 5] = [&KERNELS, &WINOGRAD, &CUDA_EVENTS, &CUDA_POOL, &CUDNN_CACHE];

/// A value of one of [`VARIABLES`] that is none of the values it accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value}: expected one of {}", expected.join(", "))]
pub struct SettingsError {
    /// The variable, e.g. `DGCOLOR_KERNELS`.
    pub name: &'static str,
    /// The value it had (non-Unicode bytes replaced by U+FFFD).
    pub value: String,
    /// Every value it accepts, the default first.
    pub expected: &'static [&'static str],
}

/// `DGCOLOR_KERNELS`: which implementation runs the convolutions and the fused ops
/// (BatchNorm, LeakyReLU, Adam). The non-default choices exist for before/after measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelChoice {
    /// This crate's CPU ops for f32 on the CPU, cuDNN on CUDA in a `cudnn` build, the
    /// [`crate::lowered`] path otherwise (and at bf16); the fused ops wherever they run.
    #[default]
    Auto,
    /// candle's own `conv2d` / `conv_transpose2d`, BatchNorm, LeakyReLU and Adam as candle
    /// ops: every custom op of this crate off.
    Candle,
    /// The [`crate::lowered`] path for every convolution, on every device; fused ops on.
    Lowered,
    /// The convolutions as `auto`, the fused ops off (candle ops instead).
    Convs,
}

impl KernelChoice {
    pub const ALL: [Self; 4] = [Self::Auto, Self::Candle, Self::Lowered, Self::Convs];

    /// The spelling in `DGCOLOR_KERNELS` and in the serialised settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Candle => "candle",
            Self::Lowered => "lowered",
            Self::Convs => "convs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this choice lets the fused BatchNorm / LeakyReLU / Adam kernels run.
    pub fn fused_ops(self) -> bool {
        matches!(self, Self::Auto | Self::Lowered)
    }
}

/// `DGCOLOR_CUDA_POOL`: what CUDA's default memory pool does with freed device memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolPolicy {
    /// Keeps it for reuse (release threshold raised to the maximum), as PyTorch's caching
    /// allocator does.
    #[default]
    Keep,
    /// CUDA's default: hands it back to the driver at every synchronisation.
    Trim,
}

impl PoolPolicy {
    pub const ALL: [Self; 2] = [Self::Keep, Self::Trim];

    /// The spelling in `DGCOLOR_CUDA_POOL` and in the serialised settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Trim => "trim",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Every switch of this crate (see the module docs for the variables). `Default` is what an
/// empty environment gives. Missing fields deserialise to their defaults; unknown fields
/// are an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `DGCOLOR_KERNELS`.
    pub kernels: KernelChoice,
    /// `DGCOLOR_WINOGRAD`: Winograd F(2x2, 2x2) for the CPU convolutions it fits.
    pub winograd: bool,
    /// `DGCOLOR_CUDA_EVENTS`: cudarc's per-allocation CUDA events kept (`true`) or turned off.
    pub cuda_events: bool,
    /// `DGCOLOR_CUDA_POOL`.
    pub cuda_pool: PoolPolicy,
    /// `DGCOLOR_CUDNN_CACHE`: cuDNN's chosen algorithm cached per layer shape (`true`) or
    /// asked for on every call.
    pub cudnn_cache: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kernels: KernelChoice::Auto,
            winograd: true,
            cuda_events: false,
            cuda_pool: PoolPolicy::Keep,
            cudnn_cache: true,
        }
    }
}

/// `"0"` / `"1"` of the boolean variables.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

impl Settings {
    /// The settings of the process environment: [`Settings::from_vars`] of [`VARIABLES`].
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(VARIABLES.iter().filter_map(|&name| {
            std::env::var_os(name).map(|v| (name, v.to_string_lossy().into_owned()))
        }))
    }

    /// The settings given by `(name, value)` pairs such as `std::env::vars()`: names other
    /// than [`VARIABLES`] are ignored, an empty value means the default, and a later pair
    /// overrides an earlier one of the same name.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut s = Self::default();
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            let Some(var) = ALL_VARS.into_iter().find(|v| v.name == name) else {
                continue;
            };
            // Empty means unset: the default, listed first.
            let value = if value.is_empty() {
                var.values[0]
            } else {
                value
            };
            if (var.set)(&mut s, value).is_none() {
                return Err(SettingsError {
                    name: var.name,
                    value: value.to_owned(),
                    expected: var.values,
                });
            }
        }
        Ok(s)
    }

    /// The assignments of every variable that reproduce these settings, in the order of
    /// [`VARIABLES`] (e.g. to rerun a recorded run: `env DGCOLOR_KERNELS=convs ...`).
    pub fn to_vars(&self) -> [(&'static str, &'static str); 5] {
        [
            (KERNELS.name, self.kernels.as_str()),
            (WINOGRAD.name, bool_str(self.winograd)),
            (CUDA_EVENTS.name, bool_str(self.cuda_events)),
            (CUDA_POOL.name, self.cuda_pool.as_str()),
            (CUDNN_CACHE.name, bool_str(self.cudnn_cache)),
        ]
    }

    /// True for the defaults (for `skip_serializing_if`, where a config written before
    /// these settings were recorded must still compare equal).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Reads and validates the process's settings ([`Settings::from_env`]) unless that already
/// happened, and returns those in force. Called by [`crate::setup_process`]; a binary that
/// does not call that should call this first thing, to report a bad value as an error
/// rather than a panic in the middle of a run.
pub fn init_settings() -> Result<&'static Settings, SettingsError> {
    if let Some(s) = SETTINGS.get() {
        return Ok(s);
    }
    let s = Settings::from_env()?;
    Ok(SETTINGS.get_or_init(|| s))
}

/// The settings in force, read from the environment on the first call in the process
/// (by [`init_settings`] or here) and never again.
///
/// # Panics
///
/// On the first call, if the environment holds an invalid value (the message is the
/// [`SettingsError`]'s, e.g. `DGCOLOR_KERNELS=fast: expected one of auto, candle, lowered,
/// convs`). Binaries avoid it by calling [`crate::setup_process`] first.
pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings::from_env().unwrap_or_else(|e| panic!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_vars(pairs.iter().copied())
    }

    #[test]
    fn empty_and_unset_are_the_defaults() {
        let d = Settings::default();
        assert_eq!(
            d,
            Settings {
                kernels: KernelChoice::Auto,
                winograd: true,
                cuda_events: false,
                cuda_pool: PoolPolicy::Keep,
                cudnn_cache: true,
            }
        );
        assert!(d.is_default());
        assert_eq!(parse(&[]).unwrap(), d);
        let empty: Vec<_> = VARIABLES.iter().map(|&n| (n, "")).collect();
        assert_eq!(parse(&empty).unwrap(), d);
        // An empty value resets an earlier one; other variables are ignored.
        assert_eq!(
            parse(&[
                ("DGCOLOR_KERNELS", "convs"),
                ("DGCOLOR_KERNELS", ""),
                ("DGCOLOR_TEST_DEVICE", "cuda"),
                ("PATH", "/bin"),
            ])
            .unwrap(),
            d
        );
        // The first value listed for each variable is its default.
        assert_eq!(d.to_vars().map(|(_, v)| v), ALL_VARS.map(|v| v.values[0]));
    }

    #[test]
    fn every_valid_value_parses() {
        let one = |name, value| parse(&[(name, value)]).unwrap();
        let d = Settings::default();
        for k in KernelChoice::ALL {
            assert_eq!(one("DGCOLOR_KERNELS", k.as_str()).kernels, k);
        }
        assert_eq!(
            one("DGCOLOR_KERNELS", "lowered").kernels,
            KernelChoice::Lowered
        );
        assert!(!one("DGCOLOR_WINOGRAD", "0").winograd);
        assert!(one("DGCOLOR_WINOGRAD", "1").winograd);
        assert!(one("DGCOLOR_CUDA_EVENTS", "1").cuda_events);
        assert!(!one("DGCOLOR_CUDA_EVENTS", "0").cuda_events);
        assert_eq!(one("DGCOLOR_CUDA_POOL", "trim").cuda_pool, PoolPolicy::Trim);
        assert_eq!(one("DGCOLOR_CUDA_POOL", "keep").cuda_pool, PoolPolicy::Keep);
        assert!(!one("DGCOLOR_CUDNN_CACHE", "0").cudnn_cache);
        assert!(one("DGCOLOR_CUDNN_CACHE", "1").cudnn_cache);
        // One variable changes only its own field.
        assert_eq!(
            one("DGCOLOR_CUDA_POOL", "trim"),
            Settings {
                cuda_pool: PoolPolicy::Trim,
                ..d
            }
        );
        // Every variable and value listed is accepted.
        for var in ALL_VARS {
            for v in var.values {
                parse(&[(var.name, v)]).unwrap();
            }
        }
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_valid_values() {
        let err = |name, value| parse(&[(name, value)]).unwrap_err().to_string();
        assert_eq!(
            err("DGCOLOR_KERNELS", "fast"),
            "DGCOLOR_KERNELS=fast: expected one of auto, candle, lowered, convs"
        );
        assert_eq!(
            err("DGCOLOR_KERNELS", "Candle"),
            "DGCOLOR_KERNELS=Candle: expected one of auto, candle, lowered, convs"
        );
        assert_eq!(
            err("DGCOLOR_WINOGRAD", "off"),
            "DGCOLOR_WINOGRAD=off: expected one of 1, 0"
        );
        assert_eq!(
            err("DGCOLOR_CUDA_EVENTS", "true"),
            "DGCOLOR_CUDA_EVENTS=true: expected one of 0, 1"
        );
        assert_eq!(
            err("DGCOLOR_CUDA_POOL", "release"),
            "DGCOLOR_CUDA_POOL=release: expected one of keep, trim"
        );
        assert_eq!(
            err("DGCOLOR_CUDNN_CACHE", " 0"),
            "DGCOLOR_CUDNN_CACHE= 0: expected one of 1, 0"
        );
        let e = parse(&[("DGCOLOR_WINOGRAD", "0"), ("DGCOLOR_CUDA_POOL", "x")]).unwrap_err();
        assert_eq!(
            e,
            SettingsError {
                name: "DGCOLOR_CUDA_POOL",
                value: "x".into(),
                expected: &["keep", "trim"],
            }
        );
    }

    /// Every combination of values: through the variables ([`Settings::to_vars`]) and
    /// through a `[settings]` table of a TOML config, and back.
    #[test]
    fn round_trips_through_variables_and_toml() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Config {
            seed: u64,
            settings: Settings,
        }
        let mut n = 0;
        for kernels in KernelChoice::ALL {
            for cuda_pool in PoolPolicy::ALL {
                for bits in 0..8 {
                    let s = Settings {
                        kernels,
                        winograd: bits & 1 != 0,
                        cuda_events: bits & 2 != 0,
                        cuda_pool,
                        cudnn_cache: bits & 4 != 0,
                    };
                    assert_eq!(Settings::from_vars(s.to_vars()).unwrap(), s);
                    let c = Config {
                        seed: 7,
                        settings: s,
                    };
                    let text = toml::to_string(&c).unwrap();
                    assert_eq!(toml::from_str::<Config>(&text).unwrap(), c, "{text}");
                    n += 1;
                }
            }
        }
        assert_eq!(n, 64);
    }

    #[test]
    fn toml_form_is_stable() {
        #[derive(Serialize, Deserialize)]
        struct Config {
            settings: Settings,
        }
        let s = Settings {
            kernels: KernelChoice::Convs,
            cuda_pool: PoolPolicy::Trim,
            ..Settings::default()
        };
        assert_eq!(
            toml::to_string(&Config { settings: s }).unwrap(),
            "[settings]\nkernels = \"convs\"\nwinograd = true\ncuda_events = false\n\
             cuda_pool = \"trim\"\ncudnn_cache = true\n"
        );
        // Missing fields are the defaults; unknown fields and values are errors.
        let partial: Config = toml::from_str("[settings]\nkernels = \"lowered\"\n").unwrap();
        assert_eq!(
            partial.settings,
            Settings {
                kernels: KernelChoice::Lowered,
                ..Settings::default()
            }
        );
        assert!(toml::from_str::<Config>("[settings]\nkernel = \"auto\"\n").is_err());
        assert!(toml::from_str::<Config>("[settings]\nkernels = \"fast\"\n").is_err());
        assert!(toml::from_str::<Config>("[settings]\ncuda_pool = \"Trim\"\n").is_err());
    }

    const FAST: &str = "DGCOLOR_KERNELS=fast: expected one of auto, candle, lowered, convs";

    /// An invalid value in the environment: `setup_process` returns the error, `settings()`
    /// panics with the same message. Run in a child process (the settings are read once per
    /// process, and changing this process's environment would race with other tests).
    #[test]
    fn invalid_environment_stops_setup_and_settings() {
        let child = "settings::tests::child_with_invalid_environment";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                child,
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DGCOLOR_KERNELS", "fast")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains(&format!("setup_process: {FAST}")),
            "{stdout}"
        );
    }

    #[test]
    #[ignore = "run in a child process by invalid_environment_stops_setup_and_settings"]
    fn child_with_invalid_environment() {
        if std::env::var("DGCOLOR_KERNELS").as_deref() != Ok("fast") {
            return;
        }
        let e = crate::setup_process().unwrap_err();
        println!("setup_process: {e}");
        assert_eq!(e.to_string(), FAST);
        let panic = std::panic::catch_unwind(|| settings().kernels).unwrap_err();
        assert_eq!(
            panic.downcast_ref::<String>().map(String::as_str),
            Some(FAST)
        );
    }

    #[test]
    fn settings_are_read_once() {
        let first = settings();
        assert!(std::ptr::eq(first, settings()));
        assert!(std::ptr::eq(first, init_settings().unwrap()));
    }
}
