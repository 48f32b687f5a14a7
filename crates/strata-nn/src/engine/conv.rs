//! Convolution as a matrix product (im2col / col2im) over activations stored channels-last:
//! one row per example and position, `(n · h · w) x channels`.
//!
//! A patch row lists its kernel taps in `(ky, kx, channel)` order, so each tap copies one
//! contiguous run of channels; the engine keeps convolution weights as the matching
//! `(k · k · c_in) x c_out` matrix. Positions outside the image read zeros (zero padding).

/// `dst.copy_from_slice(src)` for the short runs im2col copies (3 to a few hundred floats),
/// in fixed-size pieces the compiler turns into vector moves instead of a `memcpy` call each
/// (a first layer's runs are 3 floats: the call would cost more than the copy).
#[inline]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    fn fixed<const N: usize>(d: &mut [f32], s: &[f32]) {
        let d: &mut [f32; N] = d.try_into().expect("N floats");
        *d = *<&[f32; N]>::try_from(s).expect("N floats");
    }
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (a, b) in (&mut d).zip(&mut s) {
        fixed::<16>(a, b);
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    let s = &s[..d.len()];
    match d.len() {
        0 => {}
        1 => fixed::<1>(d, s),
        2 => fixed::<2>(d, s),
        3 => fixed::<3>(d, s),
        4 => fixed::<4>(d, s),
        5 => fixed::<5>(d, s),
        6 => fixed::<6>(d, s),
        7 => fixed::<7>(d, s),
        8 => fixed::<8>(d, s),
        9 => fixed::<9>(d, s),
        10 => fixed::<10>(d, s),
        11 => fixed::<11>(d, s),
        12 => fixed::<12>(d, s),
        13 => fixed::<13>(d, s),
        14 => fixed::<14>(d, s),
        _ => d.copy_from_slice(s),
    }
}

