// cuBLAS's SGEMM for the emulated driver (driver.cpp): column-major C = alpha op(A) op(B) +
// beta C as cuBLAS documents it, with its argument checks, queued on the handle's stream. Sums
// run in f32 as on a GPU, split over K into three partial sums added at the end (an order unlike
// the CPU's), so tolerances are tested against f32 rounding of the size a GPU gives; a product of
// small integers stays exact. With TF32 math on, inputs are first rounded to TF32's 10-bit
// mantissa, as tensor cores do. cublasGemmEx is there for FP16 GEMM (FP16 operands and result,
// f32 sums: the benches' tensor-core baseline), so that path runs too.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <cstdio>
#include <limits>
#include <functional>
#include <mutex>
#include <vector>

namespace cudasim {
void enqueue_on(void* stream, std::function<void()> f);
bool device_memory(const void* p, size_t n);
std::recursive_mutex& lock();
}  // namespace cudasim

namespace {
struct Handle {
    void* stream = nullptr;
    int math = 0;
};
enum : int { OK = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, NOT_SUPPORTED = 15 };
enum : int { CUDA_R_16F = 2, COMPUTE_32F = 68 };

// Round to TF32 (1 sign, 8 exponent, 10 mantissa bits), to nearest, ties to even.
float to_tf32(float v) {
    if (!std::isfinite(v)) return v;
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u += 0xfffu + ((u >> 13) & 1u);
    u &= ~0x1fffu;
    std::memcpy(&v, &u, 4);
    return v;
}

// IEEE binary16 to binary32 (exact).
float half_to_float(uint16_t h) {
    float sign = (h & 0x8000u) ? -1.0f : 1.0f;
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) return sign * std::ldexp((float)man, -24);
    if (exp == 31) return man ? std::numeric_limits<float>::quiet_NaN() : sign * INFINITY;
    return sign * std::ldexp((float)(man | 0x400), exp - 25);
}

// binary32 to binary16, to nearest, ties to even; past 65504 (after rounding) to infinity.
uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00u;    // NaN
    if (ax >= 0x477ff000u) return sign | 0x7c00u;   // rounds to infinity (65520 and up)
    if (ax < 0x38800000u) {                         // below 2^-14: subnormal, units of 2^-24
        float v;
        std::memcpy(&v, &ax, 4);
        return sign | (uint16_t)std::nearbyint(v * 16777216.0f);  // exact scaling; ties to even
    }
    uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3ffu);
    uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry moves the exponent up
    return sign | (uint16_t)h;
}

// Elements a column-major `rows x cols` operand with leading dimension `ld` spans.
size_t span(int rows, int cols, int ld) {
    return rows == 0 || cols == 0 ? 0 : (size_t)ld * (size_t)(cols - 1) + (size_t)rows;
}

enum Elem { F32, F16 };

float load(Elem e, const void* p, size_t i) {
    return e == F32 ? ((const float*)p)[i] : half_to_float(((const uint16_t*)p)[i]);
}
void store(Elem e, void* p, size_t i, float v) {
    if (e == F32)
        ((float*)p)[i] = v;
    else
        ((uint16_t*)p)[i] = float_to_half(v);
}

