// Max and average pooling, forward and backward (see kernels/reference.py for the conventions).
// Grid-stride loops over 64-bit indices; barrier-free, so tests/kernels/test_cuda_sources.py also runs
// them on the CPU through host_shim.h. Windows are clipped to the input: padding is -inf for max pooling
// and 0 for average pooling, and with ceil_mode every window still overlaps the input.

// One thread per output. The first max in row-major window order wins, and a NaN beats any number (the
// first NaN wins), as np.argmax does; v != v is the NaN test that needs no math header on either compiler.
template <typename T>
__global__ void max_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                          long long* __restrict__ indices, long long total,
                                          int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                          int OH, int OW) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(index % OW);
        const int oh = (int)((index / OW) % OH);
        const T* plane = x + (index / ((long long)OH * OW)) * H * W;
        const int h0 = max(oh * SH - PH, 0), h1 = min(oh * SH - PH + KH, H);
        const int w0 = max(ow * SW - PW, 0), w1 = min(ow * SW - PW + KW, W);
        int best_index = h0 * W + w0;                       // an all -inf window points at its first element
        T best = plane[best_index];
        for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w) {
                const T v = plane[h * W + w];
                if (v > best || (v != v && best == best)) {
                    best = v;
                    best_index = h * W + w;
                }
            }
        }
        y[index] = best;
        indices[index] = best_index;
    }
}

// gx[plane].flat[indices] += gy. The signature (gy, indices, H, W) carries no window, so this is a
// scatter with atomicAdd (one thread per output): a gather would need the window geometry.
// A bad index is skipped and flagged in *out_of_range (a benign race: every writer stores 1).
template <typename T>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ gy, const long long* __restrict__ indices,
                                           T* __restrict__ gx, int* __restrict__ out_of_range, long long total,
                                           int HW, int OHW) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const long long k = indices[index];
        if (k < 0 || k >= HW) {
            *out_of_range = 1;
            continue;
        }
        atomicAdd(gx + (index / OHW) * HW + k, gy[index]);
    }
}

// PyTorch's divisor: the window [start, start + K) clipped to the padded input [-P, size + P), then,
// without count_include_pad, to the input [0, size).
__device__ __forceinline__ int avg_pool_divisor(int oh, int ow, int H, int W, int KH, int KW, int SH, int SW,
                                                int PH, int PW, int count_include_pad) {
    int h0 = oh * SH - PH, h1 = min(h0 + KH, H + PH);
    int w0 = ow * SW - PW, w1 = min(w0 + KW, W + PW);
    if (!count_include_pad) {
        h0 = max(h0, 0), h1 = min(h1, H);
        w0 = max(w0, 0), w1 = min(w1, W);
    }
    return (h1 - h0) * (w1 - w0);
}

template <typename T>
__global__ void avg_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, long long total,
                                          int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                          int OH, int OW, int count_include_pad) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(index % OW);
        const int oh = (int)((index / OW) % OH);
        const T* plane = x + (index / ((long long)OH * OW)) * H * W;
        const int h0 = max(oh * SH - PH, 0), h1 = min(oh * SH - PH + KH, H);
        const int w0 = max(ow * SW - PW, 0), w1 = min(ow * SW - PW + KW, W);
        T sum = T(0);
        for (int h = h0; h < h1; ++h)
            for (int w = w0; w < w1; ++w) sum += plane[h * W + w];
        y[index] = sum / T(avg_pool_divisor(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad));
    }
}

// A gather: one thread per input pixel adds gy / divisor of every window that covers it (no atomics).
// Window oh covers h when oh*SH - PH <= h < oh*SH - PH + KH.
template <typename T>
__global__ void avg_pool2d_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, long long total,
                                           int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                           int OH, int OW, int count_include_pad) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(index % W);
        const int h = (int)((index / W) % H);
        const T* plane = gy + (index / ((long long)H * W)) * OH * OW;
        const int oh0 = h + PH < KH ? 0 : (h + PH - KH) / SH + 1, oh1 = min((h + PH) / SH, OH - 1);
        const int ow0 = w + PW < KW ? 0 : (w + PW - KW) / SW + 1, ow1 = min((w + PW) / SW, OW - 1);
        T sum = T(0);
        for (int oh = oh0; oh <= oh1; ++oh)
            for (int ow = ow0; ow <= ow1; ++ow)
                sum += plane[oh * OW + ow] /
                       T(avg_pool_divisor(oh, ow, H, W, KH, KW, SH, SW, PH, PW, count_include_pad));
        gx[index] = sum;
    }
}