/// Shape of one convolution, per example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ConvGeo {
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeo {
    /// Columns of a patch row: `k · k · c_in`.
    pub fn patch_len(&self) -> usize {
        self.k * self.k * self.cin
    }

    /// Input elements of one example.
    pub fn in_len(&self) -> usize {
        self.h * self.w * self.cin
    }

    /// Output positions of one example.
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// The kernel taps `kx` in `lo..hi` that fall inside the image for output column `ox`.
    fn taps(&self, ox: usize) -> (usize, usize) {
        let start = ox * self.stride;
        let lo = self.pad.saturating_sub(start);
        let hi = (self.w + self.pad).saturating_sub(start).min(self.k);
        (lo, hi.max(lo))
    }

    /// Patch rows of `x.len() / in_len()` examples into `out` (one row per output position).
    /// For a fixed kernel row `ky`, taps `kx` read neighbouring input positions and fill
    /// neighbouring patch columns, so each (position, `ky`) is one contiguous copy.
    pub fn im2col(&self, x: &[f32], out: &mut [f32]) {
        let (c, k, kl) = (self.cin, self.k, self.patch_len());
        let ne = x.len() / self.in_len();
        for e in 0..ne {
            let img = &x[e * self.in_len()..(e + 1) * self.in_len()];
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let r = (e * self.oh + oy) * self.ow + ox;
                    let row = &mut out[r * kl..(r + 1) * kl];
                    let (lo, hi) = self.taps(ox);
                    for ky in 0..k {
                        let dst = &mut row[ky * k * c..(ky + 1) * k * c];
                        let iy = (oy * self.stride + ky).wrapping_sub(self.pad);
                        if iy >= self.h || lo == hi {
                            dst.fill(0.0);
                            continue;
                        }
                        dst[..lo * c].fill(0.0);
                        dst[hi * c..].fill(0.0);
                        let ix = ox * self.stride + lo - self.pad;
                        let s = (iy * self.w + ix) * c;
                        copy_run(&mut dst[lo * c..hi * c], &img[s..s + (hi - lo) * c]);
                    }
                }
            }
        }
    }

    /// The adjoint of [`ConvGeo::im2col`]: adds every patch row's entries back onto the input
    /// positions they were read from. `dx` is overwritten (zeroed first).
    pub fn col2im(&self, d: &[f32], dx: &mut [f32]) {
        dx.fill(0.0);
        let (c, k, kl) = (self.cin, self.k, self.patch_len());
        let ne = dx.len() / self.in_len();
        for e in 0..ne {
            let img = &mut dx[e * self.in_len()..(e + 1) * self.in_len()];
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let r = (e * self.oh + oy) * self.ow + ox;
                    let row = &d[r * kl..(r + 1) * kl];
                    let (lo, hi) = self.taps(ox);
                    for ky in 0..k {
                        let iy = (oy * self.stride + ky).wrapping_sub(self.pad);
                        if iy >= self.h || lo == hi {
                            continue;
                        }
                        let ix = ox * self.stride + lo - self.pad;
                        let s = (iy * self.w + ix) * c;
                        let src = &row[(ky * k + lo) * c..(ky * k + hi) * c];
                        for (a, b) in img[s..s + (hi - lo) * c].iter_mut().zip(src) {
                            *a += b;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution in f64: `out[e, oy, ox, o] = Σ x[e, iy, ix, c] · w[(ky, kx, c), o]`.
    fn direct(g: &ConvGeo, x: &[f32], w: &[f32], cout: usize) -> Vec<f64> {
        let ne = x.len() / g.in_len();
        let mut out = vec![0f64; ne * g.positions() * cout];
        for e in 0..ne {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for o in 0..cout {
                        let mut s = 0f64;
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                for c in 0..g.cin {
                                    let xv = x[e * g.in_len()
                                        + (iy as usize * g.w + ix as usize) * g.cin
                                        + c];
                                    let wv = w[((ky * g.k + kx) * g.cin + c) * cout + o];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        out[((e * g.oh + oy) * g.ow + ox) * cout + o] = s;
                    }
                }
            }
        }
        out
    }

    fn geo(cin: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> ConvGeo {
        ConvGeo {
            cin,
            h,
            w,
            k,
            stride,
            pad,
            oh: (h + 2 * pad - k) / stride + 1,
            ow: (w + 2 * pad - k) / stride + 1,
        }
    }

    #[test]
    fn im2col_product_equals_direct_convolution_and_col2im_is_its_adjoint() {
        let mut rng = strata_data::rng::Rng::new(7);
        for g in [
            geo(1, 6, 5, 3, 1, 1),
            geo(3, 7, 7, 3, 2, 1),
            geo(2, 5, 6, 5, 1, 2),
            geo(4, 4, 4, 1, 1, 0),
            geo(2, 8, 8, 3, 1, 0),
            geo(1, 3, 3, 3, 2, 1),
        ] {
            let (ne, cout) = (3, 4);
            let x: Vec<f32> = (0..ne * g.in_len()).map(|_| rng.normal() as f32).collect();
            let w: Vec<f32> = (0..g.patch_len() * cout)
                .map(|_| rng.normal() as f32)
                .collect();
            let rows = ne * g.positions();
            let mut p = vec![0f32; rows * g.patch_len()];
            g.im2col(&x, &mut p);
            let mut out = vec![0f32; rows * cout];
            super::super::gemm::ab(
                &mut out,
                &p,
                &w,
                (rows, g.patch_len(), cout),
                false,
                faer::Par::Seq,
            );
            let want = direct(&g, &x, &w, cout);
            for (a, b) in out.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "{g:?}");
            }
            // <im2col(x), d> = <x, col2im(d)> for random d.
            let d: Vec<f32> = (0..p.len()).map(|_| rng.normal() as f32).collect();
            let mut dx = vec![1f32; x.len()];
            g.col2im(&d, &mut dx);
            let lhs: f64 = p.iter().zip(&d).map(|(a, b)| *a as f64 * *b as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()), "{g:?}");
        }
    }
}
