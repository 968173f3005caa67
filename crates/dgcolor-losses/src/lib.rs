//! Losses shared by the algorithms: the pix2pix task loss (L1 + least-squares GAN, Mao et
//! al. 2017) and classification cross-entropy; the domain-alignment penalties of the DG
//! baselines (CORAL, MMD, SagNet's uniform target) live in [`alignment`].

use candle_core::{bail, Result, Tensor};

pub mod alignment;
pub use alignment::{
    coral, gaussian_kernel, mmd, pairwise_mean, uniform_cross_entropy, MMD_GAMMAS,
};

/// Weight of L1 in the pix2pix task loss (the reference's `100 * loss_l1`).
pub const L1_WEIGHT: f64 = 100.0;

/// Mean absolute error. One op with its backward where the fused ops run
/// ([`dgcolor_kernels::l1_loss`]; at an exact tie its derivative is 0 as in PyTorch, where
/// candle's `abs` gives 1), candle ops otherwise.
pub fn l1(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("l1", pred, target)?;
    if dgcolor_kernels::fused_on(&[pred, target]) {
        return dgcolor_kernels::l1_loss(pred, target);
    }
    (pred - target)?.abs()?.mean_all()
}

/// Mean squared error.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("mse", pred, target)?;
    (pred - target)?.sqr()?.mean_all()
}

/// Least-squares GAN loss: mean squared distance of the scores to a constant label
/// (1 = real, 0 = fake). One op with its backward where the fused ops run
/// ([`dgcolor_kernels::squared_loss_to`]), candle ops otherwise.
pub fn lsgan(scores: &Tensor, label: f64) -> Result<Tensor> {
    if dgcolor_kernels::fused_on(&[scores]) {
        return dgcolor_kernels::squared_loss_to(scores, label as f32);
    }
    (scores - label)?.sqr()?.mean_all()
}

/// Mean cross-entropy of logits `[B, C]` against class ids `[B]` (u32).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (b, _) = logits.dims2()?;
    if labels.dims() != [b] {
        bail!(
            "cross_entropy: labels {:?} do not match logits {:?}",
            labels.shape(),
            logits.shape()
        )
    }
    candle_nn::loss::cross_entropy(logits, labels)
}

/// `100 * L1(fake, real) + LSGAN(scores of fake, 1)`: what every generator minimises.
pub fn pix2pix_generator(
    fake_ab: &Tensor,
    real_ab: &Tensor,
    fake_scores: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let l1 = l1(fake_ab, real_ab)?;
    let gan = lsgan(fake_scores, 1.0)?;
    let total = ((&l1 * L1_WEIGHT)? + &gan)?;
    Ok((total, l1, gan))
}

/// `0.5 * (LSGAN(fake, 0) + LSGAN(real, 1))`: the colour discriminator's loss.
pub fn pix2pix_discriminator(fake_scores: &Tensor, real_scores: &Tensor) -> Result<Tensor> {
    (lsgan(fake_scores, 0.0)? + lsgan(real_scores, 1.0)?)? * 0.5
}

fn same_shape(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        bail!(
            "{op}: prediction {:?} and target {:?} differ in shape",
            a.shape(),
            b.shape()
        )
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn values_match_hand_computation() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::new(&[1.0f32, -2.0, 3.0, 0.5], &dev)?;
        let b = Tensor::new(&[0.0f32, 0.0, 1.0, 0.5], &dev)?;
        assert!((l1(&a, &b)?.to_scalar::<f32>()? - 5.0 / 4.0).abs() < 1e-6);
        assert!((mse(&a, &b)?.to_scalar::<f32>()? - 9.0 / 4.0).abs() < 1e-6);
        // (1-1)^2, (-2-1)^2, (3-1)^2, (0.5-1)^2 -> (0 + 9 + 4 + 0.25) / 4
        assert!((lsgan(&a, 1.0)?.to_scalar::<f32>()? - 13.25 / 4.0).abs() < 1e-6);
        // logits [0, ln 3] for label 1: -log(3/4)
        let logits = Tensor::new(&[[0.0f32, 3f32.ln()]], &dev)?;
        let labels = Tensor::new(&[1u32], &dev)?;
        let ce = cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
        assert!((ce - (4.0f32 / 3.0).ln()).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn shape_mismatch_is_named() {
        let dev = Device::Cpu;
        let a = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap();
        let err = l1(&a, &b).unwrap_err().to_string();
        assert!(err.contains("l1") && err.contains("[2, 3]"), "{err}");
    }
}
