// The part of the CUDA driver API (libcuda.so.1) that cudarc calls for mxrt's CUDA backend, served on the CPU:
// device memory from memory.cpp, kernels from kernels.cpp run by threads.cpp. Everything runs synchronously in
// stream order (one stream's semantics, and what mxrt uses). The device calls itself an emulator in its name,
// so no report can mistake it for a GPU. A failed kernel makes every later call fail, as a real context does.
#include <elf.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels.h"
#include "memory.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void* CUcontext;
typedef void* CUstream;
typedef void* CUmodule;
typedef void* CUfunction;
typedef void* CUevent;

namespace {

enum : CUresult {
    SUCCESS = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    NOT_INITIALIZED = 3,
    INVALID_DEVICE = 101,
    INVALID_IMAGE = 200,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    ILLEGAL_ADDRESS = 700,
    LAUNCH_FAILED = 719,
    NOT_SUPPORTED = 801,
};

const char* const DEVICE_NAME = "mxrt CUDA emulator on the CPU (tools/cuda-emu; not a GPU)";

struct Module {
    char* image;  // a copy: PTX text (NUL-terminated) or a CUBIN (an ELF file for EM_CUDA)
    size_t size;
    bool elf;
};

// The length of an ELF image, from its headers (cuModuleLoadData is given no length): the furthest end of
// the section header table, the program header table and the sections' contents. 0 if it is not a 64-bit
// little-endian ELF file for CUDA.
size_t cubin_size(const unsigned char* p) {
    if (memcmp(p, ELFMAG, SELFMAG) != 0 || p[EI_CLASS] != ELFCLASS64 || p[EI_DATA] != ELFDATA2LSB) return 0;
    Elf64_Ehdr h;
    memcpy(&h, p, sizeof h);
    if (h.e_machine != EM_CUDA || h.e_shentsize < sizeof(Elf64_Shdr)) return 0;
    size_t end = h.e_shoff + size_t(h.e_shnum) * h.e_shentsize;
    const size_t programs = h.e_phoff + size_t(h.e_phnum) * h.e_phentsize;
    if (programs > end) end = programs;
    for (unsigned i = 0; i < h.e_shnum; i++) {
        Elf64_Shdr s;
        memcpy(&s, p + h.e_shoff + size_t(i) * h.e_shentsize, sizeof s);
        if (s.sh_type != SHT_NOBITS && s.sh_offset + s.sh_size > end) end = s.sh_offset + s.sh_size;
    }
    return end;
}

// Whether the loaded image defines kernel `name`: `.entry name(` in PTX, the symbol name in a CUBIN.
bool defines(const Module* m, const char* name) {
    char pattern[256];
    if (!m->elf) {
        snprintf(pattern, sizeof pattern, ".entry %s(", name);
        return strstr(m->image, pattern) != nullptr;
    }
    const int n = snprintf(pattern, sizeof pattern, "%c%s", 0, name) + 1;  // NUL, name, NUL
    return memmem(m->image, m->size, pattern, static_cast<size_t>(n)) != nullptr;
}
struct Function {
    const emu::KernelEntry* kernel;
};
struct Event {
    double ms = 0.0;
};

int primary_context;  // its address is the one context
bool initialized = false;
CUresult sticky = SUCCESS;  // the error of a failed kernel, returned by every call after it
thread_local CUcontext current_context = nullptr;
// One grid at a time: threads.cpp and the kernels' shared memory are process-wide.
pthread_mutex_t launch_lock = PTHREAD_MUTEX_INITIALIZER;

template <typename T>
T* make() {
    T* p = static_cast<T*>(calloc(1, sizeof(T)));
    if (p == nullptr) abort();
    return p;
}

double now_ms() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

CUresult check() {
    if (!initialized) return NOT_INITIALIZED;
    return sticky;
}

__attribute__((format(printf, 2, 3))) CUresult complain(CUresult code, const char* format, ...) {
    va_list args;
    va_start(args, format);
    fputs("mxrt CUDA emulator: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return code;
}

CUresult range(CUdeviceptr p, size_t bytes, const char* call) {
    if (bytes == 0 || emu::device_range_ok(p, bytes)) return SUCCESS;
    return complain(INVALID_VALUE, "%s: %zu bytes at 0x%llx are not inside one device allocation", call, bytes, p);
}

}  // namespace

EXPORT CUresult cuInit(unsigned) {
    initialized = true;
    return SUCCESS;
}
EXPORT CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return SUCCESS;
}
EXPORT CUresult cuDeviceGetCount(int* n) {
    if (!initialized) return NOT_INITIALIZED;
    *n = 1;
    return SUCCESS;
}
EXPORT CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (!initialized) return NOT_INITIALIZED;
    if (ordinal != 0) return INVALID_DEVICE;
    *d = 0;
    return SUCCESS;
}
EXPORT CUresult cuDeviceGetName(char* name, int len, CUdevice d) {
    if (d != 0 || len <= 0) return INVALID_VALUE;
    snprintf(name, static_cast<size_t>(len), "%s", DEVICE_NAME);
    return SUCCESS;
}
EXPORT CUresult cuDeviceGetUuid(unsigned char* uuid, CUdevice) {
    memset(uuid, 0, 16);
    return SUCCESS;
}
EXPORT CUresult cuDeviceGetUuid_v2(unsigned char* uuid, CUdevice d) { return cuDeviceGetUuid(uuid, d); }
EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice d) {
    if (d != 0) return INVALID_DEVICE;
    switch (attribute) {
        case 1: *value = 1024; break;   // max threads per block
        case 2: *value = 1024; break;   // max block x
        case 3: *value = 1024; break;   // max block y
        case 4: *value = 64; break;     // max block z
        case 5: *value = 2147483647; break;
        case 6: *value = 65535; break;
        case 7: *value = 65535; break;
        case 8: *value = 48 * 1024; break;  // shared memory per block
        case 10: *value = 32; break;    // warp size
        case 16: *value = 1; break;     // multiprocessors
        case 75: *value = 9; break;     // compute capability 9.0: the kernels are compiled for compute_90
        case 76: *value = 0; break;
        case 115: *value = 0; break;    // no memory pools: cudarc allocates synchronously
        default: *value = 0; break;
    }
    return SUCCESS;
}
EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    *bytes = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return SUCCESS;
}
EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    cuDeviceTotalMem_v2(total, 0);
    const size_t used = emu::device_bytes_in_use();
    *free_bytes = used < *total ? *total - used : 0;
    return SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) {
    if (!initialized) return NOT_INITIALIZED;
    if (d != 0) return INVALID_DEVICE;
    *c = &primary_context;
    return SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return SUCCESS; }
