//! Just enough anti-aliased rasterisation for the synth benchmark. Every shape is a
//! signed distance (in pixels, negative inside), and coverage is a clamped linear ramp of
//! that distance, so fills, outlines, soft photo edges and hatching all come from one
//! function, and unions of shapes (a tree crown of four ellipses) get one clean outline.

use std::ops::{Add, Mul, Sub};

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub(crate) struct V2 {
    pub x: f32,
    pub y: f32,
}

pub(crate) const fn v2(x: f32, y: f32) -> V2 {
    V2 { x, y }
}

impl Add for V2 {
    type Output = V2;
    fn add(self, o: V2) -> V2 {
        v2(self.x + o.x, self.y + o.y)
    }
}

impl Sub for V2 {
    type Output = V2;
    fn sub(self, o: V2) -> V2 {
        v2(self.x - o.x, self.y - o.y)
    }
}

impl Mul<f32> for V2 {
    type Output = V2;
    fn mul(self, k: f32) -> V2 {
        v2(self.x * k, self.y * k)
    }
}

impl V2 {
    pub fn dot(self, o: V2) -> f32 {
        self.x * o.x + self.y * o.y
    }

    pub fn len(self) -> f32 {
        self.dot(self).sqrt()
    }

    /// By `angle` radians from +x towards +y (clockwise on screen, as y points down).
    pub fn rotate(self, angle: f32) -> V2 {
        let (s, c) = angle.sin_cos();
        v2(c * self.x - s * self.y, s * self.x + c * self.y)
    }

    pub fn polar(radius: f32, angle: f32) -> V2 {
        v2(radius * angle.cos(), radius * angle.sin())
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Shape {
    Ellipse {
        c: V2,
        r: V2,
        rot: f32,
    },
    /// A simple polygon (either winding).
    Polygon(Vec<V2>),
    /// A thick segment with round caps: stems, rays, brush strokes.
    Capsule {
        a: V2,
        b: V2,
        r: f32,
    },
}

pub(crate) fn circle(c: V2, r: f32) -> Shape {
    Shape::Ellipse {
        c,
        r: v2(r, r),
        rot: 0.0,
    }
}

pub(crate) fn rect(min: V2, max: V2) -> Shape {
    Shape::Polygon(vec![min, v2(max.x, min.y), max, v2(min.x, max.y)])
}

impl Shape {
    /// Signed distance from `p` (exact for polygons and capsules, a first-order
    /// approximation for ellipses that is exact on the boundary, which is what
    /// anti-aliasing needs).
    pub fn sd(&self, p: V2) -> f32 {
        match self {
            Shape::Ellipse { c, r, rot } => {
                let q = (p - *c).rotate(-rot);
                let k0 = v2(q.x / r.x, q.y / r.y).len();
                let k1 = v2(q.x / (r.x * r.x), q.y / (r.y * r.y)).len();
                if k1 < 1e-6 {
                    -r.x.min(r.y)
                } else {
                    k0 * (k0 - 1.0) / k1
                }
            }
            Shape::Polygon(pts) => {
                let mut dist = f32::INFINITY;
                let mut inside = false;
                for (i, &a) in pts.iter().enumerate() {
                    let b = pts[(i + 1) % pts.len()];
                    dist = dist.min(segment_distance(p, a, b));
                    if (a.y > p.y) != (b.y > p.y)
                        && p.x < a.x + (p.y - a.y) / (b.y - a.y) * (b.x - a.x)
                    {
                        inside = !inside;
                    }
                }
                if inside {
                    -dist
                } else {
                    dist
                }
            }
            Shape::Capsule { a, b, r } => segment_distance(p, *a, *b) - r,
        }
    }

    /// Axis-aligned bounds (min, max).
    pub fn bounds(&self) -> (V2, V2) {
        match self {
            Shape::Ellipse { c, r, .. } => {
                let m = r.x.max(r.y);
                (*c - v2(m, m), *c + v2(m, m))
            }
            Shape::Polygon(pts) => pts.iter().fold(
                (
                    v2(f32::INFINITY, f32::INFINITY),
                    v2(f32::NEG_INFINITY, f32::NEG_INFINITY),
                ),
                |(lo, hi), p| {
                    (
                        v2(lo.x.min(p.x), lo.y.min(p.y)),
                        v2(hi.x.max(p.x), hi.y.max(p.y)),
                    )
                },
            ),
            Shape::Capsule { a, b, r } => (
                v2(a.x.min(b.x) - r, a.y.min(b.y) - r),
                v2(a.x.max(b.x) + r, a.y.max(b.y) + r),
            ),
        }
    }
}

fn segment_distance(p: V2, a: V2, b: V2) -> f32 {
    let (pa, ba) = (p - a, b - a);
    let h = (pa.dot(ba) / ba.dot(ba).max(1e-12)).clamp(0.0, 1.0);
    (pa - ba * h).len()
}

/// Signed distance to a union of shapes.
pub(crate) fn union_sd(shapes: &[Shape], p: V2) -> f32 {
    shapes.iter().map(|s| s.sd(p)).fold(f32::INFINITY, f32::min)
}

pub(crate) fn union_bounds(shapes: &[Shape]) -> (V2, V2) {
    shapes.iter().map(Shape::bounds).fold(
        (
            v2(f32::INFINITY, f32::INFINITY),
            v2(f32::NEG_INFINITY, f32::NEG_INFINITY),
        ),
        |(lo, hi), (a, b)| {
            (
                v2(lo.x.min(a.x), lo.y.min(a.y)),
                v2(hi.x.max(b.x), hi.y.max(b.y)),
            )
        },
    )
}

/// Fraction of a pixel inside a shape at signed distance `sd` px, with an edge ramp
/// `aa` px wide (about 1 for crisp anti-aliasing, more for soft photographic edges).
pub(crate) fn fill_coverage(sd: f32, aa: f32) -> f32 {
    (0.5 - sd / aa).clamp(0.0, 1.0)
}

/// Coverage of a line of half width `half` px centred on the shape's boundary.
pub(crate) fn line_coverage(sd: f32, half: f32, aa: f32) -> f32 {
    fill_coverage(sd.abs() - half, aa)
}

/// Where an object sits: unit object coordinates (about [-1, 1]^2, y down) -> pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pose {
    pub centre: V2,
    /// Pixels per object unit.
    pub scale: f32,
    pub angle: f32,
    pub mirror: bool,
}

impl Pose {
    pub fn to_px(self, u: V2) -> V2 {
        let u = if self.mirror { v2(-u.x, u.y) } else { u };
        self.centre + u.rotate(self.angle) * self.scale
    }

