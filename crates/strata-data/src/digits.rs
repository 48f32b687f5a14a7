//! The 8x8 handwritten digits (scikit-learn's `load_digits`, from the UCI Optical Recognition of
//! Handwritten Digits data set): 1,797 images, 64 pixels with values 0-16, labels 0-9.
//!
//! A copy ships in `fixtures/digits/` so that the default run needs nothing from outside the
//! repository; [`EMBEDDED`] holds it compiled into the binary.

use flate2::read::GzDecoder;
use ndarray::Array2;
use std::io::Read;

/// `digits.csv.gz`: one image per line, 64 pixel values then the label, no header.
pub const EMBEDDED: &[u8] = include_bytes!("../../../fixtures/digits/digits.csv.gz");

/// Images as rows of 64 pixel intensities in [0, 16], with their labels.
#[derive(Clone, Debug)]
pub struct Digits {
    /// One row of 64 pixel intensities (0-16) per image, row by row of the 8x8 grid.
    pub images: Array2<f32>,
    /// The digit (0-9) of each image.
    pub labels: Vec<u8>,
}

/// Parse the gzipped CSV. Errors name the line.
pub fn parse(gz: &[u8]) -> Result<Digits, String> {
    let mut text = String::new();
    GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| format!("digits: not a gzip text file: {e}"))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let vals: Vec<&str> = line.split(',').collect();
        if vals.len() != 65 {
            return Err(format!(
                "digits line {}: {} fields, expected 65",
                i + 1,
                vals.len()
            ));
        }
        for v in &vals[..64] {
            pixels.push(
                v.trim()
                    .parse::<f32>()
                    .map_err(|_| format!("digits line {}: bad pixel '{v}'", i + 1))?,
            );
        }
        labels.push(
            vals[64]
                .trim()
                .parse::<u8>()
                .map_err(|_| format!("digits line {}: bad label '{}'", i + 1, vals[64]))?,
        );
    }
    let n = labels.len();
    let images = Array2::from_shape_vec((n, 64), pixels).map_err(|e| e.to_string())?;
    Ok(Digits { images, labels })
}

/// The embedded copy.
pub fn load() -> Digits {
    parse(EMBEDDED).expect("the embedded digits fixture is valid (checked by tests)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_digits_are_complete() {
        let d = super::parse(super::EMBEDDED).unwrap();
        assert_eq!(d.images.dim(), (1797, 64));
        assert!(d.images.iter().all(|&v| (0.0..=16.0).contains(&v)));
        let mut counts = [0usize; 10];
        for &l in &d.labels {
            counts[l as usize] += 1;
        }
        // scikit-learn's class counts: 178 182 177 183 181 182 181 179 174 180.
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }
}