EXPORT CUresult cuCtxSetCurrent(CUcontext c) {
    current_context = c;
    return SUCCESS;
}
EXPORT CUresult cuCtxGetCurrent(CUcontext* c) {
    *c = current_context;
    return SUCCESS;
}
EXPORT CUresult cuCtxSynchronize() { return check(); }
EXPORT CUresult cuCtxGetStreamPriorityRange(int* least, int* greatest) {
    *least = 0;
    *greatest = 0;
    return SUCCESS;
}

EXPORT CUresult cuStreamCreate(CUstream* s, unsigned) {
    *s = make<int>();
    return check();
}
EXPORT CUresult cuStreamCreateWithPriority(CUstream* s, unsigned flags, int) { return cuStreamCreate(s, flags); }
EXPORT CUresult cuStreamDestroy_v2(CUstream s) {
    free(s);
    return SUCCESS;
}
EXPORT CUresult cuStreamSynchronize(CUstream) { return check(); }
EXPORT CUresult cuStreamWaitEvent(CUstream, CUevent, unsigned) { return check(); }

EXPORT CUresult cuEventCreate(CUevent* e, unsigned) {
    *e = make<Event>();
    return check();
}
EXPORT CUresult cuEventRecord(CUevent e, CUstream) {
    static_cast<Event*>(e)->ms = now_ms();
    return check();
}
EXPORT CUresult cuEventSynchronize(CUevent) { return check(); }
EXPORT CUresult cuEventQuery(CUevent) { return check(); }
EXPORT CUresult cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
    *ms = static_cast<float>(static_cast<Event*>(b)->ms - static_cast<Event*>(a)->ms);
    return check();
}
EXPORT CUresult cuEventElapsedTime_v2(float* ms, CUevent a, CUevent b) { return cuEventElapsedTime(ms, a, b); }
EXPORT CUresult cuEventDestroy_v2(CUevent e) {
    free(e);
    return SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    if (CUresult r = check()) return r;
    *p = emu::device_alloc(bytes);
    return *p ? SUCCESS : OUT_OF_MEMORY;
}
EXPORT CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, CUstream) { return cuMemAlloc_v2(p, bytes); }
EXPORT CUresult cuMemFree_v2(CUdeviceptr p) {
    if (p == 0) return SUCCESS;
    if (!emu::device_free(p)) return complain(INVALID_VALUE, "cuMemFree of a pointer that is not a live allocation");
    return SUCCESS;
}
EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, CUstream) { return cuMemFree_v2(p); }
EXPORT CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned) {
    *p = malloc(bytes ? bytes : 1);
    return *p ? SUCCESS : OUT_OF_MEMORY;
}
EXPORT CUresult cuMemFreeHost(void* p) {
    free(p);
    return SUCCESS;
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
    if (CUresult r = check()) return r;
    if (CUresult r = range(dst, bytes, "cuMemcpyHtoD")) return r;
    if (bytes) memcpy(reinterpret_cast<void*>(dst), src, bytes);
    return SUCCESS;
}
EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, CUstream) {
    return cuMemcpyHtoD_v2(dst, src, bytes);
}
EXPORT CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    if (CUresult r = check()) return r;
    if (CUresult r = range(src, bytes, "cuMemcpyDtoH")) return r;
    if (bytes) memcpy(dst, reinterpret_cast<const void*>(src), bytes);
    return SUCCESS;
}
EXPORT CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, CUstream) {
    return cuMemcpyDtoH_v2(dst, src, bytes);
}
EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    if (CUresult r = check()) return r;
    if (CUresult r = range(src, bytes, "cuMemcpyDtoD (source)")) return r;
    if (CUresult r = range(dst, bytes, "cuMemcpyDtoD (destination)")) return r;
    if (bytes) memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
    return SUCCESS;
}
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream) {
    return cuMemcpyDtoD_v2(dst, src, bytes);
}
EXPORT CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t bytes) {
    if (CUresult r = check()) return r;
    if (CUresult r = range(dst, bytes, "cuMemsetD8")) return r;
    if (bytes) memset(reinterpret_cast<void*>(dst), value, bytes);
    return SUCCESS;
}
EXPORT CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t bytes, CUstream) {
    return cuMemsetD8_v2(dst, value, bytes);
}