// Column-major C = alpha op(A) op(B) + beta C with cuBLAS's documented checks, queued on the
// handle's stream.
int gemm(Handle* h, const char* name, Elem e, int ta, int tb, int m, int n, int k, float al,
         const void* a, int lda, const void* b, int ldb, float be, void* c, int ldc) {
    int a_rows = ta == 0 ? m : k, a_cols = ta == 0 ? k : m;
    int b_rows = tb == 0 ? k : n, b_cols = tb == 0 ? n : k;
    if (ta < 0 || ta > 2 || tb < 0 || tb > 2 || m < 0 || n < 0 || k < 0 ||
        lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
        ldc < (m > 1 ? m : 1))
        return INVALID_VALUE;
    size_t bytes = e == F32 ? 4 : 2;
    std::lock_guard<std::recursive_mutex> guard(cudasim::lock());
    if (!cudasim::device_memory(a, span(a_rows, a_cols, lda) * bytes) ||
        !cudasim::device_memory(b, span(b_rows, b_cols, ldb) * bytes) ||
        !cudasim::device_memory(c, span(m, n, ldc) * bytes)) {
        std::fprintf(stderr, "cudasim: %s: an operand is not live device memory of the extent "
                             "its dimensions and leading dimension describe\n", name);
        return INVALID_VALUE;
    }
    // TF32 rounding applies to f32 inputs under CUBLAS_TF32_TENSOR_OP_MATH.
    bool tf32 = e == F32 && h->math == 3;
    cudasim::enqueue_on(h->stream, [=] {
        auto in = [tf32](float v) { return tf32 ? to_tf32(v) : v; };
        // op(A) row by row, so that every dot product below reads memory in order.
        std::vector<float> rows((size_t)m * (size_t)k);
        for (int i = 0; i < m; ++i)
            for (int l = 0; l < k; ++l)
                rows[(size_t)i * k + l] = in(load(
                    e, a, ta == 0 ? (size_t)i + (size_t)l * lda : (size_t)l + (size_t)i * lda));
        const int parts = 3;
        std::vector<float> col((size_t)k);
        for (int j = 0; j < n; ++j) {
            for (int l = 0; l < k; ++l)
                col[(size_t)l] = in(load(
                    e, b, tb == 0 ? (size_t)l + (size_t)j * ldb : (size_t)j + (size_t)l * ldb));
            for (int i = 0; i < m; ++i) {
                const float* ar = rows.data() + (size_t)i * k;
                float s = 0.0f;
                for (int q = 0; q < parts; ++q) {
                    float part = 0.0f;
                    for (int l = q * k / parts; l < (q + 1) * k / parts; ++l)
                        part += ar[l] * col[(size_t)l];
                    s += part;
                }
                size_t o = (size_t)i + (size_t)j * ldc;
                store(e, c, o, be == 0.0f ? al * s : al * s + be * load(e, c, o));
            }
        }
    });
    return OK;
}
}  // namespace

extern "C" {
int cublasCreate_v2(void** h) {
    *h = new Handle;
    return OK;
}
int cublasDestroy_v2(void* h) {
    delete (Handle*)h;
    return OK;
}
int cublasSetStream_v2(void* h, void* s) {
    ((Handle*)h)->stream = s;
    return OK;
}
int cublasGetStream_v2(void* h, void** s) {
    *s = ((Handle*)h)->stream;
    return OK;
}
int cublasSetMathMode(void* h, int mode) {
    ((Handle*)h)->math = mode;  // 3, CUBLAS_TF32_TENSOR_OP_MATH: SGEMM rounds inputs to TF32
    return OK;
}
int cublasGetMathMode(void* h, int* mode) {
    *mode = ((Handle*)h)->math;
    return OK;
}
int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha,
                   const float* a, int lda, const float* b, int ldb, const float* beta, float* c,
                   int ldc) {
    if (!h) return NOT_INITIALIZED;
    return gemm((Handle*)h, "cublasSgemm", F32, ta, tb, m, n, k, *alpha, a, lda, b, ldb, *beta, c,
                ldc);
}
// cublasGemmEx as cudarc's FP16 GEMM calls it: FP16 operands and result, FP32 compute and
// scalars. Any other combination is refused, as a cuBLAS without it would.
int cublasGemmEx(void* h, int ta, int tb, int m, int n, int k, const void* alpha, const void* a,
                 int atype, int lda, const void* b, int btype, int ldb, const void* beta, void* c,
                 int ctype, int ldc, int compute, int /*algo*/) {
    if (!h) return NOT_INITIALIZED;
    if (atype != CUDA_R_16F || btype != CUDA_R_16F || ctype != CUDA_R_16F ||
        compute != COMPUTE_32F)
        return NOT_SUPPORTED;
    return gemm((Handle*)h, "cublasGemmEx", F16, ta, tb, m, n, k, *(const float*)alpha, a, lda,
                b, ldb, *(const float*)beta, c, ldc);
}
}  // extern "C"
