// Device memory of the CUDA emulator: host memory laid out so that bad accesses fault instead of passing.
// Every allocation ends exactly at an inaccessible guard page (one element past the end faults), starts
// filled with 0xFF bytes (a float read before anything wrote it is NaN), and is made inaccessible when freed
// (a use after free faults) before its pages are returned.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace emu {

// A new allocation of `bytes` (at least one), or 0 when the host is out of memory.
uint64_t device_alloc(size_t bytes);
// False when `ptr` is not the start of a live allocation.
bool device_free(uint64_t ptr);
// Whether [ptr, ptr + bytes) lies inside one live allocation.
bool device_range_ok(uint64_t ptr, size_t bytes);
// What `address` is, for a fault report: past the end of which allocation, inside a freed one, or neither.
void describe_address(uintptr_t address, char* text, size_t len);
// Bytes in live allocations.
size_t device_bytes_in_use();

}  // namespace emu
