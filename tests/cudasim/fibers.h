// The launcher side of the fiber runtime (the kernel side is sim.h).
#pragma once
#include <functional>
#include "sim.h"

namespace sim {
// Run `f` once per thread of a grid (`name` for messages).
void run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& f);
// Run the threads of each block, and the blocks of each grid, in an order drawn from `seed`
// instead of index order (0: index order): a kernel whose threads or blocks depend on each other
// without a barrier or an atomic gives different results.
void set_order_seed(uint64_t seed);
// The kernel being run, or nullptr between launches.
const char* running_kernel();
}  // namespace sim
