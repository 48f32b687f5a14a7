// The launcher side of the fiber runtime (the kernel side is sim.h).
#pragma once
#include <functional>
#include "sim.h"

namespace sim {
// Run `f` once per thread of a grid (`name` for messages).
void run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& f);
// The kernel being run, or nullptr between launches.
const char* running_kernel();
}  // namespace sim