    pub fn to_unit(self, p: V2) -> V2 {
        let u = (p - self.centre).rotate(-self.angle) * (1.0 / self.scale);
        if self.mirror {
            v2(-u.x, u.y)
        } else {
            u
        }
    }

    /// Pixel bounds (inclusive-exclusive, clipped to `size`) of a unit-space box grown by
    /// `margin` px.
    pub fn pixel_box(
        &self,
        (lo, hi): (V2, V2),
        margin: f32,
        size: usize,
    ) -> (usize, usize, usize, usize) {
        let corners = [lo, v2(hi.x, lo.y), hi, v2(lo.x, hi.y)].map(|c| self.to_px(c));
        let clip = |v: f32| v.clamp(0.0, size as f32) as usize;
        let min_x = corners.iter().map(|c| c.x).fold(f32::INFINITY, f32::min) - margin;
        let max_x = corners
            .iter()
            .map(|c| c.x)
            .fold(f32::NEG_INFINITY, f32::max)
            + margin;
        let min_y = corners.iter().map(|c| c.y).fold(f32::INFINITY, f32::min) - margin;
        let max_y = corners
            .iter()
            .map(|c| c.y)
            .fold(f32::NEG_INFINITY, f32::max)
            + margin;
        (
            clip(min_x.floor()),
            clip(max_x.ceil()),
            clip(min_y.floor()),
            clip(max_y.ceil()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_distances() {
        let c = circle(v2(0.0, 0.0), 2.0);
        assert!((c.sd(v2(3.0, 0.0)) - 1.0).abs() < 1e-5);
        assert!((c.sd(v2(0.0, 0.0)) + 2.0).abs() < 1e-5);
        let r = rect(v2(0.0, 0.0), v2(4.0, 2.0));
        assert!((r.sd(v2(2.0, 1.0)) + 1.0).abs() < 1e-5);
        assert!((r.sd(v2(6.0, 1.0)) - 2.0).abs() < 1e-5);
        let cap = Shape::Capsule {
            a: v2(0.0, 0.0),
            b: v2(4.0, 0.0),
            r: 1.0,
        };
        assert!((cap.sd(v2(2.0, 3.0)) - 2.0).abs() < 1e-5);
        let e = Shape::Ellipse {
            c: v2(0.0, 0.0),
            r: v2(4.0, 1.0),
            rot: std::f32::consts::FRAC_PI_2,
        };
        assert!(e.sd(v2(0.0, 3.5)) < 0.0 && e.sd(v2(3.5, 0.0)) > 0.0);
    }

    #[test]
    fn pose_round_trips() {
        let pose = Pose {
            centre: v2(32.0, 30.0),
            scale: 20.0,
            angle: 0.3,
            mirror: true,
        };
        let u = v2(0.4, -0.7);
        let back = pose.to_unit(pose.to_px(u));
        assert!((back - u).len() < 1e-5);
    }
}