EXPORT CUresult cuModuleLoadData(CUmodule* m, const void* image) {
    if (CUresult r = check()) return r;
    if (image == nullptr) return INVALID_VALUE;
    const char* text = static_cast<const char*>(image);
    size_t size = cubin_size(static_cast<const unsigned char*>(image));
    const bool elf = size > 0;
    if (!elf) {
        if (strstr(text, ".entry") == nullptr || strstr(text, ".target") == nullptr) {
            return complain(INVALID_IMAGE, "cuModuleLoadData: the image is neither a CUDA ELF file nor PTX text");
        }
        size = strlen(text) + 1;
    }
    Module* module = make<Module>();
    module->image = static_cast<char*>(malloc(size));
    if (module->image == nullptr) abort();
    memcpy(module->image, image, size);
    module->size = size;
    module->elf = elf;
    *m = module;
    return SUCCESS;
}
EXPORT CUresult cuModuleUnload(CUmodule m) {
    free(static_cast<Module*>(m)->image);
    free(m);
    return SUCCESS;
}
EXPORT CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
    if (CUresult r = check()) return r;
    // The kernel must be in the image NVRTC compiled (so the real compiler accepted it) and in the
    // emulator's table (the same source compiled for the host).
    if (!defines(static_cast<Module*>(m), name)) {
        return complain(NOT_FOUND, "kernel %s is not in the loaded image", name);
    }
    const emu::KernelEntry* k = emu::find_kernel(name);
    if (k == nullptr) return complain(NOT_FOUND, "kernel %s has no launcher in tools/cuda-emu", name);
    Function* function = make<Function>();
    function->kernel = k;
    *f = function;
    return SUCCESS;
}
EXPORT CUresult cuFuncGetAttribute(int* value, int, CUfunction) {
    *value = 0;
    return SUCCESS;
}
EXPORT CUresult cuFuncSetAttribute(CUfunction, int, int) { return SUCCESS; }
EXPORT CUresult cuFuncSetCacheConfig(CUfunction, int) { return SUCCESS; }

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                               unsigned bz, unsigned shared_bytes, CUstream, void** params, void** extra) {
    if (CUresult r = check()) return r;
    const emu::KernelEntry* k = static_cast<Function*>(f)->kernel;
    if (gx == 0 || gy == 0 || gz == 0 || gx > 2147483647u || gy > 65535u || gz > 65535u) {
        return complain(INVALID_VALUE, "%s: grid (%u, %u, %u) out of range", k->name, gx, gy, gz);
    }
    if (bx > 1024u || by > 1024u || bz > 64u) {
        return complain(INVALID_VALUE, "%s: block (%u, %u, %u) out of range", k->name, bx, by, bz);
    }
    if (shared_bytes != 0 || extra != nullptr || params == nullptr) {
        return complain(NOT_SUPPORTED, "%s: dynamic shared memory and `extra` parameters are not emulated", k->name);
    }
    char failure[1024];
    pthread_mutex_lock(&launch_lock);
    const emu::Outcome outcome = emu::run_grid(k->name, k->launch, params, emu::Dim3{gx, gy, gz},
                                               emu::Dim3{bx, by, bz}, failure, sizeof failure);
    pthread_mutex_unlock(&launch_lock);
    if (outcome == emu::Outcome::Finished) return SUCCESS;
    sticky = outcome == emu::Outcome::MemoryFault ? ILLEGAL_ADDRESS : LAUNCH_FAILED;
    return complain(sticky, "%s", failure);
}

