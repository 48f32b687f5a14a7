// A CUDA driver (libcuda) and cuBLAS's GEMMs (cublas.cpp), emulated on the host, so that strata's whole GPU
// path — the Rust host code through cudarc, NVRTC's real compilation, launch configurations,
// argument lists, streams and events, and the kernels themselves — runs on a machine without a
// GPU. tests/gpu-sim.sh builds it and puts it on LD_LIBRARY_PATH; nothing else loads it.
//
// What it checks on top of running the kernels (fibers.cpp):
// * Streams are queues, run in an order set by STRATA_CUDASIM_SCHEDULE: `lazy` (work runs only
//   when something waits for it), `eager` (at once), `random:SEED` (random prefixes of random
//   streams after every call). Work that is read before an event says it was written, or
//   overwritten while a queued kernel still needs it, gives different results under different
//   schedules.
// * Device memory ends at a guard page and starts filled with 0xff bytes (NaN, -1); freed memory
//   is made inaccessible, never reused. Out-of-bounds and use-after-free accesses fault
//   and are reported with the kernel's name.
// * Kernel pointer arguments must lie in live device allocations; launches must fit CUDA's limits;
//   a function must be present in the cubin NVRTC produced; SGEMM's leading dimensions and
//   operand extents are checked as cuBLAS documents them.
#include "fibers.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <sys/mman.h>
#include <tuple>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

#include "binary.cu"
#include "gram.cu"
#include "mlp.cu"

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
enum : int {
    SUCCESS = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    NOT_INITIALIZED = 3,
    INVALID_DEVICE = 101,
    INVALID_IMAGE = 200,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
};

