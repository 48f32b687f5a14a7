//! Convolution as a matrix product (im2col / col2im) over activations stored channels-last:
//! one row per example and position, `(n · h · w) x channels`.
//!
//! A patch row lists its kernel taps in `(ky, kx, channel)` order, so each tap copies one
//! contiguous run of channels; the engine keeps convolution weights as the matching
//! `(k · k · c_in) x c_out` matrix. Positions outside the image read zeros (zero padding).

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

    /// Width and height of the zero-padded image.
    fn padded(&self) -> (usize, usize) {
        (self.h + 2 * self.pad, self.w + 2 * self.pad)
    }

    /// One example copied into the middle of a zero-padded image (`pad` must be zeroed
    /// around it already: only the interior is written).
    fn pad_into(&self, img: &[f32], pad: &mut [f32]) {
        let (c, wp) = (self.cin, self.padded().1);
        for y in 0..self.h {
            let d = ((y + self.pad) * wp + self.pad) * c;
            pad[d..d + self.w * c].copy_from_slice(&img[y * self.w * c..(y + 1) * self.w * c]);
        }
    }

    /// Patch rows of `x.len() / in_len()` examples into `out` (one row per output position).
    ///
    /// Each example is first copied into a zero-padded image, so every kernel row `ky` of a
    /// patch is one in-bounds run of `k · c_in` neighbouring floats, copied with a length known
    /// at compile time for the networks' layers (no border tests, no `memcpy` call per run).
    pub fn im2col(&self, x: &[f32], out: &mut [f32]) {
        match self.k * self.cin {
            3 => self.im2col_runs::<3>(x, out),
            5 => self.im2col_runs::<5>(x, out),
            30 => self.im2col_runs::<30>(x, out),
            48 => self.im2col_runs::<48>(x, out),
            64 => self.im2col_runs::<64>(x, out),
            96 => self.im2col_runs::<96>(x, out),
            192 => self.im2col_runs::<192>(x, out),
            _ => self.im2col_runs::<0>(x, out),
        }
    }

    /// [`ConvGeo::im2col`] with runs of `L = k · c_in` floats (`L = 0`: any length).
    fn im2col_runs<const L: usize>(&self, x: &[f32], out: &mut [f32]) {
        let (k, kl, run) = (self.k, self.patch_len(), self.k * self.cin);
        let (hp, wp) = self.padded();
        let mut pad = vec![0f32; hp * wp * self.cin];
        let ne = x.len() / self.in_len();
        for e in 0..ne {
            self.pad_into(&x[e * self.in_len()..(e + 1) * self.in_len()], &mut pad);
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let r = (e * self.oh + oy) * self.ow + ox;
                    let row = &mut out[r * kl..(r + 1) * kl];
                    for ky in 0..k {
                        let s = ((oy * self.stride + ky) * wp + ox * self.stride) * self.cin;
                        let (dst, src) = (&mut row[ky * run..(ky + 1) * run], &pad[s..s + run]);
                        if L == 0 {
                            dst.copy_from_slice(src);
                        } else {
                            let d: &mut [f32; L] = dst.try_into().expect("runs of L floats");
                            *d = *<&[f32; L]>::try_from(src).expect("runs of L floats");
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`ConvGeo::im2col`]: adds every patch row's entries back onto the input
    /// positions they were read from (through a zero-padded image whose border is dropped).
    /// `dx` is overwritten.
    pub fn col2im(&self, d: &[f32], dx: &mut [f32]) {
        let (c, k, kl, run) = (self.cin, self.k, self.patch_len(), self.k * self.cin);
        let (hp, wp) = self.padded();
        let mut pad = vec![0f32; hp * wp * c];
        let ne = dx.len() / self.in_len();
        for e in 0..ne {
            pad.fill(0.0);
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let r = (e * self.oh + oy) * self.ow + ox;
                    let row = &d[r * kl..(r + 1) * kl];
                    for ky in 0..k {
                        let s = ((oy * self.stride + ky) * wp + ox * self.stride) * c;
                        let src = &row[ky * run..(ky + 1) * run];
                        for (a, b) in pad[s..s + run].iter_mut().zip(src) {
                            *a += b;
                        }
                    }
                }
            }
            let img = &mut dx[e * self.in_len()..(e + 1) * self.in_len()];
            for y in 0..self.h {
                let s = ((y + self.pad) * wp + self.pad) * c;
                img[y * self.w * c..(y + 1) * self.w * c].copy_from_slice(&pad[s..s + self.w * c]);
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
