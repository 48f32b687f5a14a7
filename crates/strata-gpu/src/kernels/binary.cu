// Binary (±1) matrix products on packed bits: C[i][j] = Σ_k a_ik b_jk for A (m x K) and B
// (n x K), both stored as rows of `kw` 32-bit words (bit set = +1, padding bits 0 in both, `kw`
// a multiple of 8 so that every row holds whole 256-bit mma steps).
//
// Two kernels compute the same integers:
// * xor_gemm, on the CUDA cores: C = K - 2 popc(a XOR b), the form of Hubara et al.'s kernel;
// * mma_and_gemm, on the tensor cores (sm_80 and newer): mma.sync m16n8k256 on b1 operands.
//   Hopper dropped the XOR b1 mma and keeps AND, so it uses
//   C = K - 2 (popc a + popc b) + 4 popc(a AND b), with popc a and popc b per row from
//   row_popcounts. Padding bits are 0 in both operands, so they count in neither form.

#define BLOCK 256

// Pack an m x k row-major f32 matrix into m rows of kw words: thread b of row blockIdx.y
// handles bit b; a warp's 32 bits form one word through a ballot, so bit j of word w is element
// 32w + j (the CPU packer's layout, its u64 words read as little-endian pairs of u32).
extern "C" __global__ void pack_signs(const float* __restrict__ x, int k, int kw,
                                      unsigned* __restrict__ out) {
    long row = blockIdx.y;
    int b = blockIdx.x * BLOCK + threadIdx.x;
    bool bit = b < k && x[row * k + b] >= 0.0f;
    unsigned word = __ballot_sync(0xffffffffu, bit);
    if ((threadIdx.x & 31) == 0 && b < kw * 32) out[row * kw + (b >> 5)] = word;
}

// Set bits per row.
extern "C" __global__ void row_popcounts(const unsigned* __restrict__ x, int rows, int kw,
                                         int* __restrict__ out) {
    int r = blockIdx.x * BLOCK + threadIdx.x;
    if (r >= rows) return;
    int s = 0;
    for (int w = 0; w < kw; ++w) s += __popc(x[(long)r * kw + w]);
    out[r] = s;
}

// --- CUDA-core kernel: 64 x 64 outputs per block of 256 threads, 4 x 4 per thread. ---------
#define XT 64
#define XK 32

extern "C" __global__ void __launch_bounds__(256) xor_gemm(
    const unsigned* __restrict__ a, const unsigned* __restrict__ b, int m, int n, int kw, int k,
    int* __restrict__ c) {
    // Word-major tiles, so that a warp reads 16 consecutive rows of B (no bank conflicts) and
    // one row of A (a broadcast).
    __shared__ unsigned as[XK][XT + 1];
    __shared__ unsigned bs[XK][XT + 1];
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int i0 = blockIdx.y * XT, j0 = blockIdx.x * XT;
    int acc[4][4] = {};
    for (int w0 = 0; w0 < kw; w0 += XK) {
        // 64 rows x 32 words per tile: 8 words per thread, consecutive threads on consecutive
        // words of a row (coalesced).
        for (int e = threadIdx.x; e < XT * XK; e += 256) {
            int r = e / XK, w = e % XK;
            int ga = i0 + r, gb = j0 + r, gw = w0 + w;
            as[w][r] = (ga < m && gw < kw) ? a[(long)ga * kw + gw] : 0u;
            bs[w][r] = (gb < n && gw < kw) ? b[(long)gb * kw + gw] : 0u;
        }
        __syncthreads();
#pragma unroll 8
        for (int w = 0; w < XK; ++w) {
            unsigned av[4], bv[4];
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                av[q] = as[w][ty + 16 * q];
                bv[q] = bs[w][tx + 16 * q];
            }
#pragma unroll
            for (int x = 0; x < 4; ++x)
#pragma unroll
                for (int y = 0; y < 4; ++y) acc[x][y] += __popc(av[x] ^ bv[y]);
        }
        __syncthreads();
    }
    for (int x = 0; x < 4; ++x) {
        int i = i0 + ty + 16 * x;
        if (i >= m) continue;
        for (int y = 0; y < 4; ++y) {
            int j = j0 + tx + 16 * y;
            // Tile rows past m or n were loaded as zeros against real rows, so only the
            // in-range outputs are meaningful.
            if (j < n) c[(long)i * n + j] = k - 2 * acc[x][y];
        }
    }
}