namespace {
std::recursive_mutex mu;
#define LOCK std::lock_guard<std::recursive_mutex> guard(mu)

// --- streams ---------------------------------------------------------------------------------
struct Op {
    uint64_t seq;
    std::function<void()> run;
};
struct Stream {
    std::deque<Op> queue;
    uint64_t next = 1;
};
struct Event {
    Stream* stream = nullptr;
    uint64_t seq = 0;
};
Stream null_stream;
std::vector<Stream*> streams{&null_stream};

Stream* S(void* s) { return s ? (Stream*)s : &null_stream; }

void drain(Stream* s, uint64_t upto) {
    while (!s->queue.empty() && s->queue.front().seq <= upto) {
        Op op = std::move(s->queue.front());
        s->queue.pop_front();
        op.run();
    }
}
void drain_all() {
    for (bool more = true; more;) {
        more = false;
        for (Stream* s : streams)
            if (!s->queue.empty()) {
                drain(s, UINT64_MAX);
                more = true;
            }
    }
}

// STRATA_CUDASIM_IGNORE_WAITS=1 drops every cross-stream wait: the self-test that shows a
// missing wait gives wrong results under the lazy order.
bool ignore_waits = false;
// STRATA_CUDASIM_IGNORE_HOST_WAITS=1 makes cuEventSynchronize return at once: the self-test that
// shows a host refilling a pinned buffer too early gives wrong uploads.
bool ignore_host_waits = false;

enum class Schedule { Lazy, Eager, Random };
Schedule schedule = Schedule::Lazy;
std::mt19937_64 rng;

void read_schedule() {
    static bool done = false;
    if (done) return;
    done = true;
    const char* v = std::getenv("STRATA_CUDASIM_SCHEDULE");
    std::string s = v ? v : "lazy";
    const char* iw = std::getenv("STRATA_CUDASIM_IGNORE_WAITS");
    ignore_waits = iw && std::string(iw) == "1";
    const char* ihw = std::getenv("STRATA_CUDASIM_IGNORE_HOST_WAITS");
    ignore_host_waits = ihw && std::string(ihw) == "1";
    if (s == "lazy") schedule = Schedule::Lazy;
    else if (s == "eager") schedule = Schedule::Eager;
    else if (s.rfind("random:", 0) == 0) {
        schedule = Schedule::Random;
        rng.seed(std::stoull(s.substr(7)));
        // Threads and blocks in random orders too.
        sim::set_order_seed(std::stoull(s.substr(7)) * 2 + 1);
    } else {
        std::fprintf(stderr, "cudasim: STRATA_CUDASIM_SCHEDULE must be lazy, eager or random:SEED\n");
        std::exit(2);
    }
}

uint64_t enqueue(Stream* s, std::function<void()> f) {
    uint64_t seq = s->next++;
    s->queue.push_back({seq, std::move(f)});
    if (schedule == Schedule::Eager) {
        drain(s, UINT64_MAX);
    } else if (schedule == Schedule::Random && rng() % 2) {
        Stream* r = streams[rng() % streams.size()];
        if (!r->queue.empty()) drain(r, r->queue.front().seq + rng() % r->queue.size());
    }
    return seq;
}

// --- memory ----------------------------------------------------------------------------------
struct Alloc {
    char* base;
    size_t mapped, size;
    bool live;
};
std::map<uintptr_t, Alloc> allocs;  // by start of the user region
size_t in_use = 0;
std::vector<std::pair<uintptr_t, size_t>> pinned;
const size_t TOTAL = 80ull << 30, PAGE = 4096;

// Whether [p, p+n) lies in one live allocation.
bool device_range(uintptr_t p, size_t n) {
    auto it = allocs.upper_bound(p);
    if (it == allocs.begin()) return false;
    --it;
    return it->second.live && p >= it->first && p + n <= it->first + it->second.size;
}
bool is_pinned(const void* p, size_t n) {
    for (auto& r : pinned)
        if ((uintptr_t)p >= r.first && (uintptr_t)p + n <= r.first + r.second) return true;
    return false;
}

void on_fault(int, siginfo_t* info, void*) {
    char msg[256];
    const char* k = sim::running_kernel();
    int len = std::snprintf(msg, sizeof msg,
                            "cudasim: invalid memory access at %p %s%s (out of bounds or freed)\n",
                            info->si_addr, k ? "in kernel " : "outside kernels", k ? k : "");
    if (len > 0) (void)!write(2, msg, (size_t)len);
    _exit(134);
}
void install_fault_handler() {
    static bool done = false;
    if (done) return;
    done = true;
    static char alt[1 << 16];
    stack_t ss{};
    ss.ss_sp = alt;
    ss.ss_size = sizeof alt;
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
}

CUdeviceptr device_alloc(size_t size) {
    // The allocation ends where the guard page starts, so reading one element past its end
    // faults. (CUDA aligns allocations to 256 bytes; here the start is aligned to the largest
    // power of two dividing the size, which is all the kernels' loads need: f32, f64, and uint4
    // only on rows of 8-word multiples.)
    size_t user = size;
    size_t mapped = ((user + PAGE - 1) / PAGE) * PAGE + PAGE;
    void* m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 0;
    char* base = (char*)m;
    mprotect(base + mapped - PAGE, PAGE, PROT_NONE);
    char* start = base + mapped - PAGE - user;
    std::memset(start, 0xff, user);  // what a kernel reads before anyone writes
    allocs[(uintptr_t)start] = {base, mapped, size, true};
    in_use += size;
    return (CUdeviceptr)(uintptr_t)start;
}
void device_free(CUdeviceptr p) {
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end() || !it->second.live) sim::fail("free of memory that is not a live allocation");
    Alloc& a = it->second;
    a.live = false;
    in_use -= a.size;
    madvise(a.base, a.mapped, MADV_DONTNEED);
    mprotect(a.base, a.mapped, PROT_NONE);
}

