// cuBLAS's SGEMM for the emulated driver (driver.cpp): column-major C = alpha op(A) op(B) +
// beta C as cuBLAS documents it, with its argument checks, queued on the handle's stream. Sums
// run in f32 as on a GPU, split over K into three partial sums added at the end (an order unlike
// the CPU's), so tolerances are tested against f32 rounding of the size a GPU gives; a product of
// small integers stays exact. With TF32 math on, inputs are first rounded to TF32's 10-bit
// mantissa, as tensor cores do.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdlib>
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
enum : int { OK = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7 };

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

// Elements a column-major `rows x cols` operand with leading dimension `ld` spans.
size_t span(int rows, int cols, int ld) {
    return rows == 0 || cols == 0 ? 0 : (size_t)ld * (size_t)(cols - 1) + (size_t)rows;
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
    ((Handle*)h)->math = mode;  // TF32 is not emulated: every product is full f32 (or better)
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
    // The checks cuBLAS documents for SGEMM.
    int a_rows = ta == 0 ? m : k, a_cols = ta == 0 ? k : m;
    int b_rows = tb == 0 ? k : n, b_cols = tb == 0 ? n : k;
    if (ta < 0 || ta > 2 || tb < 0 || tb > 2 || m < 0 || n < 0 || k < 0 ||
        lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
        ldc < (m > 1 ? m : 1))
        return INVALID_VALUE;
    std::lock_guard<std::recursive_mutex> guard(cudasim::lock());
    if (!cudasim::device_memory(a, span(a_rows, a_cols, lda) * 4) ||
        !cudasim::device_memory(b, span(b_rows, b_cols, ldb) * 4) ||
        !cudasim::device_memory(c, span(m, n, ldc) * 4)) {
        std::fprintf(stderr, "cudasim: cublasSgemm: an operand is not live device memory of the "
                             "extent its dimensions and leading dimension describe\n");
        return INVALID_VALUE;
    }
    float al = *alpha, be = *beta;  // host pointer mode: read at the call
    bool tf32 = ((Handle*)h)->math == 3;  // CUBLAS_TF32_TENSOR_OP_MATH
    cudasim::enqueue_on(((Handle*)h)->stream, [=] {
        auto in = [tf32](float v) { return tf32 ? to_tf32(v) : v; };
        // op(A) row by row, so that every dot product below reads memory in order.
        std::vector<float> rows((size_t)m * (size_t)k);
        for (int i = 0; i < m; ++i)
            for (int l = 0; l < k; ++l)
                rows[(size_t)i * k + l] =
                    in(ta == 0 ? a[(size_t)i + (size_t)l * lda] : a[(size_t)l + (size_t)i * lda]);
        const int parts = 3;
        std::vector<float> col((size_t)k);
        for (int j = 0; j < n; ++j) {
            for (int l = 0; l < k; ++l)
                col[(size_t)l] = in(tb == 0 ? b[(size_t)l + (size_t)j * ldb] : b[(size_t)j + (size_t)l * ldb]);
            for (int i = 0; i < m; ++i) {
                const float* ar = rows.data() + (size_t)i * k;
                float s = 0.0f;
                for (int q = 0; q < parts; ++q) {
                    float part = 0.0f;
                    for (int l = q * k / parts; l < (q + 1) * k / parts; ++l)
                        part += ar[l] * col[(size_t)l];
                    s += part;
                }
                float* out = c + (size_t)i + (size_t)j * ldc;
                *out = be == 0.0f ? al * s : al * s + be * *out;
            }
        }
    });
    return OK;
}
}  // extern "C"
