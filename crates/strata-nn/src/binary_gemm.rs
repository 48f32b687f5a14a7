//! Binary matrix product on packed bits: `C[i][j] = K - 2 popcount(A_i XOR B_j)`.
//!
//! `A` is `m` rows and `B` is `n` rows (the columns of the right-hand matrix), each of `K` ±1
//! values packed 64 per word (bit set = +1, padding bits 0 in both). The kernel computes a 4 x 4
//! block of outputs per pass over the words so each loaded word is used four times, runs
//! blocks of rows in parallel, and uses the CPU's POPCNT instruction when it has one (detected
//! at run time: the default x86-64 target lacks it, and the software fallback is several times
//! slower).

use rayon::prelude::*;

/// Packed ±1 matrix: `rows` rows of `words` u64 each.
#[derive(Clone, Debug)]
pub struct BitMatrix {
    /// Number of rows (examples, or output units for a weight matrix).
    pub rows: usize,
    /// ±1 values per row (the inner dimension of the product).
    pub k: usize,
    /// u64 words per row: `ceil(k / 64)`.
    pub words: usize,
    /// `rows x words` words, row-major; bit `i % 64` of word `i / 64` is value `i` (1 = +1),
    /// padding bits 0.
    pub bits: Vec<u64>,
}

impl BitMatrix {
    /// Pack a row-major `rows x k` matrix of ±1 values (`>= 0` is +1).
    pub fn pack(values: &[f32], rows: usize, k: usize) -> Self {
        let words = k.div_ceil(64);
        let mut bits = vec![0u64; rows * words];
        for r in 0..rows {
            for (i, &v) in values[r * k..(r + 1) * k].iter().enumerate() {
                if v >= 0.0 {
                    bits[r * words + i / 64] |= 1u64 << (i % 64);
                }
            }
        }
        BitMatrix {
            rows,
            k,
            words,
            bits,
        }
    }

    fn row(&self, r: usize) -> &[u64] {
        &self.bits[r * self.words..(r + 1) * self.words]
    }
}

#[inline(always)]
fn block(a: &BitMatrix, b: &BitMatrix, i0: usize, j0: usize, out: &mut [[u32; 4]; 4]) {
    let ar: [&[u64]; 4] = std::array::from_fn(|d| a.row((i0 + d).min(a.rows - 1)));
    let br: [&[u64]; 4] = std::array::from_fn(|d| b.row((j0 + d).min(b.rows - 1)));
    let mut acc = [[0u32; 4]; 4];
    let words = a.words;
    let (ar, br) = (ar.map(|r| &r[..words]), br.map(|r| &r[..words]));
    for w in 0..words {
        let av = [ar[0][w], ar[1][w], ar[2][w], ar[3][w]];
        let bv = [br[0][w], br[1][w], br[2][w], br[3][w]];
        for x in 0..4 {
            for y in 0..4 {
                acc[x][y] += (av[x] ^ bv[y]).count_ones();
            }
        }
    }
    *out = acc;
}

#[inline(always)]
fn gemm_rows(a: &BitMatrix, b: &BitMatrix, i0: usize, c: &mut [i32]) {
    let n = b.rows;
    let k = a.k as i32;
    let rows = c.len() / n;
    let mut acc = [[0u32; 4]; 4];
    // Columns in tiles that keep a few rows of B hot in L1/L2.
    for jt in (0..n).step_by(64) {
        for j0 in (jt..(jt + 64).min(n)).step_by(4) {
            block(a, b, i0, j0, &mut acc);
            for (x, row) in acc.iter().enumerate().take(rows) {
                for (y, &mism) in row.iter().enumerate() {
                    if j0 + y < n {
                        c[x * n + j0 + y] = k - 2 * mism as i32;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn gemm_rows_popcnt(a: &BitMatrix, b: &BitMatrix, i0: usize, c: &mut [i32]) {
    gemm_rows(a, b, i0, c)
}

/// The same code compiled for AVX-512 with VPOPCNTQ: the compiler vectorizes the popcount over
/// 8 words per instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
unsafe fn gemm_rows_avx512(a: &BitMatrix, b: &BitMatrix, i0: usize, c: &mut [i32]) {
    gemm_rows(a, b, i0, c)
}

#[derive(Clone, Copy, PartialEq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Popcnt,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Kernel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            return Kernel::Popcnt;
        }
    }
    Kernel::Portable
}

/// Which kernel [`binary_gemm`] uses on this CPU: `avx512-vpopcntq`, `popcnt` or `portable`.
pub fn kernel_name() -> &'static str {
    match kernel() {
        Kernel::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Kernel::Popcnt => "popcnt",
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => "avx512-vpopcntq",
    }
}

/// `C = A ⊙ Bᵀ` over ±1 values: an `a.rows x b.rows` row-major matrix of exact integer dot
/// products. `a.k` must equal `b.k`.
pub fn binary_gemm(a: &BitMatrix, b: &BitMatrix) -> Vec<i32> {
    binary_gemm_with(a, b, kernel())
}

fn binary_gemm_with(a: &BitMatrix, b: &BitMatrix, kern: Kernel) -> Vec<i32> {
    assert_eq!(a.k, b.k, "inner dimensions differ");
    let (m, n) = (a.rows, b.rows);
    let mut c = vec![0i32; m * n];
    if m == 0 || n == 0 {
        return c;
    }
    c.par_chunks_mut(4 * n)
        .enumerate()
        .for_each(|(blk, chunk)| {
            let i0 = blk * 4;
            match kern {
                // SAFETY: `kernel()` checked that the CPU has every feature these functions enable.
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => unsafe { gemm_rows_avx512(a, b, i0, chunk) },
                #[cfg(target_arch = "x86_64")]
                Kernel::Popcnt => unsafe { gemm_rows_popcnt(a, b, i0, chunk) },
                Kernel::Portable => gemm_rows(a, b, i0, chunk),
            }
        });
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_data::rng::Rng;

    #[test]
    fn equals_the_naive_plus_minus_one_product_on_awkward_shapes() {
        let mut r = Rng::new(21);
        for (m, n, k) in [
            (1, 1, 1),
            (5, 7, 63),
            (9, 3, 64),
            (13, 70, 65),
            (4, 4, 200),
            (33, 65, 130),
        ] {
            let pm = |rows: usize, r: &mut Rng| -> Vec<f32> {
                (0..rows * k)
                    .map(|_| if r.below(2) == 1 { 1.0 } else { -1.0 })
                    .collect()
            };
            let (av, bv) = (pm(m, &mut r), pm(n, &mut r));
            let (pa, pb) = (BitMatrix::pack(&av, m, k), BitMatrix::pack(&bv, n, k));
            let c = binary_gemm(&pa, &pb);
            // The portable kernel must agree with whichever one this CPU selected.
            assert_eq!(c, binary_gemm_with(&pa, &pb, Kernel::Portable));
            for i in 0..m {
                for j in 0..n {
                    let naive: f32 = (0..k).map(|t| av[i * k + t] * bv[j * k + t]).sum();
                    assert_eq!(c[i * n + j], naive as i32, "({m},{n},{k}) at ({i},{j})");
                }
            }
        }
    }
}
