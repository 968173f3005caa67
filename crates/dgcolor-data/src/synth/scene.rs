//! What a synth image looks like: seven object classes, three scenes and four rendering
//! styles. See the module documentation of `synth` for the design.

use std::f32::consts::{PI, TAU};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::raster::{
    circle, fill_coverage, line_coverage, rect, union_bounds, union_sd, v2, Pose, Shape, V2,
};
use crate::color::{lab_to_srgb, srgb_to_lab};

type Lab = [f32; 3];

/// Rendering styles, in the order of `SYNTH_DOMAINS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Photo,
    Art,
    Cartoon,
    Sketch,
}

impl Style {
    pub const ALL: [Style; 4] = [Style::Photo, Style::Art, Style::Cartoon, Style::Sketch];
}

/// Class colours as sRGB, by role; role 0 is the dominant colour (the one the
/// background keeps its lightness away from). Index = class id in `SYNTH_CLASSES`.
const PALETTES: [&[[u8; 3]]; 7] = [
    // apple: body red, stem brown, leaf green
    &[[200, 30, 35], [100, 60, 30], [60, 150, 40]],
    // car: body blue, windows pale cyan, tyres near-black, hubs gray
    &[
        [30, 70, 190],
        [175, 215, 240],
        [35, 35, 40],
        [170, 170, 175],
    ],
    // fish: body orange, fins red-orange, eye white, pupil black
    &[[245, 135, 25], [215, 75, 20], [245, 245, 240], [20, 20, 20]],
    // flower: petals magenta, centre yellow, stem and leaf green
    &[[200, 40, 165], [250, 205, 40], [50, 140, 50]],
    // house: walls cream, roof (and chimney) red, door brown, windows light blue
    &[
        [240, 228, 200],
        [175, 45, 35],
        [105, 65, 35],
        [120, 170, 220],
    ],
    // sun: disc yellow, rays orange
    &[[255, 212, 30], [250, 160, 20]],
    // tree: crown green, trunk brown
    &[[40, 125, 45], [110, 72, 38]],
];

const SKY_TOP: [u8; 3] = [60, 120, 200];
const SKY_HORIZON: [u8; 3] = [150, 195, 235];
const GRASS_FAR: [u8; 3] = [120, 175, 70];
const GRASS_NEAR: [u8; 3] = [70, 140, 50];
const SAND_FAR: [u8; 3] = [230, 210, 165];
const SAND_NEAR: [u8; 3] = [205, 175, 120];
const WATER_TOP: [u8; 3] = [50, 140, 195];
const WATER_BOTTOM: [u8; 3] = [15, 55, 110];

/// Minimum lightness difference kept between the background and an object's dominant
/// colour: the network sees only L, so the silhouette must live in L.
const CONTRAST: f32 = 18.0;
/// Towards the light (upper left) of photo shading; paintings are lit from the other side.
const LIGHT: V2 = v2(-0.6, -0.8);
const DARK_INK: Lab = [12.0, 0.0, 0.0];

fn lab(rgb: [u8; 3]) -> Lab {
    srgb_to_lab(rgb.map(|c| c as f32 / 255.0))
}

fn mix(a: Lab, b: Lab, t: f32) -> Lab {
    std::array::from_fn(|i| a[i] + (b[i] - a[i]) * t)
}

fn blend(dst: &mut Lab, src: Lab, alpha: f32) {
    *dst = mix(*dst, src, alpha);
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    rng.sample(StandardNormal)
}

/// Rotate the hue by `angle` and scale the chroma by `chroma`.
fn hue_chroma(c: Lab, angle: f32, chroma: f32) -> Lab {
    let ab = v2(c[1], c[2]).rotate(angle) * chroma;
    [c[0], ab.x, ab.y]
}

struct Part {
    shapes: Vec<Shape>,
    role: usize,
}

fn part(role: usize, shapes: Vec<Shape>) -> Part {
    Part { shapes, role }
}

fn poly(points: &[(f32, f32)]) -> Shape {
    Shape::Polygon(points.iter().map(|&(x, y)| v2(x, y)).collect())
}

