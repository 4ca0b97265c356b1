// Peak and mean square per window, the same windows as kernels/src/loudness.rs.
//
// grid: (windows); block: LOUD_THREADS threads, one window per block. Window
// bounds are computed in double precision exactly as the host does so both
// backends cut the signal at the same samples. The sum of squares is kept in
// double so the result does not depend on the reduction order beyond rounding
// of the final division.

#define LOUD_THREADS 256

extern "C" __global__ void __launch_bounds__(LOUD_THREADS)
window_levels(const float* __restrict__ samples, long long n_samples,
              double samples_per_window, float* __restrict__ peaks,
              float* __restrict__ mean_squares) {
    __shared__ float s_peak[LOUD_THREADS];
    __shared__ double s_sum[LOUD_THREADS];
    const long long w = blockIdx.x;
    long long start = (long long)((double)w * samples_per_window + 1e-6);
    long long end = (long long)((double)(w + 1) * samples_per_window + 1e-6);
    if (end > n_samples) end = n_samples;
    if (start > end) start = end;
    float peak = 0.0f;
    double sum = 0.0;
    for (long long i = start + threadIdx.x; i < end; i += LOUD_THREADS) {
        const float x = samples[i];
        peak = fmaxf(peak, fabsf(x));
        sum += (double)x * (double)x;
    }
    s_peak[threadIdx.x] = peak;
    s_sum[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = LOUD_THREADS / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) {
            s_peak[threadIdx.x] = fmaxf(s_peak[threadIdx.x], s_peak[threadIdx.x + stride]);
            s_sum[threadIdx.x] += s_sum[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        peaks[w] = s_peak[0];
        mean_squares[w] = end > start ? (float)(s_sum[0] / (double)(end - start)) : 0.0f;
    }
}
