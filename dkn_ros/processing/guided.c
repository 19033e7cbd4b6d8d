/* Joint bilateral upsampling (dkn_ros/processing/guided.py, which defines it and holds
 * the equations) in one pass over the colour image, for the CPU. Compiled on first use
 * by dkn_ros/native.py and called through ctypes by guided.py, which prepares the
 * per-row and per-column terms below exactly as its PyTorch version does.
 *
 * samples   (4, h, w)       float32: LR depth, then the RGB guidance at each LR sample
 * image     (3, H, W)       float32: RGB guidance
 * near_row  (2r + 1, H)     int64:   the LR row of neighbour dy of colour row Y
 * space_row (2r + 1, H)     float32: its spatial term (c(qy) - Y)^2 / (s_y^2 2 sigma_s^2)
 * near_col  (2r + 1, W)     int64, space_col (2r + 1, W) float32: the same for columns
 * out       (H, W)          float32
 *
 * Colour rows are shared out among `threads` OpenMP threads (PyTorch's runtime, see
 * dkn_ros/native.py); compiled without OpenMP, one thread.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef _OPENMP
int omp_get_thread_num(void);
int omp_get_num_threads(void);
#endif

static void rows(const float *samples, const float *image, const int64_t *near_row,
                 const float *space_row, const int64_t *near_col, const float *space_col,
                 float *out, int64_t h, int64_t w, int64_t height, int64_t width,
                 int64_t neighbours, float inv_color, float *numerator, float *denominator,
                 int64_t first, int64_t last)
{
    const int64_t lr = h * w, plane = height * width;
    for (int64_t y = first; y < last; ++y) {
        const float *red = image + y * width, *green = red + plane, *blue = green + plane;
        for (int64_t x = 0; x < width; ++x)
            numerator[x] = denominator[x] = 0.0f;
        for (int64_t dy = 0; dy < neighbours; ++dy) {
            const int64_t qy = near_row[dy * height + y];
            const float space_y = space_row[dy * height + y];
            const float *depth_row = samples + qy * w;
            for (int64_t dx = 0; dx < neighbours; ++dx) {
                const int64_t *qx = near_col + dx * width;
                const float *space_x = space_col + dx * width;
                for (int64_t x = 0; x < width; ++x) {
                    const float *sample = depth_row + qx[x];
                    const float dr = sample[lr] - red[x], dg = sample[2 * lr] - green[x];
                    const float db = sample[3 * lr] - blue[x];
                    const float logit =
                        (dr * dr + dg * dg + db * db) * -inv_color - space_y - space_x[x];
                    const float weight = expf(logit);
                    denominator[x] += weight;
                    numerator[x] += weight * sample[0];
                }
            }
        }
        for (int64_t x = 0; x < width; ++x)
            out[y * width + x] = numerator[x] / fmaxf(denominator[x], 1e-30f);
    }
}

int joint_bilateral_upsample(const float *samples, const float *image, const int64_t *near_row,
                             const float *space_row, const int64_t *near_col,
                             const float *space_col, float *out, int64_t h, int64_t w,
                             int64_t height, int64_t width, int64_t neighbours,
                             float inv_color, int64_t threads)
{
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        const int64_t part = omp_get_thread_num(), parts = omp_get_num_threads();
        const int64_t first = height * part / parts, last = height * (part + 1) / parts;
#else
    (void)threads;
    {
        const int64_t first = 0, last = height;
#endif
        float *buffers = malloc(2 * width * sizeof(float));
        if (buffers == NULL)
            failed = 1;
        else
            rows(samples, image, near_row, space_row, near_col, space_col, out, h, w, height,
                 width, neighbours, inv_color, buffers, buffers + width, first, last);
        free(buffers);
    }
    return failed;
}