/// The parts of one object in unit coordinates (about [-1, 1]^2, y down), back to front.
fn class_parts(class: usize, rng: &mut ChaCha8Rng) -> Vec<Part> {
    match class {
        0 => {
            let w = rng.random_range(0.56..0.68);
            vec![
                part(
                    1,
                    vec![Shape::Capsule {
                        a: v2(0.0, -0.5),
                        b: v2(0.1, -0.95),
                        r: 0.06,
                    }],
                ),
                part(
                    0,
                    vec![
                        Shape::Ellipse {
                            c: v2(-0.26, 0.12),
                            r: v2(w, 0.78),
                            rot: 0.0,
                        },
                        Shape::Ellipse {
                            c: v2(0.26, 0.12),
                            r: v2(w, 0.78),
                            rot: 0.0,
                        },
                    ],
                ),
                part(
                    2,
                    vec![Shape::Ellipse {
                        c: v2(0.34, -0.8),
                        r: v2(0.3, 0.12),
                        rot: -0.5,
                    }],
                ),
            ]
        }
        1 => {
            let roof = rng.random_range(-0.6..-0.48);
            vec![
                part(
                    0,
                    vec![poly(&[
                        (-0.6, -0.08),
                        (-0.4, roof),
                        (0.3, roof),
                        (0.58, -0.08),
                    ])],
                ),
                part(
                    0,
                    vec![poly(&[
                        (-1.0, -0.1),
                        (0.75, -0.1),
                        (1.0, 0.08),
                        (1.0, 0.4),
                        (-1.0, 0.4),
                    ])],
                ),
                part(
                    1,
                    vec![
                        poly(&[
                            (-0.48, -0.14),
                            (-0.34, roof + 0.09),
                            (-0.07, roof + 0.09),
                            (-0.07, -0.14),
                        ]),
                        poly(&[
                            (0.0, -0.14),
                            (0.0, roof + 0.09),
                            (0.26, roof + 0.09),
                            (0.45, -0.14),
                        ]),
                    ],
                ),
                part(
                    2,
                    vec![circle(v2(-0.55, 0.42), 0.25), circle(v2(0.55, 0.42), 0.25)],
                ),
                part(
                    3,
                    vec![circle(v2(-0.55, 0.42), 0.1), circle(v2(0.55, 0.42), 0.1)],
                ),
            ]
        }
        2 => {
            let h = rng.random_range(0.36..0.46);
            vec![
                part(
                    1,
                    vec![poly(&[(0.5, 0.0), (1.0, -0.5), (0.9, 0.0), (1.0, 0.5)])],
                ),
                part(
                    1,
                    vec![poly(&[
                        (-0.25, -h + 0.1),
                        (0.05, -h - 0.28),
                        (0.35, -h + 0.1),
                    ])],
                ),
                part(
                    0,
                    vec![Shape::Ellipse {
                        c: v2(-0.1, 0.0),
                        r: v2(0.72, h),
                        rot: 0.0,
                    }],
                ),
                part(2, vec![circle(v2(-0.5, -0.08), 0.11)]),
                part(3, vec![circle(v2(-0.53, -0.08), 0.055)]),
            ]
        }
        3 => {
            let n = rng.random_range(5..=7);
            let phase = rng.random_range(0.0..TAU);
            let head = v2(0.0, -0.32);
            let petals = (0..n)
                .map(|k| {
                    let a = phase + TAU * k as f32 / n as f32;
                    Shape::Ellipse {
                        c: head + V2::polar(0.34, a),
                        r: v2(0.3, 0.15),
                        rot: a,
                    }
                })
                .collect();
            vec![
                part(
                    2,
                    vec![
                        Shape::Capsule {
                            a: v2(0.0, 0.1),
                            b: v2(0.0, 1.0),
                            r: 0.06,
                        },
                        Shape::Ellipse {
                            c: v2(0.2, 0.62),
                            r: v2(0.24, 0.09),
                            rot: -0.6,
                        },
                    ],
                ),
                part(0, petals),
                part(1, vec![circle(head, 0.19)]),
            ]
        }
        4 => {
            let mut parts = Vec::new();
            if rng.random_bool(0.5) {
                parts.push(part(1, vec![rect(v2(0.42, -0.75), v2(0.6, -0.3))]));
            }
            parts.extend([
                part(0, vec![rect(v2(-0.7, -0.1), v2(0.7, 0.92))]),
                part(1, vec![poly(&[(-0.92, -0.02), (0.0, -0.9), (0.92, -0.02)])]),
                part(2, vec![rect(v2(-0.14, 0.45), v2(0.14, 0.92))]),
                part(
                    3,
                    vec![
                        rect(v2(-0.52, 0.12), v2(-0.28, 0.36)),
                        rect(v2(0.28, 0.12), v2(0.52, 0.36)),
                    ],
                ),
            ]);
            parts
        }
        5 => {
            let n = rng.random_range(8..=12);
            let rays = (0..n)
                .map(|k| {
                    let a = TAU * k as f32 / n as f32;
                    Shape::Capsule {
                        a: V2::polar(0.62, a),
                        b: V2::polar(0.95, a),
                        r: 0.06,
                    }
                })
                .collect();
            vec![part(1, rays), part(0, vec![circle(v2(0.0, 0.0), 0.55)])]
        }
        6 => {
            let trunk = part(
                1,
                vec![poly(&[(-0.13, 1.0), (-0.1, 0.1), (0.1, 0.1), (0.13, 1.0)])],
            );
            let crown = if rng.random_bool(0.3) {
                // a conifer
                vec![
                    poly(&[(-0.75, 0.3), (0.0, -0.45), (0.75, 0.3)]),
                    poly(&[(-0.6, -0.1), (0.0, -0.95), (0.6, -0.1)]),
                ]
            } else {
                vec![
                    circle(v2(-0.38, -0.15), 0.42),
                    circle(v2(0.38, -0.15), 0.42),
                    circle(v2(0.0, -0.5), 0.5),
                    circle(v2(0.0, -0.1), 0.45),
                ]
            };
            vec![trunk, part(0, crown)]
        }
        _ => unreachable!("synth has 7 classes"),
    }
}

