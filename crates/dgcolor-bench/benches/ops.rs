//! Criterion micro-benchmarks, one group per op: convolution and transposed convolution
//! (our kernels vs candle's, forward and forward+backward), BatchNorm (train forward and
//! forward+backward), AdaIN, Lab conversion and image decoding. Every measured closure ends
//! by reading a value back, which on the CPU is the device sync.
//!
//!     cargo bench -p dgcolor-bench --bench ops            # all
//!     cargo bench -p dgcolor-bench --bench ops -- conv2d  # one group

use std::hint::black_box;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dgcolor_bench::uniform;
use dgcolor_kernels::{conv2d, conv2d_reference, conv_transpose2d, conv_transpose2d_reference};

type ConvFn = fn(&Tensor, &Tensor, Option<&Tensor>, usize, usize) -> candle_core::Result<Tensor>;

fn sync(t: &Tensor) {
    black_box(
        t.flatten_all()
            .unwrap()
            .get(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
}

/// Layers of the 256 px / nf 64 U-Net at batch 4: (name, input dims, weight dims).
const CONV_LAYERS: &[(&str, [usize; 4], [usize; 4])] = &[
    ("down2 64->128 @128", [4, 64, 128, 128], [128, 64, 4, 4]),
    ("down4 256->512 @32", [4, 256, 32, 32], [512, 256, 4, 4]),
    ("down7 512->512 @4", [4, 512, 4, 4], [512, 512, 4, 4]),
];
const UPCONV_LAYERS: &[(&str, [usize; 4], [usize; 4])] = &[
    ("up6 1024->256 @16", [4, 1024, 16, 16], [1024, 256, 4, 4]),
    ("up7 512->64 @64", [4, 512, 64, 64], [512, 64, 4, 4]),
    ("up8 128->2 @128", [4, 128, 128, 128], [128, 2, 4, 4]),
];

fn conv_group(
    c: &mut Criterion,
    group: &str,
    layers: &[(&str, [usize; 4], [usize; 4])],
    fast: ConvFn,
    reference: ConvFn,
    bias_dim: usize,
) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for &(name, xd, wd) in layers {
        let x = uniform(&xd, 1, &dev).unwrap();
        let w = (uniform(&wd, 2, &dev).unwrap() * 0.02).unwrap();
        let b = uniform(&[wd[bias_dim]], 3, &dev).unwrap();
        for (imp, f) in [("dgcolor", fast), ("candle", reference)] {
            g.bench_function(BenchmarkId::new(format!("{imp}/forward"), name), |bench| {
                bench.iter(|| sync(&f(&x, &w, Some(&b), 2, 1).unwrap()))
            });
            let xv = Var::from_tensor(&x).unwrap();
            let wv = Var::from_tensor(&w).unwrap();
            let bv = Var::from_tensor(&b).unwrap();
            g.bench_function(
                BenchmarkId::new(format!("{imp}/forward+backward"), name),
                |bench| {
                    bench.iter(|| {
                        let y = f(&xv, &wv, Some(&bv), 2, 1).unwrap();
                        let grads = y.sum_all().unwrap().backward().unwrap();
                        sync(grads.get(&xv).unwrap());
                    })
                },
            );
        }
    }
    g.finish();
}

fn bench_conv2d(c: &mut Criterion) {
    conv_group(c, "conv2d", CONV_LAYERS, conv2d, conv2d_reference, 0);
}

fn bench_conv_transpose2d(c: &mut Criterion) {
    conv_group(
        c,
        "conv_transpose2d",
        UPCONV_LAYERS,
        conv_transpose2d,
        conv_transpose2d_reference,
        1,
    );
}

fn bench_batch_norm(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("batch_norm");
    g.sample_size(10);
    for (name, dims) in [
        ("64ch @128 b4", [4usize, 64, 128, 128]),
        ("256ch @32 b16", [16, 256, 32, 32]),
    ] {
        let varmap = VarMap::new();
        let bn = dgcolor_models::batch_norm2d(
            dims[1],
            VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        )
        .unwrap();
        let x = uniform(&dims, 4, &dev).unwrap();
        g.bench_function(BenchmarkId::new("train forward", name), |b| {
            b.iter(|| sync(&bn.forward_t(&x, true).unwrap()))
        });
        let xv = Var::from_tensor(&x).unwrap();
        g.bench_function(BenchmarkId::new("train forward+backward", name), |b| {
            b.iter(|| {
                let y = bn.forward_t(&xv, true).unwrap();
                sync(y.sum_all().unwrap().backward().unwrap().get(&xv).unwrap());
            })
        });
    }
    g.finish();
}

fn bench_adain(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("adain");
    g.sample_size(20);
    for (name, dims) in [
        ("256ch @32 b4", [4usize, 256, 32, 32]),
        ("128ch @8 b16", [16, 128, 8, 8]),
    ] {
        let z = uniform(&dims, 5, &dev).unwrap();
        let o = uniform(&dims, 6, &dev).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| sync(&dgcolor_models::adain(&z, &o).unwrap()))
        });
    }
    g.finish();
}

fn bench_lab(c: &mut Criterion) {
    let mut g = c.benchmark_group("lab");
    for side in [64usize, 256] {
        let rgb: Vec<u8> = (0..side * side * 3).map(|i| (i * 37 % 251) as u8).collect();
        g.bench_function(BenchmarkId::new("rgb8_to_lab_planes", side), |b| {
            b.iter(|| black_box(dgcolor_data::rgb8_to_lab_planes(black_box(&rgb))))
        });
    }
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/pacs_mini/photo"
    ));
    let Some(file) = std::fs::read_dir(dir)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path()).filter(|p| p.is_dir())))
        .and_then(|cls| {
            std::fs::read_dir(cls)
                .ok()?
                .find_map(|e| e.ok().map(|e| e.path()))
        })
    else {
        eprintln!("decode: no images under {}, skipped", dir.display());
        return;
    };
    let pre = dgcolor_data::Preprocess {
        size: 256,
        filter: dgcolor_data::ResizeFilter::Nearest,
    };
    let mut g = c.benchmark_group("decode");
    g.bench_function("decode_rgb8 (227x227 JPEG)", |b| {
        b.iter(|| black_box(dgcolor_data::decode_rgb8(&file).unwrap()))
    });
    g.bench_function("load_lab (decode + resize 256 + Lab)", |b| {
        b.iter(|| black_box(dgcolor_data::load_lab(&file, &pre).unwrap()))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_conv2d,
    bench_conv_transpose2d,
    bench_batch_norm,
    bench_adain,
    bench_lab,
    bench_decode
);
criterion_main!(benches);
