// host_shim.h: compile a barrier-free CUDA kernel with g++ and run it on the CPU.
//
// Why: machines without a GPU still have nvcc (which checks that a .cu file compiles) but cannot run a
// kernel. A grid-stride kernel that uses no __shared__ memory and no __syncthreads has threads that never
// talk to each other, so running every (block, thread) pair one after another computes exactly what the
// GPU computes. tests/kernels/test_cuda_sources.py compiles each such .cu file with
//     g++ -std=c++17 -include host_shim.h file.cu + generated extern "C" launchers
// into a shared library, calls it through ctypes with odd grid and block sizes (e.g. grid 3, block 7, so
// that every grid-stride loop wraps), and compares the results with kernels/reference.py.
//
// What this defines: the CUDA keywords (__global__, __device__, __forceinline__, __restrict__ is native to
// g++), dim3 and the globals threadIdx, blockIdx, blockDim, gridDim (x only, as the kernels use), min/max,
// pow and friends from <cmath>, atomicAdd as a plain add, and shim_launch(grid, block, kernel, args...).
//
// Limits (what a CPU run does NOT check):
//   - No __shared__ memory, __syncthreads, warp shuffles or cooperative groups: kernels that need them are
//     listed in kernels/gpu.py's DEVICE_ONLY and only compiled by nvcc here.
//   - Threads run in a fixed order, so races, missing atomics and out-of-order effects cannot show up;
//     atomicAdd here is a plain read-modify-write.
//   - Host libm, not CUDA's math library: pow, exp and friends may differ by an ulp or two from the device.
//   - Nothing about performance, occupancy, coalescing, or the launch limits of a real device; and the
//     Python glue that launches on a device (CuPy's RawModule, NVRTC) is only exercised on a GPU machine.
#pragma once

#include <algorithm>
#include <cmath>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

using std::max;
using std::min;
using std::pow;
using std::sqrt;
using std::exp;

template <typename T>
inline T atomicAdd(T* address, T value) {  // threads run one at a time: nothing can interleave
    T old = *address;
    *address = old + value;
    return old;
}

// Run kernel(args...) for every block and thread of a 1-d launch, one after another.
template <typename Kernel, typename... Args>
void shim_launch(unsigned grid, unsigned block, Kernel kernel, Args... args) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b) {
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b;
            threadIdx.x = t;
            kernel(args...);
        }
    }
}
