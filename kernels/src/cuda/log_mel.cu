// Whisper log-mel spectrogram, the same sums as kernels/src/mel.rs.
//
// grid: (WINDOW_FRAMES, windows); block: 256 threads, one frame per block.
// Tables (Hann-weighted DFT rows, mel filters, band ranges) come from the host
// so both backends use identical constants.

#define N_FFT 400
#define HOP 160
#define N_BINS 201
#define N_MELS 80
#define WINDOW_SAMPLES 480000
#define WINDOW_FRAMES 3000
#define MEL_THREADS 256

// Ordered max for floats of either sign, on the int/uint views of the bits.
__device__ __forceinline__ void atomic_max_float(float* addr, float v) {
    if (v >= 0.0f) atomicMax((int*)addr, __float_as_int(v));
    else atomicMin((unsigned int*)addr, __float_as_uint(v));
}

__device__ __forceinline__ int reflect_index(int i) {
    const int period = 2 * (WINDOW_SAMPLES - 1);
    int j = i % period;
    if (j < 0) j += period;
    return j >= WINDOW_SAMPLES ? period - j : j;
}

extern "C" __global__ void __launch_bounds__(MEL_THREADS)
log_mel_frames(const float* __restrict__ windows, const float* __restrict__ cos_t,
               const float* __restrict__ sin_t, const float* __restrict__ filters,
               const int* __restrict__ band_lo, const int* __restrict__ band_hi,
               float* __restrict__ out, float* __restrict__ maxes) {
    __shared__ float frame[N_FFT];
    __shared__ float power[N_BINS];
    __shared__ float block_max[N_MELS];
    const int f = blockIdx.x, w = blockIdx.y;
    const float* x = windows + (size_t)w * WINDOW_SAMPLES;
    const int start = f * HOP - N_FFT / 2;
    for (int n = threadIdx.x; n < N_FFT; n += MEL_THREADS) frame[n] = x[reflect_index(start + n)];
    __syncthreads();
    for (int k = threadIdx.x; k < N_BINS; k += MEL_THREADS) {
        const float* c = cos_t + k * N_FFT;
        const float* s = sin_t + k * N_FFT;
        float re = 0.0f, im = 0.0f;
        for (int n = 0; n < N_FFT; ++n) {
            re += frame[n] * c[n];
            im -= frame[n] * s[n];
        }
        power[k] = re * re + im * im;
    }
    __syncthreads();
    if (threadIdx.x < N_MELS) {
        const int m = threadIdx.x;
        float mel = 0.0f;
        for (int k = band_lo[m]; k < band_hi[m]; ++k) mel += filters[m * N_BINS + k] * power[k];
        const float v = log10f(fmaxf(mel, 1e-10f));
        out[((size_t)w * N_MELS + m) * WINDOW_FRAMES + f] = v;
        block_max[m] = v;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float mx = block_max[0];
        for (int m = 1; m < N_MELS; ++m) mx = fmaxf(mx, block_max[m]);
        atomic_max_float(&maxes[w], mx);
    }
}

// grid: (ceil(N_MELS * WINDOW_FRAMES / 256), windows); block: 256.
extern "C" __global__ void log_mel_normalise(float* __restrict__ out, const float* __restrict__ maxes) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int w = blockIdx.y;
    if (i >= N_MELS * WINDOW_FRAMES) return;
    float* v = out + (size_t)w * N_MELS * WINDOW_FRAMES + i;
    *v = (fmaxf(*v, maxes[w] - 8.0f) + 4.0f) / 4.0f;
}
