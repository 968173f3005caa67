//! Adam with PyTorch's update rule (Kingma & Ba 2015; `torch.optim.Adam`, no weight decay).
//! candle-nn's AdamW keeps its moments private, so they could not be checkpointed; a resumed
//! run must continue with the same moments to end where an uninterrupted one ends.

use std::collections::BTreeMap;

use candle_core::{backprop::GradStore, bail, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamConfig {
    /// The reference's optimizer for every network: lr 1e-3, betas (0.5, 0.999).
    pub fn reference(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

/// One optimizer over a named set of variables (one sub-network, or its BatchNorm affine
/// parameters for the adversarial update).
pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
    steps: u64,
}

impl Adam {
    /// `vars` are (name, variable) pairs; names key the state in checkpoints.
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        if vars.is_empty() {
            bail!("adam: no variables to optimise")
        }
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let zeros = var.zeros_like()?;
                Ok(Slot {
                    m: Var::from_tensor(&zeros)?,
                    v: Var::from_tensor(&zeros.copy()?)?,
                    name,
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            slots,
            steps: 0,
        })
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn var_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// One update of every variable that has a gradient (PyTorch skips parameters whose
    /// gradient is `None`; so do we, which matters for unused BatchNorms).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.cfg;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2 = 1.0 - beta2.powi(t);
        let step_size = lr / bias1;
        for slot in &self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let coeffs = dgcolor_kernels::AdamCoeffs {
                beta1,
                beta2,
                eps,
                step_size,
                bias2,
            };
            let (var, m, v) = (slot.var.as_tensor(), slot.m.as_tensor(), slot.v.as_tensor());
            if dgcolor_kernels::adam_inplace(var, m, v, g, coeffs)? {
                continue;
            }
            // Off the CPU: the same arithmetic as candle ops.
            let m = ((slot.m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((slot.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            // p -= lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps), PyTorch's exact form.
            let denom = ((v.sqrt()? / bias2.sqrt())? + eps)?;
            let update = ((&m / denom)? * step_size)?;
            slot.var.set(&(slot.var.as_tensor() - update)?)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
        }
        Ok(())
    }

    /// Moments under `{prefix}.m.{var}` and `{prefix}.v.{var}`, and the step count.
    pub fn state(&self, prefix: &str, out: &mut BTreeMap<String, Tensor>) -> u64 {
        for s in &self.slots {
            out.insert(format!("{prefix}.m.{}", s.name), s.m.as_tensor().clone());
            out.insert(format!("{prefix}.v.{}", s.name), s.v.as_tensor().clone());
        }
        self.steps
    }

    pub fn restore(
        &mut self,
        prefix: &str,
        tensors: &BTreeMap<String, Tensor>,
        steps: u64,
    ) -> Result<()> {
        for s in &self.slots {
            for (kind, var) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("{prefix}.{kind}.{}", s.name);
                let Some(t) = tensors.get(&key) else {
                    bail!("checkpoint: optimizer state `{key}` is missing")
                };
                var.set(&t.to_device(var.device())?)?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}
