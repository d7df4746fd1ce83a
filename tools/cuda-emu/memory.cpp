// Device memory of the CUDA emulator (see memory.h). No C++ standard library here or anywhere in the
// emulator: loading libstdc++ into a process beside NVRTC (which carries its own) crashes NVRTC.
#include "memory.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

namespace emu {
namespace {

const size_t PAGE = 4096;
// Freed allocations stay mapped but inaccessible (no memory behind them) for this many later frees.
const size_t QUARANTINE = 4096;

struct Allocation {
    uintptr_t start;  // what cuMemAlloc returned
    uintptr_t base;   // start of the mapping
    size_t mapped;    // bytes mapped, the guard page included
    size_t bytes;     // bytes asked for
    size_t body;      // bytes rounded up to whole 4-byte words: the guard page starts at start + body
    bool live;
    unsigned long long freed_at;  // order of frees, for the quarantine
};

pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
Allocation* table = nullptr;
size_t count = 0, capacity = 0, quarantined = 0;
unsigned long long frees = 0;
size_t in_use = 0;

struct Guard {
    Guard() { pthread_mutex_lock(&lock); }
    ~Guard() { pthread_mutex_unlock(&lock); }
};

Allocation* containing(uintptr_t a, bool live) {
    for (size_t i = 0; i < count; i++) {
        Allocation& x = table[i];
        if (x.live == live && a >= x.base && a < x.base + x.mapped) return &x;
    }
    return nullptr;
}

void remove_at(size_t i) { table[i] = table[--count]; }

}  // namespace

uint64_t device_alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    const size_t body = (bytes + 3) & ~size_t(3);
    const size_t pages = (body + PAGE - 1) / PAGE * PAGE;
    void* m = mmap(nullptr, pages + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 0;
    const uintptr_t base = reinterpret_cast<uintptr_t>(m);
    if (mprotect(reinterpret_cast<void*>(base + pages), PAGE, PROT_NONE) != 0) {
        munmap(m, pages + PAGE);
        return 0;
    }
    const uintptr_t start = base + pages - body;
    memset(reinterpret_cast<void*>(start), 0xFF, body);
    Guard g;
    if (count == capacity) {
        const size_t grown = capacity ? 2 * capacity : 256;
        void* t = realloc(table, grown * sizeof(Allocation));
        if (t == nullptr) {
            munmap(m, pages + PAGE);
            return 0;
        }
        table = static_cast<Allocation*>(t);
        capacity = grown;
    }
    table[count++] = Allocation{start, base, pages + PAGE, bytes, body, true, 0};
    in_use += bytes;
    return start;
}

bool device_free(uint64_t ptr) {
    Guard g;
    Allocation* a = nullptr;
    for (size_t i = 0; i < count; i++) {
        if (table[i].live && table[i].start == ptr) a = &table[i];
    }
    if (a == nullptr) return false;
    a->live = false;
    a->freed_at = ++frees;
    in_use -= a->bytes;
    void* base = reinterpret_cast<void*>(a->base);
    madvise(base, a->mapped, MADV_DONTNEED);
    mprotect(base, a->mapped, PROT_NONE);
    if (++quarantined > QUARANTINE) {
        size_t oldest = count;
        for (size_t i = 0; i < count; i++) {
            if (!table[i].live && (oldest == count || table[i].freed_at < table[oldest].freed_at)) oldest = i;
        }
        munmap(reinterpret_cast<void*>(table[oldest].base), table[oldest].mapped);
        remove_at(oldest);
        quarantined--;
    }
    return true;
}

bool device_range_ok(uint64_t ptr, size_t bytes) {
    Guard g;
    const Allocation* a = containing(static_cast<uintptr_t>(ptr), true);
    return a != nullptr && ptr >= a->start && bytes <= a->bytes - (ptr - a->start);
}

size_t device_bytes_in_use() {
    Guard g;
    return in_use;
}

void describe_address(uintptr_t address, char* text, size_t len) {
    // Called after a fault was caught, outside the signal handler.
    Guard g;
    if (const Allocation* a = containing(address, true)) {
        if (address >= a->start + a->body) {
            snprintf(text, len, "byte %zu past the end of a %zu-byte device allocation at 0x%zx",
                     static_cast<size_t>(address - a->start - a->bytes), a->bytes, static_cast<size_t>(a->start));
        } else {
            snprintf(text, len, "%zu bytes before the start of a %zu-byte device allocation at 0x%zx",
                     static_cast<size_t>(a->start - address), a->bytes, static_cast<size_t>(a->start));
        }
        return;
    }
    if (const Allocation* a = containing(address, false)) {
        snprintf(text, len, "inside a %zu-byte device allocation at 0x%zx that was freed", a->bytes,
                 static_cast<size_t>(a->start));
        return;
    }
    snprintf(text, len, "0x%zx, in no device allocation (a wild index, a host pointer or a null one)",
             static_cast<size_t>(address));
}

}  // namespace emu
