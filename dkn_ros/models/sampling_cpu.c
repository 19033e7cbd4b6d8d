/* FDKN's last step on the CPU in one pass over the output: the products of the two
 * streams' heads (sigmoid weights, offsets; paper section 3.3) and the deformable
 * weighted average (eq. 3-7). Compiled on first use by dkn_ros/native.py and called
 * through ctypes by dkn_ros/models/sampling_cpu.py; the definition is FDKN.block_kernels
 * followed by deformable_weighted_average_blocks (dkn_ros/models/).
 *
 * target              (B, C, H, W)            float32, contiguous
 * weight_g, weight_t  (B, h, w, k^2 r^2)      the two weight heads' outputs before the
 *                                             sigmoid, channels last, float32 or bfloat16
 * offset_g, offset_t  (B, h, w, 2 k^2 r^2)    the two offset heads' outputs (dx channels,
 *                                             then dy channels), as the weights
 * out                 (B, C, H, W)            float32, contiguous; H = r h, W = r w
 *
 * Channel n r^2 + s of the kernels at (y, x) belongs to output pixel
 * p = (r y + s / r, r x + s % r) and sample n = i k + j at q = (j - k / 2, i - k / 2).
 * The B h rows of kernels (b, y) are shared out among `threads` OpenMP threads (the
 * runtime PyTorch uses, see dkn_ros/native.py); compiled without OpenMP, one thread.
 */
#include <math.h>
#include <stdint.h>

#define MAX_SAMPLES 49 /* k <= 7 */
#define MAX_BLOCK2 64  /* block <= 8 */

