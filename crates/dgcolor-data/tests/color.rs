//! sRGB <-> Lab against scikit-image 0.26, and the RGB8 round trip.

use dgcolor_data::{
    lab_planes_to_rgb8, lab_to_srgb, rgb8_to_lab_planes, scale_ab, scale_l, srgb_to_lab,
    unscale_ab, unscale_l,
};

// Generated with scikit-image 0.26.0, numpy 2.4:
// ```python
// import numpy as np
// from skimage.color import rgb2lab, lab2rgb
// rng = np.random.default_rng(0)
// rgb = np.array([[0, 0, 0], [255, 255, 255], [128, 128, 128], [1, 1, 1], [10, 10, 10],
//                 [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
//                 [255, 0, 255]] + rng.integers(0, 256, (9, 3)).tolist(), dtype=np.uint8)
// lab = rgb2lab(rgb[None].astype(np.float64) / 255.0)[0]
// print("const RGB2LAB: [([u8; 3], [f64; 3]); %d] = [" % len(rgb))
// for c, l in zip(rgb, lab):
//     print("    ([%d, %d, %d], [%.6f, %.6f, %.6f])," % (*c, *l))
// print("];")
// labs = np.array([[50, 0, 0], [0, 0, 0], [100, 0, 0], [75, 20, -30], [30, 60, 40],
//                  [90, -80, 90],    # out of gamut: clipped
//                  [20, 100, -120],  # out of gamut
//                  [60, 0, 150],     # negative Z, clipped to 0 first
//                  [5, 3, -2], [100, 50, 50]], dtype=np.float64)
// out = lab2rgb(labs[None])[0]
// print("const LAB2RGB: [([f32; 3], [f64; 3]); %d] = [" % len(labs))
// for l, c in zip(labs, out):
//     print("    ([%.1f, %.1f, %.1f], [%.6f, %.6f, %.6f])," % (*l, *c))
// print("];")
// ```
const RGB2LAB: [([u8; 3], [f64; 3]); 20] = [
    ([0, 0, 0], [0.000000, 0.000000, 0.000000]),
    ([255, 255, 255], [100.000000, -0.002455, 0.004653]),
    ([128, 128, 128], [53.585013, -0.001473, 0.002791]),
    ([1, 1, 1], [0.274173, -0.000017, 0.000033]),
    ([10, 10, 10], [2.741735, -0.000174, 0.000330]),
    ([255, 0, 0], [53.240588, 80.092308, 67.202751]),
    ([0, 255, 0], [87.735099, -86.183030, 83.179703]),
    ([0, 0, 255], [32.295673, 79.185591, -107.857300]),
    ([255, 255, 0], [97.139507, -21.554681, 94.478122]),
    ([0, 255, 255], [91.113301, -48.090596, -14.126330]),
    ([255, 0, 255], [60.323507, 98.233054, -60.821015]),
    ([217, 163, 130], [71.255702, 15.728668, 24.916465]),
    ([69, 78, 10], [31.198215, -13.220553, 35.529808]),
    ([19, 4, 44], [3.677234, 15.546100, -22.308489]),
    ([208, 166, 233], [73.911274, 27.467415, -27.821406]),
    ([128, 155, 248], [65.597741, 15.200723, -49.427551]),
    ([186, 161, 139], [67.868648, 5.720444, 14.849956]),
    ([143, 239, 71], [86.019387, -54.920184, 68.610936]),
    ([208, 171, 0], [71.240659, 0.452801, 73.997887]),
    ([100, 219, 141], [79.209563, -50.670843, 28.468618]),
];
const LAB2RGB: [([f32; 3], [f64; 3]); 10] = [
    ([50.0, 0.0, 0.0], [0.466328, 0.466324, 0.466344]),
    ([0.0, 0.0, 0.0], [0.000000, 0.000000, 0.000000]),
    ([100.0, 0.0, 0.0], [1.000000, 0.999995, 1.000000]),
    ([75.0, 20.0, -30.0], [0.761825, 0.684545, 0.940807]),
    ([30.0, 60.0, 40.0], [0.605132, 0.000000, 0.041730]),
    ([90.0, -80.0, 90.0], [0.335617, 1.000000, 0.000000]),
    ([20.0, 100.0, -120.0], [0.000000, 0.000000, 0.940264]),
    ([60.0, 0.0, 150.0], [0.696846, 0.554222, 0.000000]),
    ([5.0, 3.0, -2.0], [0.080133, 0.059875, 0.078903]),
    ([100.0, 50.0, 50.0], [1.000000, 0.837248, 0.627855]),
];

