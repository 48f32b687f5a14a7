// Kernels behind linear HSIC / CKA on the GPU. The products themselves are cuBLAS SGEMMs; these
// kernels do the memory-bound passes around them: centering, scaling, the diagonal and row-sum
// terms of the unbiased estimator, and the f64 reductions that turn a product into a scalar.
//
// Layout: a layer is an n x p row-major f32 matrix (example-major, as strata stores it). Every
// sum that ends in a scalar accumulates in double: a Frobenius norm runs over up to p^2 or n^2
// terms, and the CPU path it must match to 1e-5 relative does the same.

#define BLOCK 256

// Warp, then block reduction of a double; thread 0 of the block gets the total.
__device__ __forceinline__ double block_sum(double v) {
    __shared__ double warp_sums[BLOCK / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = (threadIdx.x < BLOCK / 32) ? warp_sums[threadIdx.x] : 0.0;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    }
    return v;
}

// Column sums in double. Grid: x over column blocks of BLOCK, y over row chunks of `chunk`
// rows; each thread sums one column over its chunk, then adds into `sums` atomically (row-major
// loads are coalesced across the threads of a warp: they read consecutive columns).
extern "C" __global__ void column_sums(const float* __restrict__ x, int n, int p, int chunk,
                                       double* __restrict__ sums) {
    int col = blockIdx.x * BLOCK + threadIdx.x;
    if (col >= p) return;
    long r0 = (long)blockIdx.y * chunk;
    long r1 = min((long)n, r0 + chunk);
    double s = 0.0;
    for (long r = r0; r < r1; ++r) s += (double)x[r * p + col];
    atomicAdd(&sums[col], s);
}

// Subtract the column means (sums / n, rounded to f32 like the CPU path) in place, and add the
// sum of squares of the centered values into `*sumsq` (one atomic per block). Grid-stride.
extern "C" __global__ void center_columns(float* __restrict__ x, long len, int p, int n,
                                          const double* __restrict__ sums,
                                          double* __restrict__ sumsq) {
    double acc = 0.0;
    for (long i = (long)blockIdx.x * BLOCK + threadIdx.x; i < len; i += (long)gridDim.x * BLOCK) {
        float mean = (float)(sums[i % p] / (double)n);
        float v = x[i] - mean;
        x[i] = v;
        acc += (double)v * (double)v;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) atomicAdd(sumsq, acc);
}

// x *= 1/rms, computed in double as on the CPU (1/rms overflows f32 for rms below ~3e-39).
extern "C" __global__ void scale(float* __restrict__ x, long len, double rms) {
    for (long i = (long)blockIdx.x * BLOCK + threadIdx.x; i < len; i += (long)gridDim.x * BLOCK)
        x[i] = (float)((double)x[i] / rms);
}

// Squared row norms (the diagonal of K = X Xᵀ) in double: one block per row.
extern "C" __global__ void row_sq_norms(const float* __restrict__ x, int p,
                                        double* __restrict__ out) {
    const float* row = x + (long)blockIdx.x * p;
    double acc = 0.0;
    for (int j = threadIdx.x; j < p; j += BLOCK) acc += (double)row[j] * (double)row[j];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

// r_i = x_i · c - d_i: the row sums of K̃ = X Xᵀ - diag for column sums c (double), one block
// per row.
extern "C" __global__ void row_dot_minus(const float* __restrict__ x, int p,
                                         const double* __restrict__ c,
                                         const double* __restrict__ d,
                                         double* __restrict__ out) {
    const float* row = x + (long)blockIdx.x * p;
    double acc = 0.0;
    for (int j = threadIdx.x; j < p; j += BLOCK) acc += (double)row[j] * c[j];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[blockIdx.x] = acc - d[blockIdx.x];
}

// Zero the diagonal of an n x n matrix and write its row sums (double): the K̃ and r = K̃1 of
// the unbiased estimator. One block per row.
extern "C" __global__ void zero_diag_row_sums(float* __restrict__ k, int n,
                                              double* __restrict__ out) {
    float* row = k + (long)blockIdx.x * n;
    if (threadIdx.x == 0) row[blockIdx.x] = 0.0f;
    __syncthreads();
    double acc = 0.0;
    for (int j = threadIdx.x; j < n; j += BLOCK) acc += (double)row[j];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

// Σ a_i b_i in double over `len` floats, into `*out` (one atomic per block). With a == b this
// is the squared Frobenius norm. Grid-stride.
extern "C" __global__ void dot(const float* __restrict__ a, const float* __restrict__ b,
                               long len, double* __restrict__ out) {
    double acc = 0.0;
    long stride = (long)gridDim.x * BLOCK;
    for (long i = (long)blockIdx.x * BLOCK + threadIdx.x; i < len; i += stride)
        acc += (double)a[i] * (double)b[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) atomicAdd(out, acc);
}