EXPORT CUresult cuGetErrorName(CUresult code, const char** name) {
    switch (code) {
        case SUCCESS: *name = "CUDA_SUCCESS"; break;
        case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; break;
        case OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
        case NOT_INITIALIZED: *name = "CUDA_ERROR_NOT_INITIALIZED"; break;
        case INVALID_DEVICE: *name = "CUDA_ERROR_INVALID_DEVICE"; break;
        case INVALID_IMAGE: *name = "CUDA_ERROR_INVALID_IMAGE"; break;
        case INVALID_HANDLE: *name = "CUDA_ERROR_INVALID_HANDLE"; break;
        case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; break;
        case ILLEGAL_ADDRESS: *name = "CUDA_ERROR_ILLEGAL_ADDRESS"; break;
        case LAUNCH_FAILED: *name = "CUDA_ERROR_LAUNCH_FAILED"; break;
        case NOT_SUPPORTED: *name = "CUDA_ERROR_NOT_SUPPORTED"; break;
        default: *name = "CUDA_ERROR_UNKNOWN"; return INVALID_VALUE;
    }
    return SUCCESS;
}
EXPORT CUresult cuGetErrorString(CUresult code, const char** text) {
    switch (code) {
        case ILLEGAL_ADDRESS: *text = "an illegal memory access was encountered (emulator: see stderr)"; return SUCCESS;
        case LAUNCH_FAILED: *text = "unspecified launch failure (emulator: see stderr)"; return SUCCESS;
        default: return cuGetErrorName(code, text);
    }
}

// NVRTC looks up cuInit and this in a loaded libcuda and asks for the driver's private interfaces; the emulator
// has none, and says so.
EXPORT CUresult cuGetExportTable(const void** table, const void*) {
    *table = nullptr;
    return NOT_FOUND;
}
