// Runs a grid: blocks one after another, each block's threads as fibers on this host thread.
// A fiber runs until it reaches a barrier or returns; when every fiber is parked, complete
// barriers are released (a warp's when all 32 lanes wait, the block's when every thread does).
// A barrier that can never complete is an error: see sim.h.
//
// Fibers switch with a few instructions of x86-64 assembly (callee-saved registers, the stack
// pointer, and the SSE and x87 control words): glibc's swapcontext makes a system call per switch,
// which made it three quarters of the emulator's time.
#include "sim.h"
#include "fibers.h"

#include <cstdio>
#include <cstdlib>
#include <sys/mman.h>
#include <utility>
#include <vector>

namespace sim {
dim3 grid_dim, block_dim, block_idx;

namespace {
enum State { READY, AT_BLOCK, AT_WARP, DONE };
struct Fiber {
    void* sp;
    dim3 tid;
    int lane, warp;
    State state;
    unsigned mask;
};
constexpr size_t STACK = 64 * 1024;
constexpr int MAX_THREADS = 1024;
std::vector<Fiber> fibers(MAX_THREADS);
char* stacks = nullptr;  // mapped once, touched only as deep as fibers go
int current = -1;
void* scheduler = nullptr;
const std::function<void()>* body = nullptr;
const char* kernel_name = "?";
uint64_t slots[MAX_THREADS / 32][32];

extern "C" void sim_switch(void** save, void* to);
asm(R"(
    .text
    .globl sim_switch
    .hidden sim_switch
    .type sim_switch, @function
sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size sim_switch, .-sim_switch
)");

[[noreturn]] void entry() {
    (*body)();
    Fiber& f = fibers[current];
    f.state = DONE;
    sim_switch(&f.sp, scheduler);
    __builtin_unreachable();  // a finished fiber is never resumed
}

// A stack that sim_switch "returns" into entry() from: the saved registers (zero), the control
// words of this thread, and entry's address where the return address goes, aligned as a call.
void* fresh_stack(char* lo, size_t size) {
    uintptr_t top = ((uintptr_t)(lo + size)) & ~(uintptr_t)15;
    uint64_t* sp = (uint64_t*)(top - 72);
    std::memset(sp, 0, 72);
    uint32_t mxcsr;
    uint16_t fpucw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    std::memcpy((char*)sp, &mxcsr, 4);
    std::memcpy((char*)sp + 4, &fpucw, 2);
    sp[7] = (uint64_t)(uintptr_t)&entry;  // at top - 16: after `ret`, rsp = top - 8
    return sp;
}

void park(State s, unsigned mask) {
    Fiber& f = fibers[current];
    f.state = s;
    f.mask = mask;
    sim_switch(&f.sp, scheduler);
}

extern "C" char __start_cudasim_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_cudasim_shared[] __attribute__((weak, visibility("hidden")));
uint64_t order_seed = 0, order_state = 0;

uint64_t next_random() {  // splitmix64
    uint64_t z = (order_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// 0..n-1 in index order, or shuffled when an order seed is set.
std::vector<unsigned> order(unsigned n) {
    std::vector<unsigned> v(n);
    for (unsigned i = 0; i < n; ++i) v[i] = i;
    if (order_seed)
        for (unsigned i = n; i > 1; --i) std::swap(v[i - 1], v[next_random() % i]);
    return v;
}

void run_block(int n) {
    if (__start_cudasim_shared && __stop_cudasim_shared)
        std::memset(__start_cudasim_shared, 0xff, (size_t)(__stop_cudasim_shared - __start_cudasim_shared));
    std::vector<unsigned> turn = order((unsigned)n);
    for (int i = 0; i < n; ++i) {
        Fiber& f = fibers[i];
        f.tid = {i % block_dim.x, (i / block_dim.x) % block_dim.y, i / (block_dim.x * block_dim.y)};
        f.lane = i & 31;
        f.warp = i >> 5;
        f.state = READY;
        f.sp = fresh_stack(stacks + (size_t)i * STACK, STACK);
    }
    int warps = (n + 31) / 32;
    for (;;) {
        for (unsigned i : turn) {
            if (fibers[i].state != READY) continue;
            current = (int)i;
            sim_switch(&scheduler, fibers[i].sp);
        }
        current = -1;
        // Everyone is parked or done. Release what can be released.
        int done = 0, at_block = 0;
        bool released = false;
        for (int i = 0; i < n; ++i) {
            done += fibers[i].state == DONE;
            at_block += fibers[i].state == AT_BLOCK;
        }
        if (done == n) return;
        for (int w = 0; w < warps; ++w) {
            int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n, waiting = 0;
            for (int i = lo; i < hi; ++i) waiting += fibers[i].state == AT_WARP;
            if (waiting == 0) continue;
            if (waiting != hi - lo) continue;  // decided below if nothing else can move
            if (hi - lo != 32) fail("warp-collective operation in a partial warp");
            for (int i = lo; i < hi; ++i) {
                if (fibers[i].mask != 0xffffffffu)
                    fail("warp-collective operation with a mask other than 0xffffffff");
                fibers[i].state = READY;
            }
            released = true;
        }
        if (released) continue;
        if (at_block == n) {
            for (int i = 0; i < n; ++i) fibers[i].state = READY;
            continue;
        }
        if (at_block > 0 && done > 0) fail("__syncthreads() after some threads of the block returned");
        fail("deadlock: the threads of a block wait at barriers that cannot all complete");
    }
}
}  // namespace

const dim3& thread_idx() {
    if (current < 0) fail("threadIdx read outside a kernel");
    return fibers[current].tid;
}
int lane() { return fibers[current].lane; }
int warp() { return fibers[current].warp; }
uint64_t* warp_slots(int w) { return slots[w]; }
void block_barrier() { park(AT_BLOCK, 0); }
void warp_barrier(unsigned mask) { park(AT_WARP, mask); }

void fail(const char* what) {
    std::fprintf(stderr, "cudasim: kernel %s, block (%u,%u,%u): %s\n", kernel_name, block_idx.x,
                 block_idx.y, block_idx.z, what);
    std::fflush(stderr);
    std::abort();
}

void set_order_seed(uint64_t seed) {
    order_seed = seed;
    order_state = seed;
}

const char* running_kernel() { return current >= 0 || body ? kernel_name : nullptr; }

void run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& f) {
    int n = (int)(block.x * block.y * block.z);
    kernel_name = name;
    if (n <= 0 || n > MAX_THREADS) fail("block size outside 1..1024 threads");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 2147483647u)
        fail("grid dimensions outside the limits of a CUDA launch");
    if (!stacks) {
        void* m = mmap(nullptr, (size_t)MAX_THREADS * STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) fail("cannot map fiber stacks");
        stacks = (char*)m;
    }
    grid_dim = grid;
    block_dim = block;
    body = &f;
    uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    std::vector<unsigned> shuffled;  // only when shuffling, and only grids that fit in memory
    if (order_seed && blocks <= (1u << 24)) shuffled = order((unsigned)blocks);
    for (uint64_t b = 0; b < blocks; ++b) {
        uint64_t e = shuffled.empty() ? b : shuffled[b];
        block_idx = {(unsigned)(e % grid.x), (unsigned)(e / grid.x % grid.y),
                     (unsigned)(e / ((uint64_t)grid.x * grid.y))};
        run_block(n);
    }
    body = nullptr;
}

// The fragments of m16n8k256 b1 (PTX ISA, "Matrix Fragments for mma.m16n8k256"), with
// g = lane / 4 and t = lane % 4:
//   A (16 x 256, row-major): a0 = row g, K 32t..32t+31; a1 = row g+8, same K;
//                            a2 = row g, K 128+32t..; a3 = row g+8, K 128+32t..
//   B (256 x 8, column-major): b0 = column g, K 32t..32t+31; b1 = column g, K 128+32t..
//   C, D (16 x 8): c0, c1 = row g, columns 2t, 2t+1; c2, c3 = row g+8, columns 2t, 2t+1
// and D = C + popc(A AND B) over K. Bit j of a register is element 32r + j of its K range.
void mma_m16n8k256_and_popc(int* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                            unsigned b0, unsigned b1) {
    // Lay out the whole warp's operands as A[16][8 words] and B[8 columns][8 words].
    uint64_t* s = warp_slots(warp());
    int l = lane();
    s[l] = (uint64_t)a0 | (uint64_t)a1 << 32;
    warp_barrier(0xffffffffu);
    unsigned A[16][8] = {}, B[8][8] = {};
    for (int q = 0; q < 32; ++q) {
        int g = q >> 2, t = q & 3;
        A[g][t] = (unsigned)s[q];
        A[g + 8][t] = (unsigned)(s[q] >> 32);
    }
    warp_barrier(0xffffffffu);
    s[l] = (uint64_t)a2 | (uint64_t)a3 << 32;
    warp_barrier(0xffffffffu);
    for (int q = 0; q < 32; ++q) {
        int g = q >> 2, t = q & 3;
        A[g][4 + t] = (unsigned)s[q];
        A[g + 8][4 + t] = (unsigned)(s[q] >> 32);
    }
    warp_barrier(0xffffffffu);
    s[l] = (uint64_t)b0 | (uint64_t)b1 << 32;
    warp_barrier(0xffffffffu);
    for (int q = 0; q < 32; ++q) {
        int g = q >> 2, t = q & 3;
        B[g][t] = (unsigned)s[q];
        B[g][4 + t] = (unsigned)(s[q] >> 32);
    }
    warp_barrier(0xffffffffu);
    int g = l >> 2, t = l & 3;
    for (int f = 0; f < 4; ++f) {
        int row = g + (f >= 2 ? 8 : 0), col = 2 * t + (f & 1);
        int sum = 0;
        for (int w = 0; w < 8; ++w) sum += __builtin_popcount(A[row][w] & B[col][w]);
        c[f] += sum;
    }
}
}  // namespace sim
