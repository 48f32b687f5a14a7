// The element-wise passes of a dense network between its products: batch norm in its evaluation
// form, the activation, and for the bit-packed engine the packing of signs into words.
//
// Batch norm is `(z - mean) * scale + beta` with every operation rounded on its own (the _rn
// intrinsics, which NVCC and NVRTC never fuse into a multiply-add): the CPU engines do exactly
// these three f32 operations, so where the products are exact (integers, as in w1a1 networks)
// the GPU's outputs equal the CPU's bit for bit.
//
// Layout: row-major `rows x out` matrices; `len = rows * out`. Loops are grid-stride, so any
// grid covers any size.

#define BLOCK 256

__device__ __forceinline__ float batch_norm(float z, float mean, float scale, float beta) {
    return __fadd_rn(__fmul_rn(__fsub_rn(z, mean), scale), beta);
}

// Activation modes, as strata-nn's quantize_activations forward values:
//   1 ReLU (float networks), 2 sign (1 bit: +1 where y >= 0, else -1),
//   3 k bits: clamp to [0, 1], then round(c * steps) * unit (steps = 2^k - 1, unit = 1/steps:
//     the two constants the CPU uses, passed in so both round the same).
__device__ __forceinline__ float activation(float y, int mode, float steps, float unit) {
    switch (mode) {
    case 1: return fmaxf(y, 0.0f);
    case 2: return y >= 0.0f ? 1.0f : -1.0f;
    case 3: {
        float c = fminf(fmaxf(y, 0.0f), 1.0f);
        return __fmul_rn(roundf(__fmul_rn(c, steps)), unit);
    }
    default: return y;  // not used: the logits go through bn_logits
    }
}

// y = batch norm of z (what the network's `pre` records), a = activation of y (its `post`).
extern "C" __global__ void bn_act(const float* __restrict__ z, long len, int out,
                                  const float* __restrict__ mean, const float* __restrict__ scale,
                                  const float* __restrict__ beta, int mode, float steps,
                                  float unit, float* __restrict__ y, float* __restrict__ a) {
    for (long i = (long)blockIdx.x * BLOCK + threadIdx.x; i < len; i += (long)gridDim.x * BLOCK) {
        int j = (int)(i % out);
        float v = batch_norm(z[i], mean[j], scale[j], beta[j]);
        y[i] = v;
        a[i] = activation(v, mode, steps, unit);
    }
}

// The logits: batch norm alone, of f32 sums (float engine) or integer sums (packed engine).
template <typename T>
__device__ __forceinline__ void bn_logits(const T* __restrict__ z, long len, int out,
                                          const float* __restrict__ mean,
                                          const float* __restrict__ scale,
                                          const float* __restrict__ beta, float* __restrict__ y) {
    for (long i = (long)blockIdx.x * BLOCK + threadIdx.x; i < len; i += (long)gridDim.x * BLOCK) {
        int j = (int)(i % out);
        y[i] = batch_norm((float)z[i], mean[j], scale[j], beta[j]);
    }
}

extern "C" __global__ void bn_logits_f32(const float* __restrict__ z, long len, int out,
                                         const float* __restrict__ mean,
                                         const float* __restrict__ scale,
                                         const float* __restrict__ beta, float* __restrict__ y) {
    bn_logits(z, len, out, mean, scale, beta, y);
}

extern "C" __global__ void bn_logits_i32(const int* __restrict__ z, long len, int out,
                                         const float* __restrict__ mean,
                                         const float* __restrict__ scale,
                                         const float* __restrict__ beta, float* __restrict__ y) {
    bn_logits(z, len, out, mean, scale, beta, y);
}

// Batch norm, sign and packing in one pass: word w of row r holds bit b set where unit
// 32 w + b normalizes to >= 0 (binary.cu's layout; padding bits past `out` are 0). One thread
// per word, so there is no atomic and every word, padding words included, is written.
template <typename T>
__device__ __forceinline__ void bn_sign_pack(const T* __restrict__ z, int rows, int out,
                                             const float* __restrict__ mean,
                                             const float* __restrict__ scale,
                                             const float* __restrict__ beta, int kw,
                                             unsigned* __restrict__ words) {
    long total = (long)rows * kw;
    for (long e = (long)blockIdx.x * BLOCK + threadIdx.x; e < total;
         e += (long)gridDim.x * BLOCK) {
        long r = e / kw;
        int w = (int)(e % kw);
        unsigned word = 0u;
        for (int b = 0; b < 32; ++b) {
            int j = w * 32 + b;
            if (j < out &&
                batch_norm((float)z[r * out + j], mean[j], scale[j], beta[j]) >= 0.0f) {
                word |= 1u << b;
            }
        }
        words[e] = word;
    }
}

// The first layer's sums (exact integers held in f32, from cuBLAS).
extern "C" __global__ void bn_sign_pack_f32(const float* __restrict__ z, int rows, int out,
                                            const float* __restrict__ mean,
                                            const float* __restrict__ scale,
                                            const float* __restrict__ beta, int kw,
                                            unsigned* __restrict__ words) {
    bn_sign_pack(z, rows, out, mean, scale, beta, kw, words);
}

// A binary layer's sums (binary.cu's GEMM output).
extern "C" __global__ void bn_sign_pack_i32(const int* __restrict__ z, int rows, int out,
                                            const float* __restrict__ mean,
                                            const float* __restrict__ scale,
                                            const float* __restrict__ beta, int kw,
                                            unsigned* __restrict__ words) {
    bn_sign_pack(z, rows, out, mean, scale, beta, kw, words);
}