#[derive(Clone, Copy)]
enum Scene {
    /// Sky above `horizon` (px), grass or sand below.
    Outdoor {
        horizon: f32,
        sand: bool,
    },
    Underwater,
}

fn scene_for(class: usize, size: f32, rng: &mut ChaCha8Rng) -> Scene {
    match class {
        2 => Scene::Underwater,
        // flowers and trees grow in grass
        3 | 6 => Scene::Outdoor {
            horizon: size * rng.random_range(0.55..0.72),
            sand: false,
        },
        // the sun is high, so most of its image is sky
        5 => Scene::Outdoor {
            horizon: size * rng.random_range(0.8..0.9),
            sand: rng.random_bool(0.5),
        },
        _ => Scene::Outdoor {
            horizon: size * rng.random_range(0.55..0.72),
            sand: rng.random_bool(0.5),
        },
    }
}

/// Background colour: region 0 (sky, water) or 1 (ground), and its colour at row `y`.
/// `flat` gives each region one colour, as a cartoon would.
fn background(scene: Scene, y: f32, size: f32, flat: bool) -> (usize, Lab) {
    match scene {
        Scene::Underwater => {
            let t = if flat { 0.5 } else { y / size };
            (0, mix(lab(WATER_TOP), lab(WATER_BOTTOM), t))
        }
        Scene::Outdoor { horizon, .. } if y < horizon => {
            let t = if flat { 0.6 } else { y / horizon };
            (0, mix(lab(SKY_TOP), lab(SKY_HORIZON), t))
        }
        Scene::Outdoor { horizon, sand } => {
            let t = if flat {
                0.4
            } else {
                (y - horizon) / (size - horizon)
            };
            let (far, near) = if sand {
                (SAND_FAR, SAND_NEAR)
            } else {
                (GRASS_FAR, GRASS_NEAR)
            };
            (1, mix(lab(far), lab(near), t))
        }
    }
}

/// Keeps a background region's lightness at least [`CONTRAST`] away from the object's
/// dominant colour, on the side where the region already lies (or the other side when
/// that would leave [5, 97]).
struct ContrastGuard {
    main_l: f32,
    lighter: [bool; 2],
}

impl ContrastGuard {
    fn new(scene: Scene, main_l: f32, size: f32) -> Self {
        let lighter = [0usize, 1].map(|region| {
            let ys = (0..size as usize).map(|y| y as f32 + 0.5);
            let ls: Vec<f32> = ys
                .map(|y| background(scene, y, size, false))
                .filter(|(r, _)| *r == region)
                .map(|(_, c)| c[0])
                .collect();
            let mean = if ls.is_empty() {
                50.0
            } else {
                ls.iter().sum::<f32>() / ls.len() as f32
            };
            let want = mean >= main_l;
            if want {
                main_l + CONTRAST <= 97.0
            } else {
                main_l - CONTRAST < 5.0
            }
        });
        Self { main_l, lighter }
    }