// --- modules and kernels ---------------------------------------------------------------------
template <typename T>
T arg(void** params, size_t i) {
    T v;
    std::memcpy(&v, params[i], sizeof(T));
    return v;
}
template <typename T>
void check_pointer(const char* name, size_t i, T v) {
    if constexpr (std::is_pointer_v<T>) {
        if (v && !device_range((uintptr_t)v, 0)) {
            std::fprintf(stderr, "cudasim: kernel %s: argument %zu (%p) is not live device memory\n",
                         name, i, (const void*)v);
            std::abort();
        }
    }
}
template <typename... A, size_t... I>
std::function<void()> bind(const char* name, void (*f)(A...), void** p, std::index_sequence<I...>) {
    std::tuple<std::decay_t<A>...> t{arg<std::decay_t<A>>(p, I)...};
    return [=] {
        (check_pointer(name, I, std::get<I>(t)), ...);
        std::apply(f, t);
    };
}
struct Kernel {
    const char* name;
    std::function<std::function<void()>(void**)> bind;
};
template <typename... A>
Kernel kernel(const char* name, void (*f)(A...)) {
    return {name, [=](void** p) { return bind(name, f, p, std::index_sequence_for<A...>{}); }};
}
const std::vector<Kernel>& kernels() {
    static const std::vector<Kernel> k = {
        kernel("column_sums", column_sums),       kernel("center_columns", center_columns),
        kernel("scale", scale),                   kernel("row_sq_norms", row_sq_norms),
        kernel("row_dot_minus", row_dot_minus),   kernel("zero_diag_row_sums", zero_diag_row_sums),
        kernel("dot", dot),                       kernel("pack_signs", pack_signs),
        kernel("row_popcounts", row_popcounts),   kernel("xor_gemm", xor_gemm),
        kernel("mma_and_gemm", mma_and_gemm),     kernel("bn_act", bn_act),
        kernel("bn_logits_f32", bn_logits_f32),   kernel("bn_logits_i32", bn_logits_i32),
        kernel("bn_sign_pack_f32", bn_sign_pack_f32),
        kernel("bn_sign_pack_i32", bn_sign_pack_i32),
    };
    return k;
}
struct Module {
    std::string image;  // the cubin's bytes: a function must be named in it
};

// Size of an ELF64 image: the end of its section header table (where NVRTC's cubins end).
size_t elf_size(const unsigned char* p) {
    if (std::memcmp(p, "\x7f" "ELF", 4) != 0 || p[4] != 2) return 0;
    uint64_t shoff;
    uint16_t shentsize, shnum;
    std::memcpy(&shoff, p + 0x28, 8);
    std::memcpy(&shentsize, p + 0x3a, 2);
    std::memcpy(&shnum, p + 0x3c, 2);
    return (size_t)(shoff + (uint64_t)shentsize * shnum);
}

int context_token;
thread_local void* current_ctx = nullptr;
bool initialized = false;
}  // namespace

// The cuBLAS half (cublas.cpp) queues work on these streams and checks these allocations.
namespace cudasim {
void enqueue_on(void* stream, std::function<void()> f) {
    LOCK;
    enqueue(S(stream), std::move(f));
}
bool device_memory(const void* p, size_t n) { return device_range((uintptr_t)p, n); }
std::recursive_mutex& lock() { return mu; }
}  // namespace cudasim

extern "C" {
CUresult cuInit(unsigned) {
    LOCK;
    read_schedule();
    install_fault_handler();
    initialized = true;
    return SUCCESS;
}
// NVRTC finds a loaded libcuda and asks it for the driver's private tables; there are none
// here, and NVRTC compiles without them, as on a machine with no driver.
CUresult cuGetExportTable(const void** table, const void*) {
    *table = nullptr;
    return NOT_FOUND;
}
CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return SUCCESS;
}
CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return initialized ? SUCCESS : NOT_INITIALIZED;
}
CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (ordinal != 0) return INVALID_DEVICE;
    *d = 0;
    return SUCCESS;
}
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    std::snprintf(name, (size_t)len, "cudasim (host emulation of sm_90, not a GPU)");
    return SUCCESS;
}
CUresult cuDeviceGetAttribute(int* v, int attribute, CUdevice) {
    switch (attribute) {
    case 16: *v = 4; break;     // multiprocessors
    case 75: *v = 9; break;     // compute capability major
    case 76: *v = 0; break;     // minor
    case 115: *v = 1; break;    // memory pools: cudarc then allocates and frees on streams
    default: *v = 0;
    }
    return SUCCESS;
}
CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    *bytes = TOTAL;
    return SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice) {
    *ctx = &context_token;
    return SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return SUCCESS; }
