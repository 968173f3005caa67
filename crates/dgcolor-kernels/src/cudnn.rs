//! Convolutions on CUDA through cuDNN (`--features cudnn`): the forward pass and both
//! gradients of `conv2d` and `conv_transpose2d` are cuDNN's three convolution products on
//! the [`ConvGeom`] image/columns geometry, with no im2col or copies around them.
//!
//! candle 0.11 calls cuDNN only for the forward `conv2d`; its transposed convolution (and so
//! every `conv2d` input gradient) is a one-thread-per-output kernel. The lowered GEMM path
//! ([`crate::lowered`]) avoids that kernel but materialises every tap window, which at the
//! paper's configuration (256 px, nf 64, batch 128) is many times slower than PyTorch and
//! needs more memory than an H200 has in f32 (bench/gpu/h200-2026-11-26/summary.md). cuDNN
//! is what PyTorch uses, so this path does the same arithmetic as the reference at the same
//! cost.
//!
//! | op                         | cuDNN product (image, filter, columns)      |
//! |----------------------------|---------------------------------------------|
//! | conv forward               | forward: image -> columns                   |
//! | conv input gradient        | backward data: columns -> image             |
//! | conv weight gradient       | backward filter: (image, columns) -> filter |
//! | transposed conv forward    | backward data                               |
//! | transposed conv input grad | forward                                     |
//! | transposed conv weight grad| backward filter, image = output gradient    |
//!
//! Precision: `F32` restricts cuDNN to FMA kernels (strict f32, like PyTorch with
//! `allow_tf32 = False`), `Tf32` lets it use tensor cores on f32 data (PyTorch's default for
//! convolutions), `Bf16` runs the product on bfloat16 operands with f32 accumulation (the
//! callers cast around it, as autocast does).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::cudnn::{
    sys, ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, CudnnDataType,
    FilterDescriptor, TensorDescriptor,
};
use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView, DeviceRepr};
use candle_core::cuda::{CudaDType, DeviceId};
use candle_core::{
    bail, CpuStorage, CudaDevice, CudaStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape,
    Tensor, WithDType,
};

use crate::activation::Act;
use crate::conv::dims4;
use crate::geom::ConvGeom;
use crate::lowered::Precision;

thread_local! {
    // cuDNN handles are neither Send nor Sync: one per thread and device (as candle does).
    static HANDLES: RefCell<HashMap<DeviceId, Arc<Cudnn>>> = RefCell::new(HashMap::new());
    // The algorithm that ran for each product (kind, geometry, precision, bf16 data, device),
    // so that cuDNN's heuristic query, a host-side cost paid on every call otherwise, runs once
    // per layer shape (PyTorch keeps such a plan cache too). `DGCOLOR_CUDNN_CACHE=0`
    // (`Settings::cudnn_cache`) asks the heuristic every call (for before/after measurements).
    static ALGOS: RefCell<HashMap<AlgoKey, Algo>> = RefCell::new(HashMap::new());
}

type AlgoKey = (DeviceId, Kind, ConvGeom, Precision, bool);