    fn apply(&self, region: usize, mut c: Lab) -> Lab {
        c[0] = if self.lighter[region] {
            c[0].max(self.main_l + CONTRAST)
        } else {
            c[0].min(self.main_l - CONTRAST)
        };
        c
    }
}

pub(crate) struct Rendered {
    /// Interleaved RGB8, `size * size * 3`.
    pub rgb: Vec<u8>,
    /// Object coverage in [0, 1] per pixel (for tests and figures).
    pub mask: Vec<f32>,
}

/// Renders one image; all randomness comes from `rng`, so one `(seed, domain, class,
/// index)` always gives the same pixels.
pub(crate) fn render(
    style: Style,
    class: usize,
    size: usize,
    palette_shift: bool,
    rng: &mut ChaCha8Rng,
) -> Rendered {
    let s = size as f32;
    let parts = class_parts(class, rng);
    let angle = match class {
        5 => rng.random_range(0.0..TAU),
        2 => rng.random_range(-0.3..0.3),
        _ => rng.random_range(-0.15..0.15),
    };
    let pose = Pose {
        centre: v2(
            s * rng.random_range(0.42..0.58),
            s * rng.random_range(0.42..0.58),
        ),
        scale: s * rng.random_range(0.36..0.46),
        angle,
        mirror: rng.random_bool(0.5),
    };
    let scene = scene_for(class, s, rng);

    // Palette: class colours with a little per-image jitter. Every domain shares it; only
    // with `palette_shift` do art_painting and cartoon also shift the colours themselves.
    let (art_hue, art_chroma) = (rng.random_range(0.35..0.55), 1.35);
    let styled = |c: Lab| match (style, palette_shift) {
        (Style::Art, true) => {
            let c = hue_chroma(c, art_hue, art_chroma);
            [50.0 + (c[0] - 50.0) * 1.1, c[1], c[2]]
        }
        (Style::Cartoon, true) => hue_chroma(c, 0.0, 1.3),
        _ => c,
    };
    // A painting's tone curve: lightness through a gamma drawn per image, so the same
    // colour reaches the canvas lighter or darker than in a photo (monotone, so silhouettes
    // stay visible in L).
    let art_gamma = 2f32.powf(rng.random_range(-1.2..1.2));
    let base_palette: Vec<Lab> = PALETTES[class]
        .iter()
        .map(|&rgb| {
            let c = lab(rgb);
            let c = hue_chroma(c, rng.random_range(-0.1..0.1), rng.random_range(0.9..1.1));
            [
                (c[0] + rng.random_range(-4.0..4.0)).clamp(2.0, 98.0),
                c[1],
                c[2],
            ]
        })
        .collect();
    let palette: Vec<Lab> = base_palette.iter().map(|&c| styled(c)).collect();
    let guard = ContrastGuard::new(scene, palette[0][0], s);

    let mut canvas = vec![[0.0f32; 3]; size * size];
    let mut mask = vec![0.0f32; size * size];
    let paper = [rng.random_range(95.0..99.0), 0.0, 0.0];
    for y in 0..size {
        let (region, colour) = background(scene, y as f32 + 0.5, s, style == Style::Cartoon);
        let colour = guard.apply(region, styled(colour));
        for x in 0..size {
            canvas[y * size + x] = match style {
                Style::Sketch => paper,
                Style::Photo if region == 1 => {
                    let mut c = colour;
                    c[0] += 2.5 * normal(rng);
                    c
                }
                _ => colour,
            };
        }
    }
    if style == Style::Photo {
        // Depth of field: the object is in focus, the background behind it is not.
        defocus(&mut canvas, size, s * rng.random_range(0.03..0.05));
    }
    if let (Style::Sketch, Scene::Outdoor { horizon, .. }) = (style, scene) {
        let phase = rng.random_range(0.0..TAU);
        for y in 0..size {
            for x in 0..size {
                let wobble = 0.6 * (x as f32 * 0.3 + phase).sin();
                let cov = line_coverage(y as f32 + 0.5 - horizon - wobble, 0.4, 1.0);
                blend(&mut canvas[y * size + x], [60.0, 0.0, 0.0], cov);
            }
        }
    }

    let hatch_dir = V2::polar(1.0, rng.random_range(0.5..1.1));
    let wobble_phase = (rng.random_range(0.0..TAU), rng.random_range(0.0..TAU));
    for (k, part) in parts.iter().enumerate() {
        let colour = palette[part.role];
        let bounds = union_bounds(&part.shapes);
        let centre = pose.to_px((bounds.0 + bounds.1) * 0.5);
        let radius = (bounds.1 - bounds.0).len() * 0.5 * pose.scale;
        // Sketch: darker colours get denser hatching, alternating direction per part.
        let tone = base_palette[part.role][0];
        let hatch = (tone < 72.0).then(|| {
            let dir = if k % 2 == 0 {
                hatch_dir
            } else {
                v2(-hatch_dir.x, hatch_dir.y)
            };
            (dir, 2.0 + 4.0 * tone / 72.0)
        });
        let (x0, x1, y0, y1) = pose.pixel_box(bounds, 3.0, size);
        for y in y0..y1 {
            for x in x0..x1 {
                let p = v2(x as f32 + 0.5, y as f32 + 0.5);
                let sd = union_sd(&part.shapes, pose.to_unit(p)) * pose.scale;
                let px = &mut canvas[y * size + x];
                let shade = ((p - centre) * (1.0 / radius)).dot(LIGHT);
                let inside = match style {
                    Style::Photo => {
                        // Strong directional light: shading, a darker rim and a specular
                        // highlight towards the light.
                        let cov = fill_coverage(sd, 1.4);
                        let rim = (sd.min(0.0) / 2.0).exp();
                        let highlight = 16.0 * shade.max(0.0).powi(6);
                        blend(
                            px,
                            [
                                colour[0] + 20.0 * shade - 12.0 * rim + highlight,
                                colour[1],
                                colour[2],
                            ],
                            cov,
                        );
                        cov
                    }
                    Style::Art => {
                        // Lit from the lower right, with a strong falloff.
                        let cov = fill_coverage(sd, 1.0);
                        blend(px, [colour[0] - 14.0 * shade, colour[1], colour[2]], cov);
                        cov
                    }
                    Style::Cartoon => {
                        let cov = fill_coverage(sd, 0.8);
                        blend(px, colour, cov);
                        blend(px, DARK_INK, line_coverage(sd, 0.02 * s, 0.8));
                        cov
                    }
                    Style::Sketch => {
                        let cov = fill_coverage(sd, 1.0);
                        blend(px, paper, cov);
                        if let Some((dir, spacing)) = hatch {
                            let t = p.dot(dir) / spacing;
                            let dist = (t - t.floor() - 0.5).abs() * spacing;
                            blend(px, [40.0, 0.0, 0.0], cov * line_coverage(dist, 0.45, 1.0));
                        }
                        let wobble = 0.25
                            * ((p.x * 0.45 + wobble_phase.0).sin()
                                + (p.y * 0.37 + wobble_phase.1).sin());
                        blend(px, [25.0, 0.0, 0.0], line_coverage(sd + wobble, 0.55, 0.9));
                        cov
                    }
                };
                let m = &mut mask[y * size + x];
                *m = m.max(inside);
            }
        }
    }

    match style {
        Style::Art => {
            brush_strokes(&mut canvas, &mask, size, rng);
            canvas_weave(&mut canvas, size, rng);
            for c in &mut canvas {
                c[0] = 100.0 * (c[0].clamp(0.0, 100.0) / 100.0).powf(art_gamma);
            }
        }
        Style::Photo => {
            // A lens's vignetting, then sensor noise.
            let strength = rng.random_range(0.2..0.35);
            for y in 0..size {
                for x in 0..size {
                    let d = v2(x as f32 + 0.5 - s / 2.0, y as f32 + 0.5 - s / 2.0) * (2.0 / s);
                    let c = &mut canvas[y * size + x];
                    c[0] *= 1.0 - strength * 0.5 * d.dot(d);
                }
            }
            for c in &mut canvas {
                c[0] += 3.0 * normal(rng);
                c[1] += 0.8 * normal(rng);
                c[2] += 0.8 * normal(rng);
            }
        }
        Style::Sketch => {
            for c in &mut canvas {
                *c = [c[0] + 0.8 * normal(rng), 0.0, 0.0];
            }
        }
        Style::Cartoon => {}
    }

    let to_u8 = |v: f32| (v * 255.0).round() as u8;
    let rgb = canvas
        .iter()
        .flat_map(|&c| match style {
            // (L, 0, 0) is neutral only up to the matrices' rounding; make it exact.
            Style::Sketch => [to_u8(lab_to_srgb(c)[1]); 3],
            _ => lab_to_srgb(c).map(to_u8),
        })
        .collect();
    Rendered { rgb, mask }
}

