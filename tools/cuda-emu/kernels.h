// The kernels of kernels/*.cu that the CUDA emulator can launch, by name.
#pragma once

#include "threads.h"

namespace emu {

struct KernelEntry {
    const char* name;
    Launcher launch;
};

// The kernel called `name`, or null.
const KernelEntry* find_kernel(const char* name);

}  // namespace emu
