// Local response normalisation across channels (see kernels/reference.py). One thread per element loops
// over its channel window: size is small (5 in AlexNet). Barrier-free, so
// tests/kernels/test_cuda_sources.py also runs these kernels on the CPU through host_shim.h.

// scale = k + alpha * sum of x[c']**2 for c - size/2 <= c' <= c + (size-1)/2;  y = x * scale**(-beta).
template <typename T>
__global__ void lrn_forward_kernel(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ scale,
                                   long long total, int C, long long HW, int size, T alpha, T beta, T k) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((index / HW) % C);
        const int c0 = max(c - size / 2, 0), c1 = min(c + (size - 1) / 2, C - 1);
        const T* pixel = x + index - c * HW;               // x[n, 0, h, w]
        T sum = T(0);
        for (int cc = c0; cc <= c1; ++cc) sum += pixel[cc * HW] * pixel[cc * HW];
        const T s = k + alpha * sum;
        scale[index] = s;
        y[index] = x[index] * pow(s, -beta);
    }
}

// gx = gy * scale**(-beta) - 2*alpha*beta * x * sum of gy[c']*y[c']/scale[c'] over
// c - (size-1)/2 <= c' <= c + size/2 (the channels whose window holds c).
template <typename T>
__global__ void lrn_backward_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ y,
                                    const T* __restrict__ scale, T* __restrict__ gx, long long total, int C,
                                    long long HW, int size, T alpha, T beta) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((index / HW) % C);
        const int c0 = max(c - (size - 1) / 2, 0), c1 = min(c + size / 2, C - 1);
        const long long first = index - c * HW;             // offset of [n, 0, h, w]
        T sum = T(0);
        for (int cc = c0; cc <= c1; ++cc) {
            const long long at = first + cc * HW;
            sum += gy[at] * y[at] / scale[at];
        }
        gx[index] = gy[index] * pow(scale[index], -beta) - T(2) * alpha * beta * x[index] * sum;
    }
}
