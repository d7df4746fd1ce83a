// Running a grid of CUDA threads on one CPU thread: every block in turn, its threads as fibers that switch
// at barriers and warp shuffles (threads.cpp). Faults inside a kernel are caught and described.
#pragma once

#include <stddef.h>

#include "dialect.h"

namespace emu {

// A kernel's launcher: unpacks cuLaunchKernel's parameter pointers and calls the kernel.
using Launcher = void (*)(void** params);

enum class Outcome { Finished, MemoryFault, Failed };

// Runs every block of `grid` with `block` threads each. Unless every thread finished, `failure` says what went
// wrong, naming the kernel, the block and the thread: an out-of-bounds or wild memory access, an integer
// division by zero, a barrier that not every thread reaches, or a shuffle the GPU leaves undefined.
Outcome run_grid(const char* name, Launcher launch, void** params, Dim3 grid, Dim3 block, char* failure,
                 size_t len);

}  // namespace emu
