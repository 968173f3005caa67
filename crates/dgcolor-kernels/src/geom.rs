use candle_core::{bail, Result};

/// The geometry of one convolution seen from the *image* side: an image `[B, C, H, W]`
/// is convolved by an `M x C x kh x kw` filter into columns `[B, M, OH, OW]`. A transposed
/// convolution is the same geometry read backwards (its output is the image, its input the
/// columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub b: usize,
    /// Image channels (conv input / transposed-conv output).
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Column channels (conv output / transposed-conv input).
    pub m: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeom {
    /// Geometry of `conv2d(x [b, c, h, w], weight [m, c, kh, kw])`.
    pub fn conv(
        (b, c, h, w): (usize, usize, usize, usize),
        (m, kc, kh, kw): (usize, usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        if kc != c {
            bail!("conv2d: input has {c} channels, weight expects {kc} ([{m}, {kc}, {kh}, {kw}])")
        }
        if stride == 0 {
            bail!("conv2d: stride must be positive")
        }
        if h + 2 * padding < kh || w + 2 * padding < kw {
            bail!("conv2d: input {h}x{w} with padding {padding} is smaller than kernel {kh}x{kw}")
        }
        Ok(Self {
            b,
            c,
            h,
            w,
            m,
            oh: (h + 2 * padding - kh) / stride + 1,
            ow: (w + 2 * padding - kw) / stride + 1,
            kh,
            kw,
            stride,
            padding,
        })
    }

    /// Geometry of `conv_transpose2d(x [b, m, ih, iw], weight [m, c, kh, kw])` (no output
    /// padding, dilation 1): the output `[b, c, (ih-1)s - 2p + kh, ...]` is the image.
    pub fn transposed(
        (b, m, ih, iw): (usize, usize, usize, usize),
        (wm, c, kh, kw): (usize, usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        if wm != m {
            bail!("conv_transpose2d: input has {m} channels, weight expects {wm} ([{wm}, {c}, {kh}, {kw}])")
        }
        if stride == 0 || ih == 0 || iw == 0 {
            bail!("conv_transpose2d: empty input or zero stride")
        }
        let full_h = (ih - 1) * stride + kh;
        let full_w = (iw - 1) * stride + kw;
        if full_h <= 2 * padding || full_w <= 2 * padding {
            bail!("conv_transpose2d: padding {padding} leaves no output for input {ih}x{iw}")
        }
        Ok(Self {
            b,
            c,
            h: full_h - 2 * padding,
            w: full_w - 2 * padding,
            m,
            oh: ih,
            ow: iw,
            kh,
            kw,
            stride,
            padding,
        })
    }

    /// Rows of the column matrix: `C * kh * kw`.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of the column matrix: `B * OH * OW`.
    pub fn n(&self) -> usize {
        self.b * self.oh * self.ow
    }

    pub fn image_len(&self) -> usize {
        self.b * self.c * self.h * self.w
    }

    pub fn cols_len(&self) -> usize {
        self.b * self.m * self.oh * self.ow
    }
}
