// Threads of a CUDA grid as fibers on one CPU thread (see threads.h). One block runs at a time, its shared
// memory poisoned first; its threads run in turn (first to last, or last to first), each until it finishes or
// waits at a barrier (__syncthreads: the block's live threads; a warp
// shuffle: its warp's). A round in which no thread finished, arrived or was released is a deadlock: a barrier
// some threads never reach. Memory faults, integer division by zero and fiber stack overflows are caught by
// signal handlers installed only while a grid runs, and end the grid with a description.
#include "threads.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif

namespace emu {

Dim3 thread_idx, block_idx, block_dim, grid_dim;

}  // namespace emu

// Saves the callee-saved registers and the stack pointer in *save, continues on the stack `load`.
extern "C" void emu_switch(void** save, void* load);
// Where a new fiber starts: calls emu_fiber_main with a 16-byte-aligned stack.
extern "C" void emu_fiber_entry();
extern "C" __attribute__((visibility("hidden"), used, noreturn)) void emu_fiber_main();

asm(R"(
    .text
    .p2align 4
    .hidden emu_switch
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch

    .p2align 4
    .hidden emu_fiber_entry
    .globl emu_fiber_entry
    .type emu_fiber_entry, @function
emu_fiber_entry:
    call emu_fiber_main
    ud2
    .size emu_fiber_entry, .-emu_fiber_entry
)");

// The kernels' shared memory (dialect.h), bounded by the linker.
extern "C" char __start_emu_shared[], __stop_emu_shared[];

