// Per-frame luma statistics, bit-exact with kernels/src/cpu.rs.
//
// Frames arrive as one packed buffer: the frame before the batch (or zeros),
// then the batch. Pass 1 computes each frame's luma sum and 64-bin histogram;
// pass 2 the absolute and mean-compensated differences of frame i to frame i-1.
// Integer atomics make the results independent of scheduling order.

#define HIST_BINS 64
#define THREADS 256

__device__ __forceinline__ unsigned long long warp_sum(unsigned long long v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// grid: (blocks per frame, frames); block: THREADS.
extern "C" __global__ void __launch_bounds__(THREADS)
frame_sums(const unsigned char* __restrict__ frames, int pixels,
           unsigned long long* __restrict__ sums, unsigned int* __restrict__ hists) {
    __shared__ unsigned int hist[HIST_BINS];
    __shared__ unsigned long long partial[THREADS / 32];
    const int f = blockIdx.y;
    const unsigned char* frame = frames + (size_t)f * pixels;
    if (threadIdx.x < HIST_BINS) hist[threadIdx.x] = 0;
    __syncthreads();

    unsigned long long sum = 0;
    for (int i = blockIdx.x * THREADS + threadIdx.x; i < pixels; i += gridDim.x * THREADS) {
        unsigned int p = frame[i];
        sum += p;
        atomicAdd(&hist[p >> 2], 1u);
    }
    sum = warp_sum(sum);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = sum;
    __syncthreads();
    if (threadIdx.x < 32) {
        unsigned long long v = threadIdx.x < THREADS / 32 ? partial[threadIdx.x] : 0;
        v = warp_sum(v);
        if (threadIdx.x == 0) atomicAdd(&sums[f], v);
    }
    if (threadIdx.x < HIST_BINS && hist[threadIdx.x] != 0)
        atomicAdd(&hists[f * HIST_BINS + threadIdx.x], hist[threadIdx.x]);
}

// The whole-frame luma change, rounded half away from zero, clamped to
// [-255, 255]: the same integer as kernels::mean_offset.
__device__ __forceinline__ int mean_offset(unsigned long long cur, unsigned long long prev, long long n) {
    long long diff = (long long)cur - (long long)prev;
    long long mag = diff < 0 ? -diff : diff;
    long long q = (2 * mag + n) / (2 * n);
    if (q > 255) q = 255;
    return diff < 0 ? -(int)q : (int)q;
}

// grid: (blocks per frame, frames - 1); frame i = blockIdx.y + 1 against i - 1.
extern "C" __global__ void __launch_bounds__(THREADS)
frame_diffs(const unsigned char* __restrict__ frames, int pixels,
            const unsigned long long* __restrict__ sums,
            unsigned long long* __restrict__ abs_diff, unsigned long long* __restrict__ residual) {
    __shared__ unsigned long long partial_a[THREADS / 32];
    __shared__ unsigned long long partial_r[THREADS / 32];
    const int f = blockIdx.y + 1;
    const unsigned char* cur = frames + (size_t)f * pixels;
    const unsigned char* prev = cur - pixels;
    const int offset = mean_offset(sums[f], sums[f - 1], pixels);

    unsigned long long a = 0, r = 0;
    for (int i = blockIdx.x * THREADS + threadIdx.x; i < pixels; i += gridDim.x * THREADS) {
        int d = (int)cur[i] - (int)prev[i];
        a += (unsigned long long)abs(d);
        r += (unsigned long long)abs(d - offset);
    }
    a = warp_sum(a);
    r = warp_sum(r);
    if ((threadIdx.x & 31) == 0) {
        partial_a[threadIdx.x >> 5] = a;
        partial_r[threadIdx.x >> 5] = r;
    }
    __syncthreads();
    if (threadIdx.x < 32) {
        unsigned long long va = threadIdx.x < THREADS / 32 ? partial_a[threadIdx.x] : 0;
        unsigned long long vr = threadIdx.x < THREADS / 32 ? partial_r[threadIdx.x] : 0;
        va = warp_sum(va);
        vr = warp_sum(vr);
        if (threadIdx.x == 0) {
            atomicAdd(&abs_diff[f - 1], va);
            atomicAdd(&residual[f - 1], vr);
        }
    }
}