static inline float from_bfloat16(uint16_t bits)
{
    union {
        uint32_t bits;
        float value;
    } number = {.bits = (uint32_t)bits << 16};
    return number.value;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* The kernels of LR pixel `at`: K = sigmoid(weight_g) sigmoid(weight_t), dq = offset_g
 * offset_t, in float32 whatever the heads' dtype. */
static void products(const void *weight_g, const void *weight_t, const void *offset_g,
                     const void *offset_t, int64_t bfloat16, int64_t n_weights, int64_t at,
                     float *kernel, float *dq)
{
    const int64_t w0 = at * n_weights, o0 = 2 * at * n_weights;
    if (bfloat16) {
        const uint16_t *wg = (const uint16_t *)weight_g + w0, *wt = (const uint16_t *)weight_t + w0;
        const uint16_t *og = (const uint16_t *)offset_g + o0, *ot = (const uint16_t *)offset_t + o0;
        for (int64_t i = 0; i < n_weights; ++i)
            kernel[i] = sigmoid(from_bfloat16(wg[i])) * sigmoid(from_bfloat16(wt[i]));
        for (int64_t i = 0; i < 2 * n_weights; ++i)
            dq[i] = from_bfloat16(og[i]) * from_bfloat16(ot[i]);
    } else {
        const float *wg = (const float *)weight_g + w0, *wt = (const float *)weight_t + w0;
        const float *og = (const float *)offset_g + o0, *ot = (const float *)offset_t + o0;
        for (int64_t i = 0; i < n_weights; ++i)
            kernel[i] = sigmoid(wg[i]) * sigmoid(wt[i]);
        for (int64_t i = 0; i < 2 * n_weights; ++i)
            dq[i] = og[i] * ot[i];
    }
}

#ifdef _OPENMP
int omp_get_thread_num(void);
int omp_get_num_threads(void);
#endif

static void rows(const float *target, const void *weight_g, const void *weight_t,
                 const void *offset_g, const void *offset_t, int64_t bfloat16, float *out,
                 int64_t channels, int64_t height, int64_t width, int64_t h, int64_t w,
                 int64_t kernel_size, int64_t block, int64_t residual, float radius,
                 int64_t first, int64_t last)
{
    const int64_t r2 = block * block, k2 = kernel_size * kernel_size, half = kernel_size / 2;
    const int64_t n_weights = k2 * r2;
    const float x_max = (float)(width - 1), y_max = (float)(height - 1);
    float kernel[MAX_SAMPLES * MAX_BLOCK2], dq[2 * MAX_SAMPLES * MAX_BLOCK2];
    float sample_x[MAX_SAMPLES * MAX_BLOCK2];
    float sample_y[MAX_SAMPLES * MAX_BLOCK2], total[MAX_BLOCK2];
    float column[MAX_BLOCK2], row_in_block[MAX_BLOCK2];
    if (k2 > MAX_SAMPLES || r2 > MAX_BLOCK2)
        return; /* checked by the caller */
    for (int64_t s = 0; s < r2; ++s) {
        column[s] = (float)(s % block);
        row_in_block[s] = (float)(s / block);
    }
    for (int64_t item = first; item < last; ++item) {
        const int64_t b = item / h, y = item % h;
        const float *image = target + b * channels * height * width;
        float *result = out + b * channels * height * width;
        for (int64_t x = 0; x < w; ++x) {
            products(weight_g, weight_t, offset_g, offset_t, bfloat16, n_weights,
                     (b * h + y) * w + x, kernel, dq);
            /* K_p(q): mean-subtracted (eq. 3) or L1-normalised (eq. 7) */
            for (int64_t s = 0; s < r2; ++s)
                total[s] = 0.0f;
            for (int64_t n = 0; n < k2; ++n)
                for (int64_t s = 0; s < r2; ++s)
                    total[s] += residual ? kernel[n * r2 + s] : fabsf(kernel[n * r2 + s]);
            for (int64_t s = 0; s < r2; ++s)
                total[s] = residual ? total[s] / (float)k2 : 1.0f / fmaxf(total[s], 1e-12f);
            for (int64_t n = 0; n < k2; ++n)
                for (int64_t s = 0; s < r2; ++s)
                    kernel[n * r2 + s] = residual ? kernel[n * r2 + s] - total[s]
                                                  : kernel[n * r2 + s] * total[s];
            /* s(q) = p + clamp(q + dq, -d/2, d/2) (eq. 4), inside the image: border
             * padding with align_corners=True clamps to the edge pixels */
            const float left = (float)(block * x), top_row = (float)(block * y);
            for (int64_t n = 0; n < k2; ++n) {
                const float qy = (float)(n / kernel_size - half);
                const float qx = (float)(n % kernel_size - half);
                for (int64_t s = 0; s < r2; ++s) {
                    const float dx = fminf(fmaxf(dq[n * r2 + s] + qx, -radius), radius);
                    const float dy = fminf(fmaxf(dq[(k2 + n) * r2 + s] + qy, -radius), radius);
                    sample_x[n * r2 + s] = fminf(fmaxf(left + column[s] + dx, 0.0f), x_max);
                    sample_y[n * r2 + s] = fminf(fmaxf(top_row + row_in_block[s] + dy, 0.0f), y_max);
                }
            }
            /* sum_q K_p(q) f_s(q), f sampled bilinearly (eq. 5-6), plus f_p (eq. 3) */
            for (int64_t c = 0; c < channels; ++c) {
                const float *f = image + c * height * width;
                for (int64_t s = 0; s < r2; ++s)
                    total[s] = 0.0f;
                for (int64_t n = 0; n < k2; ++n)
                    for (int64_t s = 0; s < r2; ++s) {
                        const float sx = sample_x[n * r2 + s], sy = sample_y[n * r2 + s];
                        const int64_t x0 = (int64_t)sx, y0 = (int64_t)sy;
                        const float fx = sx - (float)x0, fy = sy - (float)y0;
                        const int64_t x1 = x0 + 1 < width ? x0 + 1 : width - 1;
                        const int64_t y1 = y0 + 1 < height ? y0 + 1 : height - 1;
                        const float f00 = f[y0 * width + x0], f01 = f[y0 * width + x1];
                        const float f10 = f[y1 * width + x0], f11 = f[y1 * width + x1];
                        const float upper = f00 + fx * (f01 - f00);
                        const float lower = f10 + fx * (f11 - f10);
                        total[s] += kernel[n * r2 + s] * (upper + fy * (lower - upper));
                    }
                for (int64_t s = 0; s < r2; ++s) {
                    const int64_t p = (block * y + s / block) * width + block * x + s % block;
                    result[c * height * width + p] = total[s] + (residual ? f[p] : 0.0f);
                }
            }
        }
    }
}

void fdkn_last_step(const float *target, const void *weight_g, const void *weight_t,
                    const void *offset_g, const void *offset_t, int64_t bfloat16, float *out,
                    int64_t batch, int64_t channels, int64_t height, int64_t width, int64_t h,
                    int64_t w, int64_t kernel_size, int64_t block, int64_t residual,
                    float radius, int64_t threads)
{
    const int64_t items = batch * h;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        const int64_t part = omp_get_thread_num(), parts = omp_get_num_threads();
        rows(target, weight_g, weight_t, offset_g, offset_t, bfloat16, out, channels, height,
             width, h, w, kernel_size, block, residual, radius, items * part / parts,
             items * (part + 1) / parts);
    }
#else
    (void)threads;
    rows(target, weight_g, weight_t, offset_g, offset_t, bfloat16, out, channels, height, width,
         h, w, kernel_size, block, residual, radius, 0, items);
#endif
}