const TOL: f64 = 1e-3;

#[test]
fn rgb_to_lab_matches_skimage() {
    for (rgb, want) in RGB2LAB {
        let got = srgb_to_lab(rgb.map(|c| c as f32 / 255.0));
        for ch in 0..3 {
            assert!(
                (got[ch] as f64 - want[ch]).abs() < TOL,
                "{rgb:?}: got {got:?}, skimage {want:?}"
            );
        }
        // The plane form (exact 8-bit levels) agrees too.
        let (l, ab) = rgb8_to_lab_planes(&rgb);
        for (ch, v) in [l[0], ab[0], ab[1]].into_iter().enumerate() {
            assert!(
                (v as f64 - want[ch]).abs() < TOL,
                "{rgb:?}: planes give {v} for channel {ch}"
            );
        }
    }
}

#[test]
fn lab_to_rgb_matches_skimage_including_clipping() {
    for (lab, want) in LAB2RGB {
        let got = lab_to_srgb(lab);
        for ch in 0..3 {
            assert!(
                (got[ch] as f64 - want[ch]).abs() < TOL,
                "{lab:?}: got {got:?}, skimage {want:?}"
            );
        }
    }
}

#[test]
fn planes_are_a_then_b() {
    let rgb = [255u8, 0, 0, 0, 0, 255];
    let (l, ab) = rgb8_to_lab_planes(&rgb);
    assert_eq!(l.len(), 2);
    assert_eq!(ab.len(), 4);
    assert!(
        ab[0] > 70.0 && ab[1] > 70.0,
        "a plane holds red's and blue's a: {ab:?}"
    );
    assert!(
        ab[2] > 60.0 && ab[3] < -100.0,
        "b plane holds red's and blue's b: {ab:?}"
    );
}

/// The plane conversion stages pixels in blocks of 256 and converts 8 at a time: every pixel
/// lands at its own index, at lengths around and between those blocks, and agrees with the
/// one-pixel conversion (which takes its levels through f32, hence not bit-identical).
#[test]
fn planes_match_per_pixel_conversion_at_any_length() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for n in [1usize, 7, 255, 256, 257, 1000, 20_001] {
        let rgb: Vec<u8> = (0..3 * n).map(|_| rng.random()).collect();
        let (l, ab) = rgb8_to_lab_planes(&rgb);
        assert_eq!((l.len(), ab.len()), (n, 2 * n));
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            let want = srgb_to_lab([px[0], px[1], px[2]].map(|c| c as f32 / 255.0));
            let got = [l[i], ab[i], ab[n + i]];
            for ch in 0..3 {
                assert!(
                    (got[ch] - want[ch]).abs() < 1e-4,
                    "n = {n}, pixel {i} {px:?}: planes {got:?}, per pixel {want:?}"
                );
            }
        }
    }
}

#[test]
fn rgb8_round_trip_is_exact() {
    // Every 5th level on each axis (52^3 = 140 608 colours), plus all grays; large enough
    // to take the parallel path too.
    let levels: Vec<u8> = (0..=255).step_by(5).collect();
    let mut rgb = Vec::new();
    for &r in &levels {
        for &g in &levels {
            for &b in &levels {
                rgb.extend([r, g, b]);
            }
        }
    }
    rgb.extend((0..=255u8).flat_map(|v| [v, v, v]));
    let (l, ab) = rgb8_to_lab_planes(&rgb);
    assert_eq!(lab_planes_to_rgb8(&l, &ab), rgb);
}

#[test]
fn output_is_rounded_not_truncated() {
    // L = 50 is sRGB 0.46633 = 118.91 / 255: rounding gives 119, truncation 118.
    assert_eq!(
        lab_planes_to_rgb8(&[50.0], &[0.0, 0.0]),
        vec![119, 119, 119]
    );
    // A gray slightly below a level must come back up to it.
    let (l, ab) = rgb8_to_lab_planes(&[200, 200, 200]);
    let lower = [l[0] - 0.01];
    assert_eq!(lab_planes_to_rgb8(&lower, &ab), vec![200, 200, 200]);
}

#[test]
fn reference_scaling() {
    assert_eq!(scale_l(0.0), -1.0);
    assert_eq!(scale_l(100.0), 1.0);
    assert_eq!(scale_ab(-100.0), -1.0);
    for v in [-1.0f32, -0.3, 0.0, 0.7, 1.0] {
        assert!((scale_l(unscale_l(v)) - v).abs() < 1e-6);
        assert!((scale_ab(unscale_ab(v)) - v).abs() < 1e-6);
    }
}