namespace emu {
namespace {

const size_t PAGE = 4096;
const size_t STACK_BYTES = 128 * 1024;
const unsigned MAX_THREADS = 1024;
const unsigned MAX_WARPS = MAX_THREADS / 32;

struct Fiber {
    void* sp = nullptr;
    char* stack = nullptr;  // lowest usable byte; a guard page lies below it
    Dim3 idx{};
    unsigned linear = 0;
    bool done = false;
};

struct Barrier {
    unsigned live = 0, arrived = 0, generation = 0;
};

Fiber fibers[MAX_THREADS];
unsigned fibers_with_stacks = 0;
Fiber* current = nullptr;
void* scheduler_sp = nullptr;
unsigned threads_per_block = 0;
Launcher launcher = nullptr;
void** launch_params = nullptr;
Barrier block_barrier;
Barrier warp_barriers[MAX_WARPS];
unsigned shuffle_slots[MAX_THREADS];
unsigned long progress = 0;
bool failed = false;
// MXRT_CUDA_EMULATOR_ORDER=reverse runs a block's threads last to first: a race that the forward order
// happens to hide (a missing barrier between a write and a read of shared memory) shows in one of the two.
bool reverse_order = false;
bool order_read = false;
char failure[512];

sigjmp_buf fault_jump;
volatile sig_atomic_t fault_signal = 0;
volatile uintptr_t fault_address = 0;

void yield() { emu_switch(&current->sp, scheduler_sp); }

[[noreturn]] void fail(const char* format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(failure, sizeof failure, format, args);
    va_end(args);
    failed = true;
    yield();
    __builtin_unreachable();
}

void arrive(Barrier& b) {
    progress++;
    const unsigned generation = b.generation;
    if (++b.arrived == b.live) {
        b.arrived = 0;
        b.generation++;
        return;
    }
    while (b.generation == generation) yield();
}

// A thread that exits no longer holds back the barriers it belongs to.
void leave(Barrier& b) {
    b.live--;
    if (b.arrived > 0 && b.arrived == b.live) {
        b.arrived = 0;
        b.generation++;
    }
}

bool ensure_fibers(unsigned n) {
    while (fibers_with_stacks < n) {
        void* m = mmap(nullptr, STACK_BYTES + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return false;
        mprotect(m, PAGE, PROT_NONE);
        fibers[fibers_with_stacks++].stack = static_cast<char*>(m) + PAGE;
    }
    return true;
}

void start_fiber(Fiber& f) {
    // emu_switch pops six registers and returns into emu_fiber_entry, which must then see a 16-byte-aligned
    // stack at its call: the initial stack pointer is 8 mod 16.
    uintptr_t top = reinterpret_cast<uintptr_t>(f.stack + STACK_BYTES) & ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top - 72);
    for (int i = 0; i < 6; i++) sp[i] = nullptr;
    sp[6] = reinterpret_cast<void*>(&emu_fiber_entry);
    f.sp = sp;
    f.done = false;
}

// Runs one block; false with `failure` set when it did not finish.
bool run_block() {
    const unsigned n = threads_per_block;
    const unsigned warps = (n + 31) / 32;
    memset(__start_emu_shared, 0xFF, static_cast<size_t>(__stop_emu_shared - __start_emu_shared));
    for (unsigned i = 0; i < n; i++) {
        Fiber& f = fibers[i];
        f.linear = i;
        f.idx = Dim3{i % block_dim.x, (i / block_dim.x) % block_dim.y, i / (block_dim.x * block_dim.y)};
        start_fiber(f);
    }
    block_barrier = Barrier{n, 0, 0};
    for (unsigned w = 0; w < warps; w++) warp_barriers[w] = Barrier{(n - 32 * w < 32) ? n - 32 * w : 32, 0, 0};
    for (;;) {
        const unsigned long before = progress;
        bool all_done = true;
        for (unsigned step = 0; step < n; step++) {
            const unsigned i = reverse_order ? n - 1 - step : step;
            if (fibers[i].done) continue;
            current = &fibers[i];
            thread_idx = current->idx;
            emu_switch(&scheduler_sp, current->sp);
            if (failed) return false;
            all_done = all_done && fibers[i].done;
        }
        if (all_done) return true;
        if (progress == before) {
            unsigned waiting_block = block_barrier.arrived, waiting_warp = 0;
            for (unsigned w = 0; w < warps; w++) waiting_warp += warp_barriers[w].arrived;
            snprintf(failure, sizeof failure,
                     "deadlock: %u threads wait at __syncthreads and %u at a warp shuffle that the block's other "
                     "live threads never reach (a barrier inside divergent code)",
                     waiting_block, waiting_warp);
            return false;
        }
    }
}

// SIGILL: a trap the build's -fsanitize checks put in the kernels (scripts/build-cuda-emu.sh).
const int SIGNALS[4] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
struct sigaction previous[4];
pthread_t launching_thread;

void on_fault(int signal, siginfo_t* info, void*) {
    if (!pthread_equal(pthread_self(), launching_thread)) {
        // Not a kernel's fault (another thread of the process): hand it back to whoever handled it before; the
        // faulting instruction runs again under that handler.
        for (int i = 0; i < 4; i++) {
            if (SIGNALS[i] == signal) sigaction(signal, &previous[i], nullptr);
        }
        return;
    }
    fault_signal = signal;
    fault_address = reinterpret_cast<uintptr_t>(info->si_addr);
    siglongjmp(fault_jump, 1);
}

}  // namespace

void sync_block() { arrive(block_barrier); }

unsigned shuffle_xor(unsigned mask, unsigned v, int lane_mask) {
    const unsigned w = current->linear / 32, lane = current->linear % 32;
    if (mask != 0xffffffffu) fail("__shfl_xor_sync with mask 0x%08x: only whole-warp shuffles are emulated", mask);
    if (threads_per_block - 32 * w < 32) fail("__shfl_xor_sync in a partial warp (block of %u threads)", threads_per_block);
    if (lane_mask < 0 || lane_mask >= 32) fail("__shfl_xor_sync lane mask %d is outside the warp", lane_mask);
    if (warp_barriers[w].live != 32)
        fail("__shfl_xor_sync(0xffffffff) in warp %u after %u of its lanes exited: undefined on the GPU", w,
             32 - warp_barriers[w].live);
    shuffle_slots[w * 32 + lane] = v;
    arrive(warp_barriers[w]);
    const unsigned r = shuffle_slots[w * 32 + (lane ^ static_cast<unsigned>(lane_mask))];
    arrive(warp_barriers[w]);
    return r;
}

Outcome run_grid(const char* name, Launcher launch, void** params, Dim3 grid, Dim3 block, char* text,
                 size_t len) {
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    if (threads == 0 || threads > MAX_THREADS) {
        snprintf(text, len, "%s: %llu threads per block (1 to %u allowed)", name, threads, MAX_THREADS);
        return Outcome::Failed;
    }
    if (!ensure_fibers(static_cast<unsigned>(threads))) {
        snprintf(text, len, "%s: no memory for thread stacks", name);
        return Outcome::Failed;
    }
    if (!order_read) {  // once per process; launches are serialized by the driver's lock
        const char* order = getenv("MXRT_CUDA_EMULATOR_ORDER");
        reverse_order = order != nullptr && strcmp(order, "reverse") == 0;
        order_read = true;
    }
    launcher = launch;
    launch_params = params;
    threads_per_block = static_cast<unsigned>(threads);
    grid_dim = grid;
    block_dim = block;
    failed = false;
    launching_thread = pthread_self();

    static char alternate_stack[64 * 1024];
    stack_t alt{}, old_alt{};
    alt.ss_sp = alternate_stack;
    alt.ss_size = sizeof alternate_stack;
    sigaltstack(&alt, &old_alt);
    struct sigaction action{};
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < 4; i++) sigaction(SIGNALS[i], &action, &previous[i]);
    auto restore = [&] {
        for (int i = 0; i < 4; i++) sigaction(SIGNALS[i], &previous[i], nullptr);
        sigaltstack(&old_alt, nullptr);
    };
    auto where = [&](const char* what) {
        const int n = snprintf(text, len, "%s, block (%u, %u, %u), thread (%u, %u, %u): %s", name, block_idx.x,
                               block_idx.y, block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z, what);
        return n < 0 ? size_t(0) : (static_cast<size_t>(n) < len ? static_cast<size_t>(n) : len - 1);
    };
    if (sigsetjmp(fault_jump, 1) != 0) {
        restore();
        if (fault_signal == SIGFPE) {
            where("integer division by zero");
            return Outcome::Failed;
        }
        if (fault_signal == SIGILL) {
            where("undefined behaviour trapped: a shift by the operand's width or more, a signed overflow, a "
                  "division by zero, a float converted to an integer that cannot hold it, or an index past a "
                  "fixed-size array (undefined in CUDA C++ too; the GPU would give some value silently)");
            return Outcome::Failed;
        }
        const size_t n = where("invalid memory access: ");
        describe_address(fault_address, text + n, len - n);
        return Outcome::MemoryFault;
    }
    for (unsigned z = 0; z < grid.z; z++) {
        for (unsigned y = 0; y < grid.y; y++) {
            for (unsigned x = 0; x < grid.x; x++) {
                block_idx = Dim3{x, y, z};
                if (!run_block()) {
                    restore();
                    where(failure);
                    return Outcome::Failed;
                }
            }
        }
    }
    restore();
    return Outcome::Finished;
}

}  // namespace emu

extern "C" void emu_fiber_main() {
    emu::launcher(emu::launch_params);
    emu::current->done = true;
    emu::progress++;
    emu::leave(emu::block_barrier);
    emu::leave(emu::warp_barriers[emu::current->linear / 32]);
    emu::yield();
    __builtin_unreachable();
}
