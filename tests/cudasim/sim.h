// The CUDA C that strata's kernels use, for a host compiler: each launch runs block after block,
// and the threads of a block are fibers (ucontext) that switch only at __syncthreads and at the
// warp-collective operations (shuffles, ballots, mma.sync). Barriers are strict: a barrier that
// some threads of the block (or lanes of the warp) never reach is reported as an error, not
// skipped, so divergent synchronization in a kernel fails here as it may hang on a GPU.
//
// This is a test tool (tests/gpu-sim.sh), never part of a strata binary.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace sim {
struct dim3 {
    unsigned x, y, z;
};
extern dim3 grid_dim, block_dim, block_idx;
const dim3& thread_idx();
// Park the current fiber at a block-wide barrier or at a barrier of its warp.
void block_barrier();
void warp_barrier(unsigned mask);
int lane();
int warp();
// One 8-byte slot per lane and per warp for exchanges.
uint64_t* warp_slots(int warp);
[[noreturn]] void fail(const char* what);
// mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc, with the PTX ISA's fragment
// layouts (defined in fibers.cpp).
void mma_m16n8k256_and_popc(int* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                            unsigned b0, unsigned b1);

template <typename T>
T shfl_down(unsigned mask, T v, int offset) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t* s = warp_slots(warp());
    std::memcpy(&s[lane()], &v, sizeof(T));
    warp_barrier(mask);
    T r = v;
    int src = lane() + offset;
    if (src < 32) std::memcpy(&r, &s[src], sizeof(T));
    warp_barrier(mask);
    return r;
}

inline unsigned ballot(unsigned mask, bool p) {
    uint64_t* s = warp_slots(warp());
    s[lane()] = p ? 1 : 0;
    warp_barrier(mask);
    unsigned r = 0;
    for (int l = 0; l < 32; ++l) r |= (s[l] ? 1u : 0u) << l;
    warp_barrier(mask);
    return r;
}
}  // namespace sim

#define threadIdx (sim::thread_idx())
#define blockIdx (sim::block_idx)
#define blockDim (sim::block_dim)
#define gridDim (sim::grid_dim)
#define __global__
#define __device__
#define __host__
// Internal linkage: a static local of an inline (COMDAT) function could not share the
// cudasim_shared section with the kernels' own.
#define __forceinline__ static inline
// Blocks run one after another, so one static copy per kernel is per-block shared memory. All of
// it lies in one section, refilled with 0xff bytes before every block: a GPU's shared memory
// starts as garbage, not zeros, and not as the previous block left it.
#define __shared__ static __attribute__((section("cudasim_shared")))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __syncthreads() sim::block_barrier()
#define __shfl_down_sync(mask, v, o) sim::shfl_down((mask), (v), (o))
#define __ballot_sync(mask, p) sim::ballot((mask), (p))

// 16-byte aligned as on a GPU, so a misaligned vector load faults here too.
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
// Built with -ffp-contract=off, so these are single IEEE round-to-nearest operations, as the
// _rn intrinsics are on the GPU.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
template <typename T>
inline T min(T a, T b) { return b < a ? b : a; }
template <typename T>
inline T max(T a, T b) { return a < b ? b : a; }
// Fibers of one launch run on one host thread, one at a time: a plain add is atomic here.
inline double atomicAdd(double* p, double v) {
    double old = *p;
    *p = old + v;
    return old;
}
inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p = old + v;
    return old;
}