#[derive(Clone, Copy)]
enum Algo {
    Fwd(sys::cudnnConvolutionFwdAlgo_t),
    Data(sys::cudnnConvolutionBwdDataAlgo_t),
    Filter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

/// One of cuDNN's three algorithm enums, as stored in the cache, with the implicit-GEMM
/// algorithm every math type and size supports as its fallback.
trait CachedAlgo: Copy + std::fmt::Debug {
    const FALLBACK: Self;
    fn into_algo(self) -> Algo;
    fn from_algo(a: Algo) -> Option<Self>;
}

macro_rules! cached_algo {
    ($t:ty, $variant:ident, $fallback:ident) => {
        impl CachedAlgo for $t {
            const FALLBACK: Self = <$t>::$fallback;
            fn into_algo(self) -> Algo {
                Algo::$variant(self)
            }
            fn from_algo(a: Algo) -> Option<Self> {
                match a {
                    Algo::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}
cached_algo!(
    sys::cudnnConvolutionFwdAlgo_t,
    Fwd,
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
);
cached_algo!(
    sys::cudnnConvolutionBwdDataAlgo_t,
    Data,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
);
cached_algo!(
    sys::cudnnConvolutionBwdFilterAlgo_t,
    Filter,
    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1
);

fn cached_algo<A: CachedAlgo>(key: &AlgoKey) -> Option<A> {
    if !crate::settings().cudnn_cache {
        return None;
    }
    ALGOS.with(|a| a.borrow().get(key).copied().and_then(A::from_algo))
}

fn handle(dev: &CudaDevice) -> Result<Arc<Cudnn>> {
    HANDLES.with(|h| {
        if let Some(c) = h.borrow().get(&dev.id()) {
            return Ok(c.clone());
        }
        let c = Cudnn::new(dev.cuda_stream()).map_err(wrap)?;
        h.borrow_mut().insert(dev.id(), c.clone());
        Ok(c)
    })
}

fn wrap(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("cudnn: {e}"))
}

/// `conv2d` (`transposed: false`) or `conv_transpose2d` (`true`), PyTorch semantics, on
/// cuDNN; differentiable in all three operands. `precision` is the caller's (thread-local)
/// autocast setting, carried into the backward pass. With `slope`, LeakyReLU(slope) of that
/// (in place inside the op where it adds the bias in place, see [`ConvBias`]).
pub(crate) fn conv(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding): (usize, usize),
    transposed: bool,
    precision: Precision,
    slope: Option<f64>,
) -> Result<Tensor> {
    let dt = match precision {
        Precision::Bf16 => DType::BF16,
        Precision::F32 | Precision::Tf32 => DType::F32,
    };
    let op = Conv {
        stride,
        padding,
        transposed,
        precision,
    };
    let f32s = [x, weight].iter().all(|t| t.dtype() == DType::F32);
    if let Some(b) = bias.filter(|b| f32s && dt == DType::F32 && b.dtype() == DType::F32) {
        // One op and one retained tensor per layer (the bias added in place), not the
        // product and its biased copy.
        return x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &b.flatten_all()?.contiguous()?,
            ConvBias {
                conv: op,
                slope: slope.map(|s| s as f32),
            },
        );
    }
    let y = x
        .to_dtype(dt)?
        .contiguous()?
        .apply_op2(&weight.to_dtype(dt)?.contiguous()?, op)?
        .to_dtype(x.dtype())?;
    let y = match bias {
        // [B, C_out, H, W] + [C_out]
        Some(b) if y.dtype() == DType::F32 && b.dtype() == DType::F32 => {
            crate::cuda::bias_add(&y, b)?
        }
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?,
        None => y,
    };
    match slope {
        Some(slope) => crate::leaky_relu(&y, slope),
        None => Ok(y),
    }
}

type CpuResult = Result<(CpuStorage, Shape)>;

/// The ops here are built only for CUDA tensors (see [`crate::conv`]'s back-end choice).
fn not_on_cpu(op: &str) -> CpuResult {
    bail!("{op}: cuDNN op called on CPU tensors")
}

/// The differentiable op: (x, weight) -> y, no bias.
#[derive(Clone, Copy)]
struct Conv {
    stride: usize,
    padding: usize,
    transposed: bool,
    precision: Precision,
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        if self.transposed {
            "dgcolor-cudnn-conv-transpose2d"
        } else {
            "dgcolor-cudnn-conv2d"
        }
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> CpuResult {
        not_on_cpu(self.name())
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (xd, wd) = (dims4(xl, self.name())?, dims4(wl, self.name())?);
        let product = if self.transposed {
            let g = ConvGeom::transposed(xd, wd, self.stride, self.padding)?;
            Product {
                kind: Kind::BackwardData,
                g,
                precision: self.precision,
            }
        } else {
            let g = ConvGeom::conv(xd, wd, self.stride, self.padding)?;
            Product {
                kind: Kind::Forward,
                g,
                precision: self.precision,
            }
        };
        product.cuda_fwd(x, xl, w, wl)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (xd, wd) = (x.dims4()?, w.dims4()?);
        let g = if self.transposed {
            ConvGeom::transposed(xd, wd, self.stride, self.padding)?
        } else {
            ConvGeom::conv(xd, wd, self.stride, self.padding)?
        };
        let product = |kind| Product {
            kind,
            g,
            precision: self.precision,
        };
        // As on the CPU: no input gradient for an input that records no graph. A conv's input
        // gradient is backward data; a transposed conv's is the forward conv of its gradient.
        let dx = x
            .track_op()
            .then(|| {
                let kind = if self.transposed {
                    Kind::Forward
                } else {
                    Kind::BackwardData
                };
                grad.apply_op2_no_bwd(w, &product(kind))
            })
            .transpose()?;
        // Likewise no filter gradient for frozen weights. Backward filter pairs the image side
        // with the columns side.
        let (image, cols) = if self.transposed {
            (&grad, x)
        } else {
            (x, &grad)
        };
        let dw = w
            .track_op()
            .then(|| image.apply_op2_no_bwd(cols, &product(Kind::BackwardFilter)))
            .transpose()?;
        Ok((dx, dw))
    }
}

/// `(x, weight, bias) -> y`: [`Conv`] with the bias added in place to the product's fresh
/// output (f32 operands), then LeakyReLU(`slope`) in place if set. Candle's graph keeps every
/// op's operands, so a separate bias op would keep the unbiased product alive until backward
/// beside its biased copy, and a separate activation the biased one: one more
/// activation-sized tensor per layer each.
struct ConvBias {
    conv: Conv,
    slope: Option<f32>,
}

impl CustomOp3 for ConvBias {
    fn name(&self) -> &'static str {
        if self.conv.transposed {
            "dgcolor-cudnn-conv-transpose2d-bias"
        } else {
            "dgcolor-cudnn-conv2d-bias"
        }
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> CpuResult {
        not_on_cpu(self.name())
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (mut y, shape) = self.conv.cuda_fwd(x, xl, w, wl)?;
        crate::cuda::bias_add_inplace(&mut y, &shape, (b, bl), self.slope)?;
        Ok((y, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The gradient at the pre-activation output, masked with the op's output.
        let act = self.slope.map_or(Act::Identity, Act::LeakyRelu);
        let grad = &act.input_grad(res, grad)?;
        let (dx, dw) = self.conv.bwd(x, w, res, grad)?;
        let db = b
            .track_op()
            .then(|| crate::cuda::bias_grad(grad, b))
            .transpose()?;
        Ok((dx, dw, db))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// (image, filter) -> columns.
    Forward,
    /// (columns, filter) -> image.
    BackwardData,
    /// (image, columns) -> filter.
    BackwardFilter,
}

/// One cuDNN convolution product on a fixed geometry, as a no-backward op.
struct Product {
    kind: Kind,
    g: ConvGeom,
    precision: Precision,
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Forward => "dgcolor-cudnn-forward",
            Kind::BackwardData => "dgcolor-cudnn-backward-data",
            Kind::BackwardFilter => "dgcolor-cudnn-backward-filter",
        }
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> CpuResult {
        not_on_cpu(self.name())
    }

    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        al: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let g = &self.g;
        let (image, filter, cols) = (
            [g.b, g.c, g.h, g.w],
            [g.m, g.c, g.kh, g.kw],
            [g.b, g.m, g.oh, g.ow],
        );
        let (want_a, want_b, out) = match self.kind {
            Kind::Forward => (image, filter, cols),
            Kind::BackwardData => (cols, filter, image),
            Kind::BackwardFilter => (image, cols, filter),
        };
        for (what, l, want) in [("first", al, want_a), ("second", bl, want_b)] {
            if l.shape().dims() != want || !l.is_contiguous() {
                bail!(
                    "{}: {what} operand is {:?} (contiguous: {}), expected contiguous {want:?} for {g:?}",
                    self.name(),
                    l.shape(),
                    l.is_contiguous()
                )
            }
        }
        let storage = match (a.dtype(), b.dtype()) {
            (DType::F32, DType::F32) => self.run::<f32>(a, al, b, bl)?,
            (DType::BF16, DType::BF16) => self.run::<half::bf16>(a, al, b, bl)?,
            (da, db) => bail!("{}: unsupported dtypes {da:?}, {db:?}", self.name()),
        };
        Ok((storage, Shape::from_dims(&out)))
    }
}

impl Product {
    fn run<T>(
        &self,
        a: &CudaStorage,
        al: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<CudaStorage>
    where
        T: CudnnDataType + DeviceRepr + CudaDType + WithDType,
    {
        let g = &self.g;
        let dev = &a.device;
        let cudnn = handle(dev)?;
        let d = Descriptors::<T>::new(&cudnn, g, self.precision)?;
        let a = view::<T>(a, al)?;
        let b = view::<T>(b, bl)?;
        let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));
        let key = (
            dev.id(),
            self.kind,
            *g,
            self.precision,
            T::DTYPE == DType::BF16,
        );
        let out = match self.kind {
            Kind::Forward => {
                let op = ConvForward {
                    conv: &d.conv,
                    x: &d.image,
                    w: &d.filter,
                    y: &d.cols,
                };
                // SAFETY: every operand was checked against the descriptors' shapes (contiguous
                // NCHW, dtype T) and `out` has the columns' size.
                let mut out = unsafe { dev.alloc::<T>(g.cols_len()) }?;
                self.launch(
                    &key,
                    || op.pick_algorithm(),
                    |algo| {
                        let mut ws = workspace(dev, op.get_workspace_size(algo).map_err(wrap)?)?;
                        unsafe { op.launch(algo, ws.as_mut(), (one, zero), &a, &b, &mut out) }
                            .map_err(wrap)
                    },
                )?;
                out
            }
            Kind::BackwardData => {
                let op = ConvBackwardData {
                    conv: &d.conv,
                    dx: &d.image,
                    w: &d.filter,
                    dy: &d.cols,
                };
                // SAFETY: as above; `out` has the image's size.
                let mut out = unsafe { dev.alloc::<T>(g.image_len()) }?;
                self.launch(
                    &key,
                    || op.pick_algorithm(),
                    |algo| {
                        let mut ws = workspace(dev, op.get_workspace_size(algo).map_err(wrap)?)?;
                        unsafe { op.launch(algo, ws.as_mut(), (one, zero), &mut out, &b, &a) }
                            .map_err(wrap)
                    },
                )?;
                out
            }
            Kind::BackwardFilter => {
                let op = ConvBackwardFilter {
                    conv: &d.conv,
                    x: &d.image,
                    dw: &d.filter,
                    dy: &d.cols,
                };
                // SAFETY: as above; `out` has the filter's size.
                let mut out = unsafe { dev.alloc::<T>(g.m * g.k()) }?;
                self.launch(
                    &key,
                    || op.pick_algorithm(),
                    |algo| {
                        let mut ws = workspace(dev, op.get_workspace_size(algo).map_err(wrap)?)?;
                        unsafe { op.launch(algo, ws.as_mut(), (one, zero), &a, &mut out, &b) }
                            .map_err(wrap)
                    },
                )?;
                out
            }
        };
        Ok(T::wrap_cuda_slice(out, dev.clone()))
    }

    /// Runs `launch` with the algorithm cached for `key`, or else with the heuristic's pick
    /// and, if cuDNN refuses that (an algorithm the heuristic ranks first may lack a kernel
    /// for the requested math type), with the fallback; the one that ran is cached.
    fn launch<A: CachedAlgo>(
        &self,
        key: &AlgoKey,
        pick: impl FnOnce() -> std::result::Result<A, candle_core::cuda::cudarc::cudnn::CudnnError>,
        mut launch: impl FnMut(A) -> Result<()>,
    ) -> Result<()> {
        if let Some(algo) = cached_algo::<A>(key) {
            return launch(algo);
        }
        let picked = pick().map_err(wrap)?;
        let ran = match launch(picked) {
            Ok(()) => picked,
            Err(first) => {
                launch(A::FALLBACK).map_err(|second| {
                    candle_core::Error::Msg(format!(
                        "{} ({:?}) on {:?}: algorithm {picked:?} failed ({first}), and the fallback {:?} too ({second})",
                        self.name(),
                        self.precision,
                        self.g,
                        A::FALLBACK
                    ))
                })?;
                A::FALLBACK
            }
        };
        ALGOS.with(|a| a.borrow_mut().insert(*key, ran.into_algo()));
        Ok(())
    }
}

/// The four cuDNN descriptors of one geometry, NCHW.
struct Descriptors<T: CudnnDataType> {
    conv: ConvDescriptor<f32>,
    image: TensorDescriptor<T>,
    filter: FilterDescriptor<T>,
    cols: TensorDescriptor<T>,
}

impl<T: CudnnDataType> Descriptors<T> {
    fn new(cudnn: &Arc<Cudnn>, g: &ConvGeom, precision: Precision) -> Result<Self> {
        let i = |v: usize| v as i32;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        // f32 accumulation whatever T is (bf16 data: cuDNN's "pseudo bfloat16" configuration).
        let mut conv = cudnn
            .create_conv2d::<f32>(
                [i(g.padding); 2],
                [i(g.stride); 2],
                [1, 1],
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            )
            .map_err(wrap)?;
        let math = match precision {
            Precision::F32 => sys::cudnnMathType_t::CUDNN_FMA_MATH,
            Precision::Tf32 | Precision::Bf16 => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
        };
        conv.set_math_type(math).map_err(wrap)?;
        Ok(Self {
            conv,
            image: cudnn
                .create_4d_tensor::<T>(nchw, [i(g.b), i(g.c), i(g.h), i(g.w)])
                .map_err(wrap)?,
            filter: cudnn
                .create_4d_filter::<T>(nchw, [i(g.m), i(g.c), i(g.kh), i(g.kw)])
                .map_err(wrap)?,
            cols: cudnn
                .create_4d_tensor::<T>(nchw, [i(g.b), i(g.m), i(g.oh), i(g.ow)])
                .map_err(wrap)?,
        })
    }
}

fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    Ok(s.as_cuda_slice::<T>()?.slice(l.start_offset()..))
}

/// cuDNN's scratch space for one call (none when the algorithm needs none). candle's
/// allocations are stream-ordered, so this is cheap.
fn workspace(dev: &CudaDevice, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
    if bytes == 0 {
        return Ok(None);
    }
    // SAFETY: cuDNN only writes its workspace before reading it.
    Ok(Some(unsafe { dev.alloc::<u8>(bytes) }?))
}