CUresult cuCtxGetCurrent(void** ctx) {
    *ctx = current_ctx;
    return SUCCESS;
}
CUresult cuCtxSetCurrent(void* ctx) {
    current_ctx = ctx;
    return SUCCESS;
}
CUresult cuCtxSynchronize() {
    LOCK;
    drain_all();
    return SUCCESS;
}
CUresult cuMemGetInfo_v2(size_t* free, size_t* total) {
    LOCK;
    *total = TOTAL;
    *free = TOTAL - in_use;
    return SUCCESS;
}
CUresult cuGetErrorString(CUresult e, const char** s) {
    *s = e == SUCCESS ? "no error" : "cudasim error (see its message on stderr)";
    return SUCCESS;
}
CUresult cuGetErrorName(CUresult e, const char** s) {
    *s = e == SUCCESS ? "CUDA_SUCCESS" : "CUDA_ERROR_CUDASIM";
    return SUCCESS;
}

CUresult cuStreamCreate(void** s, unsigned) {
    LOCK;
    Stream* n = new Stream;
    streams.push_back(n);
    *s = n;
    return SUCCESS;
}
CUresult cuStreamDestroy_v2(void* s) {
    LOCK;
    drain(S(s), UINT64_MAX);  // like CUDA: queued work still completes
    return SUCCESS;           // the queue stays allocated: handles are never reused
}
CUresult cuStreamSynchronize(void* s) {
    LOCK;
    drain(S(s), UINT64_MAX);
    return SUCCESS;
}
CUresult cuEventCreate(void** e, unsigned) {
    *e = new Event;
    return SUCCESS;
}
CUresult cuEventDestroy_v2(void* e) {
    return e ? SUCCESS : INVALID_HANDLE;  // kept: a queued wait may still name it
}
CUresult cuEventRecord(void* e, void* s) {
    LOCK;
    Event* ev = (Event*)e;
    ev->stream = S(s);
    ev->seq = enqueue(ev->stream, [] {});
    return SUCCESS;
}
CUresult cuStreamWaitEvent(void* s, void* e, unsigned) {
    LOCK;
    Event ev = *(Event*)e;  // the record as of now, as CUDA specifies
    if (ignore_waits) return SUCCESS;
    enqueue(S(s), [ev] {
        if (ev.stream) drain(ev.stream, ev.seq);
    });
    return SUCCESS;
}
CUresult cuEventSynchronize(void* e) {
    LOCK;
    Event ev = *(Event*)e;
    if (ignore_host_waits) return SUCCESS;
    if (ev.stream) drain(ev.stream, ev.seq);
    return SUCCESS;
}
CUresult cuEventQuery(void* e) { return cuEventSynchronize(e); }
CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
    cuEventSynchronize(a);
    cuEventSynchronize(b);
    *ms = 0.0f;  // no clock to read: timings from the emulator mean nothing
    return SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
    LOCK;
    *p = device_alloc(n);
    return *p ? SUCCESS : INVALID_VALUE;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
    LOCK;
    drain_all();
    device_free(p);
    return SUCCESS;
}
CUresult cuMemAllocAsync(CUdeviceptr* p, size_t n, void*) { return cuMemAlloc_v2(p, n); }
CUresult cuMemFreeAsync(CUdeviceptr p, void* s) {
    LOCK;
    enqueue(S(s), [p] { device_free(p); });
    return SUCCESS;
}
CUresult cuMemHostAlloc(void** p, size_t n, unsigned) {
    LOCK;
    // STRATA_CUDASIM_NO_PINNED=1: no page-locked memory to be had (strata must fall back).
    const char* np = std::getenv("STRATA_CUDASIM_NO_PINNED");
    if (np && std::string(np) == "1") return OUT_OF_MEMORY;
    *p = std::malloc(n ? n : 1);
    pinned.push_back({(uintptr_t)*p, n});
    return SUCCESS;
}
CUresult cuMemAllocHost_v2(void** p, size_t n) { return cuMemHostAlloc(p, n, 0); }
CUresult cuMemFreeHost(void* p) {
    LOCK;
    drain_all();
    for (size_t i = 0; i < pinned.size(); ++i)
        if (pinned[i].first == (uintptr_t)p) {
            pinned.erase(pinned.begin() + (long)i);
            std::free(p);
            return SUCCESS;
        }
    return INVALID_VALUE;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, void* s) {
    LOCK;
    if (!device_range(dst, n)) return INVALID_VALUE;
    if (is_pinned(src, n)) {
        // Pinned memory is read when the copy runs, as DMA would: reusing it too early shows.
        enqueue(S(s), [=] {
            if (!device_range(dst, n)) sim::fail("host-to-device copy into freed memory");
            std::memcpy((void*)dst, src, n);
        });
    } else {
        // Pageable memory is staged before the call returns.
        auto data = std::make_shared<std::vector<char>>((const char*)src, (const char*)src + n);
        enqueue(S(s), [=] {
            if (!device_range(dst, n)) sim::fail("host-to-device copy into freed memory");
            std::memcpy((void*)dst, data->data(), n);
        });
    }
    return SUCCESS;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
    LOCK;
    drain_all();
    if (!device_range(dst, n)) return INVALID_VALUE;
    std::memcpy((void*)dst, src, n);
    return SUCCESS;
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, void* s) {
    LOCK;
    if (!device_range(src, n)) return INVALID_VALUE;
    if (is_pinned(dst, n)) {
        enqueue(S(s), [=] { std::memcpy(dst, (const void*)src, n); });
    } else {
        // To pageable memory the call returns when the copy is done.
        drain(S(s), UINT64_MAX);
        if (!device_range(src, n)) return INVALID_VALUE;
        std::memcpy(dst, (const void*)src, n);
    }
    return SUCCESS;
}
CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
    LOCK;
    drain_all();
    if (!device_range(src, n)) return INVALID_VALUE;
    std::memcpy(dst, (const void*)src, n);
    return SUCCESS;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void* s) {
    LOCK;
    if (!device_range(dst, n) || !device_range(src, n)) return INVALID_VALUE;
    enqueue(S(s), [=] { std::memmove((void*)dst, (const void*)src, n); });
    return SUCCESS;
}
CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, void* s) {
    LOCK;
    if (!device_range(dst, n)) return INVALID_VALUE;
    enqueue(S(s), [=] { std::memset((void*)dst, v, n); });
    return SUCCESS;
}

