//! Colourfulness (Hasler & Süsstrunk 2003) on images small enough to check by hand.

use dgcolor_metrics::{colourfulness, colourfulness_ratio, MetricError, RgbView};

fn view(data: &[u8]) -> RgbView<'_> {
    RgbView::new(data, data.len() / 3, 1).unwrap()
}

/// Pure red, green and blue:
/// rg = R - G = [255, -255, 0], mean 0, population variance (255² + 255²) / 3 = 43350;
/// yb = (R + G)/2 - B = [127.5, 127.5, -255], mean 0, variance (2·127.5² + 255²) / 3 = 32512.5;
/// M = sqrt(43350 + 32512.5) + 0.3·0 = sqrt(75862.5) = 275.431...
#[test]
fn primaries_give_275_4() {
    let m = colourfulness(view(&[255, 0, 0, 0, 255, 0, 0, 0, 255]));
    assert!((m - 275.4).abs() < 0.1, "{m}");
    assert!((m - 75862.5f64.sqrt()).abs() < 1e-12, "{m}");
}

#[test]
fn gray_image_gives_zero() {
    let m = colourfulness(view(&[0, 0, 0, 128, 128, 128, 255, 255, 255, 7, 7, 7]));
    assert_eq!(m, 0.0);
}

/// Uniform (200, 100, 50): no spread, so M = 0.3·sqrt(rg² + yb²) with rg = 100 and
/// yb = 150 - 50 = 100, i.e. 0.3·sqrt(20000) = 42.426...
#[test]
fn uniform_colour_gives_the_mean_term_only() {
    let m = colourfulness(view(&[200, 100, 50].repeat(5)));
    assert!((m - 0.3 * 20000f64.sqrt()).abs() < 1e-12, "{m}");
}

/// Signed opponents: yellow (255, 255, 0) and blue (0, 0, 255) have means of opposite sign
/// that cancel, so only the spread remains: rg = [0, 0], yb = [255, -255], M = 255.
#[test]
fn opponents_are_signed() {
    let m = colourfulness(view(&[255, 255, 0, 0, 0, 255]));
    assert!((m - 255.0).abs() < 1e-12, "{m}");
}

#[test]
fn ratio_of_an_image_to_itself_is_one() {
    let data = [255, 0, 0, 10, 200, 30, 0, 0, 255, 90, 90, 12];
    assert_eq!(colourfulness_ratio(view(&data), view(&data)).unwrap(), 1.0);
}

/// Uniform images, the reference twice as saturated: (100, 50, 0) has rg = 50, yb = 75 and
/// (200, 100, 0) has rg = 100, yb = 150, so M halves.
#[test]
fn ratio_below_one_means_desaturated() {
    let pred = [100, 50, 0].repeat(4);
    let gt = [200, 100, 0].repeat(4);
    let ratio = colourfulness_ratio(view(&pred), view(&gt)).unwrap();
    assert!((ratio - 0.5).abs() < 1e-12, "{ratio}");
}

#[test]
fn ratio_against_a_grayscale_reference_is_an_error() {
    let pred = [255, 0, 0, 0, 255, 0];
    let gt = [40, 40, 40, 90, 90, 90];
    let err = colourfulness_ratio(view(&pred), view(&gt)).unwrap_err();
    assert_eq!(
        err,
        MetricError::ZeroReference {
            metric: "colourfulness_ratio"
        }
    );
}
