//! Checkpoints: one safetensors file with every network variable under its own name, the
//! optimizer moments under `optim/...`, and JSON metadata (model config, algorithm, scalar
//! state). Model-only files (for `colorize`) are the same format without the optimizer part.
//! Files are written to a temporary sibling and renamed, so a crash never leaves a torn file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{Device, Error, Result, Tensor};
use candle_nn::VarMap;
use safetensors::View;

pub const FORMAT: &str = "dgcolor-checkpoint-v1";
/// Metadata keys.
pub const META_FORMAT: &str = "format";
pub const META_MODEL: &str = "model_config";
pub const META_ALGORITHM: &str = "algorithm";
pub const META_STATE: &str = "state";

#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Tensor>,
    pub meta: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Adds every variable of `varmap` under its VarMap name.
    pub fn add_varmap(&mut self, varmap: &VarMap) {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        for (name, var) in data.iter() {
            self.tensors.insert(name.clone(), var.as_tensor().clone());
        }
    }

    /// Copies the saved values into `varmap`; every variable must be present with its shape.
    pub fn restore_varmap(&self, varmap: &VarMap) -> Result<()> {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let Some(t) = self.tensors.get(name) else {
                return Err(Error::Msg(format!(
                    "checkpoint: variable `{name}` is missing"
                )));
            };
            if t.shape() != var.shape() {
                return Err(Error::Msg(format!(
                    "checkpoint: variable `{name}` has shape {:?}, the model expects {:?}",
                    t.shape(),
                    var.shape()
                )));
            }
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::Msg(format!("checkpoint: metadata `{key}` is missing")))
    }

    /// Writes the checkpoint atomically. The bytes are a function of the tensors and the
    /// metadata alone (see [`Checkpoint::to_bytes`]), so identical state gives identical files.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
            .map_err(|e| Error::Msg(format!("checkpoint {}: {e}", path.display())))
    }

    /// The safetensors encoding with tensors in name order and the metadata keys sorted.
    /// (`safetensors::serialize` takes the metadata as a `HashMap` and writes it in that
    /// map's random iteration order, so two saves of the same state differed in bytes.)
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut meta = self.meta.clone();
        meta.insert(META_FORMAT.into(), FORMAT.into());
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(&meta).expect("strings"),
        );
        let mut data: Vec<u8> = Vec::new();
        for (name, tensor) in &self.tensors {
            let start = data.len();
            data.extend_from_slice(&tensor.data());
            let info = serde_json::json!({
                "dtype": View::dtype(tensor),
                "shape": View::shape(tensor),
                "data_offsets": [start, data.len()],
            });
            header.insert(name.clone(), info);
        }
        let mut json = serde_json::to_vec(&header).expect("header serialises");
        // The format pads the header with spaces to a multiple of 8 bytes.
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut out = Vec::with_capacity(8 + json.len() + data.len());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&data);
        Ok(out)
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Msg(format!("checkpoint {}: {e}", path.display())))?;
        let not_safetensors = |e| {
            Error::Msg(format!(
                "checkpoint {}: not a safetensors file ({e})",
                path.display()
            ))
        };
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
        if meta.get(META_FORMAT).map(String::as_str) != Some(FORMAT) {
            return Err(Error::Msg(format!(
                "checkpoint {}: missing `{META_FORMAT}: {FORMAT}` metadata (not written by dgcolor?)",
                path.display()
            )));
        }
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| Ok((name, view.load(device)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Self { tensors, meta })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Scalar state every algorithm saves: its update count and each optimizer's step count.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub optim_steps: BTreeMap<String, u64>,
    /// Algorithm-specific scalars (e.g. GroupDRO's q), by name.
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<f64>>,
}

impl Checkpoint {
    /// Saves the optimizers' moments under `optim/<name>` and the scalar state as metadata.
    pub fn add_state(
        &mut self,
        algorithm: &str,
        mut state: TrainState,
        optims: &[(&str, &crate::optim::Adam)],
    ) -> Result<()> {
        for (name, opt) in optims {
            let steps = opt.state(&format!("optim/{name}"), &mut self.tensors);
            state.optim_steps.insert(name.to_string(), steps);
        }
        self.meta.insert(META_ALGORITHM.into(), algorithm.into());
        let json = serde_json::to_string(&state).map_err(Error::wrap)?;
        self.meta.insert(META_STATE.into(), json);
        Ok(())
    }

    /// Inverse of [`Checkpoint::add_state`]; checks the checkpoint belongs to `algorithm`.
    pub fn restore_state(
        &self,
        algorithm: &str,
        optims: &mut [(&str, &mut crate::optim::Adam)],
    ) -> Result<TrainState> {
        let saved = self.meta(META_ALGORITHM)?;
        if saved != algorithm {
            return Err(Error::Msg(format!(
                "checkpoint was written by algorithm `{saved}`, cannot resume `{algorithm}`"
            )));
        }
        let state: TrainState =
            serde_json::from_str(self.meta(META_STATE)?).map_err(Error::wrap)?;
        for (name, opt) in optims.iter_mut() {
            let steps = state.optim_steps.get(*name).copied().unwrap_or(0);
            opt.restore(&format!("optim/{name}"), &self.tensors, steps)?;
        }
        Ok(state)
    }
}
