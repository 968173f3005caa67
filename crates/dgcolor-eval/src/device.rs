use candle_core::Device;

use crate::error::{EvalError, Result};

/// `cpu`, `cuda` or `cuda:N`. CUDA needs a build with `--features cuda`.
pub fn parse_device(spec: &str) -> Result<Device> {
    let bad = || EvalError::Config(format!("--device `{spec}`: expected cpu, cuda or cuda:N"));
    match spec {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map_err(|_| bad())?,
                None => 0,
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(EvalError::Config(format!(
                    "--device {spec}: this binary was built without CUDA support (rebuild with --features cuda)"
                )));
            }
            // candle's error carries a backtrace; its first line is the CUDA status.
            dgcolor_kernels::cuda_device(ordinal).map_err(|e| {
                let status = e.to_string().lines().next().unwrap_or_default().to_string();
                EvalError::Config(format!(
                    "--device {spec}: cannot open CUDA device {ordinal} ({status}); is there an NVIDIA GPU and driver?"
                ))
            })
        }
        _ => Err(bad()),
    }
}
