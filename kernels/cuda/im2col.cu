// im2col and its adjoint col2im (see kernels/reference.py for the formulas).
// Grid-stride loops over 64-bit indices: a column buffer can pass 2^31 elements (VGG16 at batch 64).
// Barrier-free, so tests/kernels/test_cuda_sources.py also runs them on the CPU through host_shim.h.

// col[n, c, i, j, oh, ow] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]; one thread per column element.
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ col, long long total,
                              int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                              int DH, int DW, int OH, int OW) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(index % OW);
        long long rest = index / OW;
        const int oh = (int)(rest % OH);
        rest /= OH;
        const int j = (int)(rest % KW);
        rest /= KW;
        const int i = (int)(rest % KH);
        const long long plane = rest / KH;                  // n*C + c
        const int h = oh * SH - PH + i * DH;
        const int w = ow * SW - PW + j * DW;
        col[index] = (h >= 0 && h < H && w >= 0 && w < W) ? x[plane * H * W + (long long)h * W + w] : T(0);
    }
}

// x[n, c, h, w] = sum of col[n, c, i, j, oh, ow] with oh*SH + i*DH - PH = h, ow*SW + j*DW - PW = w.
// A gather: one thread per input pixel visits the (i, j) offsets whose window covers it; no atomics,
// and the sum runs in the reference's (i, j) order.
template <typename T>
__global__ void col2im_kernel(const T* __restrict__ col, T* __restrict__ x, long long total,
                              int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                              int DH, int DW, int OH, int OW) {
    const long long window_plane = (long long)OH * OW;
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(index % W);
        const int h = (int)((index / W) % H);
        const long long plane = index / ((long long)H * W);
        const T* plane_col = col + plane * KH * KW * window_plane;
        T sum = T(0);
        for (int i = 0; i < KH; ++i) {
            const int hs = h + PH - i * DH;                 // = oh * SH when window row oh covers h
            if (hs < 0 || hs % SH != 0 || hs / SH >= OH) continue;
            const int oh = hs / SH;
            for (int j = 0; j < KW; ++j) {
                const int ws = w + PW - j * DW;
                if (ws < 0 || ws % SW != 0 || ws / SW >= OW) continue;
                sum += plane_col[((long long)(i * KW + j) * OH + oh) * OW + ws / SW];
            }
        }
        x[index] = sum;
    }
}