/// Oriented, colour-jittered strokes that each take the colour under their centre. A
/// stroke stays on its own side of the object silhouette, as a painter's would, so the
/// texture changes but the shape in L survives.
fn brush_strokes(canvas: &mut [Lab], mask: &[f32], size: usize, rng: &mut ChaCha8Rng) {
    let s = size as f32;
    let base = canvas.to_vec();
    let flow = rng.random_range(0.0..PI);
    for _ in 0..size * size / 6 {
        let c = v2(rng.random_range(0.0..s), rng.random_range(0.0..s));
        let dir = V2::polar(1.0, flow + 0.3 * normal(rng));
        let half_len = 0.5 * s * rng.random_range(0.1..0.25);
        let r = (s * rng.random_range(0.025..0.045)).max(0.7);
        let centre_idx = (c.y as usize).min(size - 1) * size + (c.x as usize).min(size - 1);
        let src = base[centre_idx];
        // Strokes vary in lightness (the painter's value) far more than in colour.
        let colour = [
            src[0] + 9.0 * normal(rng),
            src[1] + 2.5 * normal(rng),
            src[2] + 2.5 * normal(rng),
        ];
        let on_object = mask[centre_idx] > 0.5;
        let stroke = Shape::Capsule {
            a: c - dir * half_len,
            b: c + dir * half_len,
            r,
        };
        let (lo, hi) = stroke.bounds();
        let clip = |v: f32| (v.max(0.0) as usize).min(size);
        for y in clip(lo.y - 1.0)..clip(hi.y + 2.0) {
            for x in clip(lo.x - 1.0)..clip(hi.x + 2.0) {
                let i = y * size + x;
                let side = if on_object { mask[i] } else { 1.0 - mask[i] };
                let cov =
                    fill_coverage(stroke.sd(v2(x as f32 + 0.5, y as f32 + 0.5)), 1.0) * 0.7 * side;
                blend(&mut canvas[i], colour, cov);
            }
        }
    }
}

