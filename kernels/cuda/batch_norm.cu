// The elementwise halves of batch normalisation. The per-channel sums (mean, variance, dbeta, dgamma) are
// CuPy reductions in float64 (kernels/gpu.py); these kernels apply the per-channel results. Barrier-free,
// so tests/kernels/test_cuda_sources.py also runs them on the CPU through host_shim.h.

// y = (x - center[c]) * scale[c] + shift[c], with c = (index / HW) % C in an NCHW array.
template <typename T>
__global__ void channel_affine_kernel(const T* __restrict__ x, const T* __restrict__ center,
                                      const T* __restrict__ scale, const T* __restrict__ shift,
                                      T* __restrict__ y, long long total, int C, long long HW) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((index / HW) % C);
        y[index] = (x[index] - center[c]) * scale[c] + shift[c];
    }
}

// gx = k[c] * gy + slope[c] * (x - mean[c]) + offset[c]: the reference's
// gamma * invstd / M * (M * gy - dbeta - xhat * dgamma) with its per-channel factors folded on the host.
template <typename T>
__global__ void batch_norm_backward_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                           const T* __restrict__ mean, const T* __restrict__ k,
                                           const T* __restrict__ slope, const T* __restrict__ offset,
                                           T* __restrict__ gx, long long total, int C, long long HW) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((index / HW) % C);
        gx[index] = k[c] * gy[index] + slope[c] * (x[index] - mean[c]) + offset[c];
    }
}