CUresult cuModuleLoadData(void** m, const void* image) {
    size_t n = elf_size((const unsigned char*)image);
    if (n == 0) {
        std::fprintf(stderr, "cudasim: cuModuleLoadData: the image is not an ELF cubin\n");
        return INVALID_IMAGE;
    }
    *m = new Module{std::string((const char*)image, n)};
    return SUCCESS;
}
CUresult cuModuleUnload(void*) { return SUCCESS; }
CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
    const std::string& img = ((Module*)m)->image;
    std::string needle = std::string(1, '\0') + name + '\0';
    if (img.find(needle) == std::string::npos) return NOT_FOUND;
    for (const Kernel& k : kernels())
        if (std::strcmp(k.name, name) == 0) {
            *f = (void*)&k;
            return SUCCESS;
        }
    std::fprintf(stderr, "cudasim: kernel %s is in the cubin but not in the emulator's table\n", name);
    return NOT_FOUND;
}
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned shared, void* s, void** params, void** extra) {
    LOCK;
    if (!f || extra || shared > 48 * 1024) return INVALID_VALUE;
    const Kernel* k = (const Kernel*)f;
    auto body = k->bind(params);  // arguments are read now, as cuLaunchKernel does
    sim::dim3 grid{gx, gy, gz}, block{bx, by, bz};
    const char* name = k->name;
    enqueue(S(s), [=] { sim::run_grid(name, grid, block, body); });
    return SUCCESS;
}
}  // extern "C"