// --- Tensor-core kernel: 128 x 128 outputs per block of 8 warps (2 x 4), 64 x 32 per warp, ----
// --- 512 bits of K per shared-memory stage (two m16n8k256 steps). -----------------------------
#define MT 128
#define MK 16       // words per stage
#define MS (MK + 4) // padded row stride in words: fragment loads hit 32 distinct banks

__device__ __forceinline__ void mma_b1_and(int* c, unsigned a0, unsigned a1, unsigned a2,
                                           unsigned a3, unsigned b0, unsigned b1) {
#if defined(STRATA_CUDA_SIM)
    // tests/cudasim: the same instruction emulated on the host from the PTX ISA's layouts.
    sim::mma_m16n8k256_and_popc(c, a0, a1, a2, a3, b0, b1);
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

extern "C" __global__ void __launch_bounds__(256) mma_and_gemm(
    const unsigned* __restrict__ a, const unsigned* __restrict__ b,
    const int* __restrict__ pop_a, const int* __restrict__ pop_b, int m, int n, int kw, int k,
    int* __restrict__ c) {
    __shared__ __align__(16) unsigned as[MT * MS];
    __shared__ __align__(16) unsigned bs[MT * MS];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int g = lane >> 2, t = lane & 3; // mma groupID and thread-in-group
    int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    int i0 = blockIdx.y * MT, j0 = blockIdx.x * MT;
    int acc[4][4][4] = {}; // [m16 tile][n8 tile][fragment]
    for (int w0 = 0; w0 < kw; w0 += MK) {
        // 128 rows x 16 words per operand = 512 uint4; 2 per thread per operand. kw is a
        // multiple of 8, so a uint4 never straddles the end of a row.
        for (int e = threadIdx.x; e < MT * (MK / 4); e += 256) {
            int r = e / (MK / 4), q = (e % (MK / 4)) * 4;
            int gw = w0 + q;
            uint4 va = make_uint4(0, 0, 0, 0), vb = make_uint4(0, 0, 0, 0);
            if (i0 + r < m && gw < kw) va = *(const uint4*)(a + (long)(i0 + r) * kw + gw);
            if (j0 + r < n && gw < kw) vb = *(const uint4*)(b + (long)(j0 + r) * kw + gw);
            *(uint4*)(as + r * MS + q) = va;
            *(uint4*)(bs + r * MS + q) = vb;
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < MK; ks += 8) {
            unsigned bf[4][2];
#pragma unroll
            for (int y = 0; y < 4; ++y) {
                const unsigned* br = bs + (wn + 8 * y + g) * MS + ks;
                bf[y][0] = br[t];
                bf[y][1] = br[4 + t];
            }
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                const unsigned* r0 = as + (wm + 16 * x + g) * MS + ks;
                const unsigned* r1 = r0 + 8 * MS;
                unsigned a0 = r0[t], a1 = r1[t], a2 = r0[4 + t], a3 = r1[4 + t];
#pragma unroll
                for (int y = 0; y < 4; ++y) mma_b1_and(acc[x][y], a0, a1, a2, a3, bf[y][0], bf[y][1]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int x = 0; x < 4; ++x)
#pragma unroll
        for (int y = 0; y < 4; ++y)
#pragma unroll
            for (int f = 0; f < 4; ++f) {
                int i = i0 + wm + 16 * x + g + (f >= 2 ? 8 : 0);
                int j = j0 + wn + 8 * y + 2 * t + (f & 1);
                if (i < m && j < n)
                    c[(long)i * n + j] = k - 2 * (pop_a[i] + pop_b[j]) + 4 * acc[x][y][f];
            }
}
