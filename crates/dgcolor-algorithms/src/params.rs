//! Picking a sub-network's variables out of the shared VarMap by name, so each optimizer
//! owns exactly the parameters its update may change.

use candle_core::Var;
use candle_nn::VarMap;

/// BatchNorm running statistics are variables (so they are checkpointed) but no optimizer
/// may touch them.
pub fn is_trainable(name: &str) -> bool {
    !(name.ends_with("running_mean") || name.ends_with("running_var"))
}

/// Trainable variables whose name starts with `prefix.` and satisfies `keep`, sorted by name.
pub fn select(varmap: &VarMap, prefix: &str, keep: impl Fn(&str) -> bool) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let dotted = format!("{prefix}.");
    let mut vars: Vec<(String, Var)> = data
        .iter()
        .filter(|(name, _)| name.starts_with(&dotted) && is_trainable(name) && keep(name))
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// All trainable variables under `prefix`.
pub fn trainable(varmap: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    select(varmap, prefix, |_| true)
}

/// Only BatchNorm affine parameters (gamma, beta) under `prefix`: what the proposed model's
/// adversarial update may change.
pub fn batch_norm_affine(varmap: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    select(varmap, prefix, |name| name.contains(".bn."))
}