/// The weave of a painter's canvas: a fine periodic ridge pattern in lightness only.
fn canvas_weave(canvas: &mut [Lab], size: usize, rng: &mut ChaCha8Rng) {
    let period = rng.random_range(2.6..3.6f32);
    let amplitude = rng.random_range(3.0..6.0f32);
    let phase = (rng.random_range(0.0..TAU), rng.random_range(0.0..TAU));
    for y in 0..size {
        for x in 0..size {
            let u = (TAU * x as f32 / period + phase.0).sin();
            let v = (TAU * y as f32 / period + phase.1).sin();
            canvas[y * size + x][0] += amplitude * u * v;
        }
    }
}

/// A separable Gaussian blur of the whole canvas (edges clamped).
fn defocus(canvas: &mut [Lab], size: usize, sigma: f32) {
    let radius = (3.0 * sigma).ceil() as isize;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let at = |i: isize| i.clamp(0, size as isize - 1) as usize;
    for horizontal in [true, false] {
        let src = canvas.to_vec();
        for y in 0..size {
            for x in 0..size {
                let mut acc = [0.0f32; 3];
                for (k, w) in weights.iter().enumerate() {
                    let o = k as isize - radius;
                    let (sx, sy) = if horizontal {
                        (at(x as isize + o), y)
                    } else {
                        (x, at(y as isize + o))
                    };
                    let c = src[sy * size + sx];
                    for ch in 0..3 {
                        acc[ch] += w * c[ch];
                    }
                }
                canvas[y * size + x] = acc.map(|v| v / total);
            }
        }
    }
}
