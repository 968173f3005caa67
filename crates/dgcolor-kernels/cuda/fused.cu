// CUDA versions of the fused CPU custom ops (BatchNorm2d in training mode, LeakyReLU, Adam in
// place): as candle ops each of them is many full passes over the tensor with a fresh
// allocation per pass, which on a GPU costs memory bandwidth and, at the paper's batch of 128,
// tens of GB of intermediates.
//
// Compiled to PTX by build.rs with `-fmad=false`, so every element sees the same f32 roundings
// as the CPU loops (no contracted multiply-adds); sqrt and division are IEEE (nvcc's default).
// Reductions use a fixed split and a fixed tree, so results are bit-identical run to run.
#include <stdint.h>

#define BLOCK 256

// Sum of `v` over a block of BLOCK threads in a fixed order; the result is valid in thread 0.
__device__ double block_sum(double v, double *shared) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < BLOCK / 32; ++w) total += shared[w];
    __syncthreads();
    return total;
}

// block_sum, valid in every thread of the block.
__device__ double block_sum_all(double v, double *shared) {
    const double total = block_sum(v, shared);
    if (threadIdx.x == 0) shared[0] = total;
    __syncthreads();
    const double r = shared[0];
    __syncthreads();
    return r;
}

// 1 / sqrt(var + eps) of channel ch, stats = [mean; var] (each [C]), as the CPU op rounds it.
__device__ inline float inv_std(const float *stats, uint32_t c, uint32_t ch, float eps) {
    return (float)(1.0 / sqrt((double)stats[c + ch] + (double)eps));
}

// BatchNorm of channel ch as y = x * scale + shift: scale = weight * inv, shift = bias -
// mean * scale, with affine = [weight; bias].
__device__ inline void bn_scale_shift(const float *stats, const float *affine, uint32_t c,
                                      uint32_t ch, float eps, float *scale, float *shift) {
    *scale = inv_std(stats, c, ch, eps) * affine[ch];
    *shift = affine[c + ch] - stats[ch] * *scale;
}

// The gradient at a BatchNorm output that a LeakyReLU(slope) followed: dy * (y > 0 ? 1 :
// slope), y = x * scale + shift recomputed as bn_forward made it.
__device__ inline float bn_act_grad(float x, float dy, float scale, float shift, float slope) {
    return x * scale + shift > 0.f ? dy : dy * slope;
}

// Per-channel partial sums of a contiguous [B, C, HW] tensor, in f64. Block (part, ch) covers
// the part-th of `parts` contiguous pieces of the channel's B*HW elements and writes
// partial[(ch * parts + part) * 2 + {0, 1}]:
//   dy == nullptr: (x, x^2)                      -> batch statistics
//   otherwise:     (g, g * (x - mean) * inv)     -> BatchNorm's gradient sums
// where stats = [mean; var; weight; bias] (each [C]), inv = 1 / sqrt(var + eps), and g = dy,
// or with act != 0 (a LeakyReLU after the BatchNorm) dy through it (bn_act_grad).
extern "C" __global__ void channel_partials(const float *x, const float *dy, const float *stats,
                                            float eps, int act, float slope, uint32_t b,
                                            uint32_t c, uint32_t hw, double *partial) {
    __shared__ double shared[BLOCK / 32];
    const uint32_t part = blockIdx.x, parts = gridDim.x, ch = blockIdx.y;
    const uint64_t n = (uint64_t)b * hw;
    const uint64_t lo = n * part / parts, hi = n * (part + 1) / parts;
    float mean = 0.f, inv = 0.f, scale = 0.f, shift = 0.f;
    if (dy != nullptr) {
        mean = stats[ch];
        inv = inv_std(stats, c, ch, eps);
        if (act) bn_scale_shift(stats, stats + 2 * c, c, ch, eps, &scale, &shift);
    }
    double s0 = 0.0, s1 = 0.0;
    for (uint64_t j = lo; j < hi;) {
        // One image's plane at a time: [t0, t1) of image `img`.
        const uint64_t img = j / hw, t0 = j - img * hw;
        const uint64_t t1 = min((uint64_t)hw, t0 + (hi - j));
        const uint64_t base = (img * c + ch) * hw;
        if (dy == nullptr) {
            for (uint64_t t = t0 + threadIdx.x; t < t1; t += BLOCK) {
                const double v = x[base + t];
                s0 += v;
                s1 += v * v;
            }
        } else {
            for (uint64_t t = t0 + threadIdx.x; t < t1; t += BLOCK) {
                const float v = x[base + t];
                const float g = act ? bn_act_grad(v, dy[base + t], scale, shift, slope)
                                    : dy[base + t];
                s0 += g;
                s1 += (double)(g * (v - mean) * inv);
            }
        }
        j += t1 - t0;
    }
    s0 = block_sum(s0, shared);
    s1 = block_sum(s1, shared);
    if (threadIdx.x == 0) {
        partial[((uint64_t)ch * parts + part) * 2] = s0;
        partial[((uint64_t)ch * parts + part) * 2 + 1] = s1;
    }
}

// Adds each channel's partial sums in order into out [2, C]. stats != 0: (mean, biased
// variance) over n elements; otherwise the two sums as they are.
extern "C" __global__ void channel_finish(const double *partial, uint32_t c, uint32_t parts,
                                          double n, int stats, float *out) {
    const uint32_t ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s0 = 0.0, s1 = 0.0;
    for (uint32_t p = 0; p < parts; ++p) {
        s0 += partial[((uint64_t)ch * parts + p) * 2];
        s1 += partial[((uint64_t)ch * parts + p) * 2 + 1];
    }
    if (stats) {
        const double mean = s0 / n;
        out[ch] = (float)mean;
        out[c + ch] = (float)fmax(s1 / n - mean * mean, 0.0);
    } else {
        out[ch] = (float)s0;
        out[c + ch] = (float)s1;
    }
}

// Grid (ceil(HW / blockDim), C, B): one thread per element, channel and image from the block.
__device__ inline bool plane_index(uint32_t hw, uint64_t *at) {
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    *at = ((uint64_t)blockIdx.z * gridDim.y + blockIdx.y) * hw + t;
    return t < hw;
}

// y = x * scale + shift (bn_scale_shift), then with act != 0 LeakyReLU(slope).
// affine = [weight; bias], stats = [mean; var], each [C].
extern "C" __global__ void bn_forward(const float *x, const float *affine, const float *stats,
                                      float eps, int act, float slope, uint32_t hw, float *y) {
    uint64_t at;
    if (!plane_index(hw, &at)) return;
    float scale, shift;
    bn_scale_shift(stats, affine, gridDim.y, blockIdx.y, eps, &scale, &shift);
    const float v = x[at] * scale + shift;
    y[at] = !act || v > 0.f ? v : v * slope;
}

// relu(cat([x * scale + shift, skip], 1)) over the output's planes (grid y = C + Cs): output
// channel ch < C is channel ch of x [B, C, HW] normalised with norm = [mean; var; weight;
// bias] (each [C]); the others are skip [B, Cs, HW]. `v > 0 ? v : 0`, as relu_cat.
extern "C" __global__ void bn_relu_cat(const float *x, const float *norm, const float *skip,
                                       float eps, uint32_t c, uint32_t hw, float *y) {
    uint64_t at;
    if (!plane_index(hw, &at)) return;
    const uint32_t ch = blockIdx.y, img = blockIdx.z, cs = gridDim.y - c;
    const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    float v;
    if (ch < c) {
        float scale, shift;
        bn_scale_shift(norm, norm + 2 * c, c, ch, eps, &scale, &shift);
        v = x[((uint64_t)img * c + ch) * hw + t] * scale + shift;
    } else {
        v = skip[((uint64_t)img * cs + (ch - c)) * hw + t];
    }
    y[at] = v > 0.f ? v : 0.f;
}

// y = x + bias[channel]
extern "C" __global__ void bias_add(const float *x, const float *bias, uint32_t hw, float *y) {
    uint64_t at;
    if (!plane_index(hw, &at)) return;
    y[at] = x[at] + bias[blockIdx.y];
}

// y += bias[channel], then with act != 0 y = LeakyReLU(slope)(y), in place (a convolution's
// fresh output).
extern "C" __global__ void bias_add_inplace(float *y, const float *bias, int act, float slope,
                                            uint32_t hw) {
    uint64_t at;
    if (!plane_index(hw, &at)) return;
    const float v = y[at] + bias[blockIdx.y];
    y[at] = !act || v > 0.f ? v : v * slope;
}

// dx = weight * inv / N * (N * g - sum(g) - x_hat * sum(g * x_hat)), g = dy or with act != 0
// dy through the LeakyReLU after the BatchNorm (bn_act_grad).
// aux = [mean; var; weight; bias; sum(g); sum(g * x_hat)], each [C]; N = B * HW.
extern "C" __global__ void bn_grad_input(const float *x, const float *dy, const float *aux,
                                         float eps, int act, float slope, uint32_t hw,
                                         float *dx) {
    uint64_t at;
    if (!plane_index(hw, &at)) return;
    const uint32_t c = gridDim.y, ch = blockIdx.y;
    const float n = (float)((uint64_t)gridDim.z * hw);
    const float mean = aux[ch], inv = inv_std(aux, c, ch, eps);
    const float k = aux[2 * c + ch] * inv / n;
    const float v = x[at];
    float g = dy[at];
    if (act) {
        float scale, shift;
        bn_scale_shift(aux, aux + 2 * c, c, ch, eps, &scale, &shift);
        g = bn_act_grad(v, g, scale, shift, slope);
    }
    const float x_hat = (v - mean) * inv;
    dx[at] = k * (n * g - aux[4 * c + ch] - x_hat * aux[5 * c + ch]);
}

#define FOR_EACH(i, len) \
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (len); \
         i += (uint64_t)gridDim.x * blockDim.x)

// y = x > 0 ? x : slope * x
extern "C" __global__ void leaky_relu(const float *x, float slope, uint64_t len, float *y) {
    FOR_EACH(i, len) {
        const float v = x[i];
        y[i] = v > 0.f ? v : v * slope;
    }
}

// dx = g * (x > 0 ? 1 : slope)
extern "C" __global__ void leaky_relu_grad(const float *x, const float *g, float slope,
                                           uint64_t len, float *dx) {
    FOR_EACH(i, len) dx[i] = x[i] > 0.f ? g[i] : g[i] * slope;
}

// m = m * decay + (g or g^2) * scale, in place.
extern "C" __global__ void adam_moment(float *m, const float *g, float decay, float scale,
                                       int square, uint64_t len) {
    FOR_EACH(i, len) {
        const float gi = square ? g[i] * g[i] : g[i];
        m[i] = m[i] * decay + gi * scale;
    }
}

// p -= m / (sqrt(v) * inv_sqrt_bias2 + eps) * step_size, in place.
extern "C" __global__ void adam_apply(float *p, const float *m, const float *v,
                                      float inv_sqrt_bias2, float eps, float step_size,
                                      uint64_t len) {
    FOR_EACH(i, len) {
        const float denom = sqrtf(v[i]) * inv_sqrt_bias2 + eps;
        p[i] -= m[i] / denom * step_size;
    }
}

// relu(cat([a, b], 1)) of a [B, Ca, H, W] and b [B, Cb, H, W]: per image, na = Ca*H*W values of
// a, then nb of b. `v > 0 ? v : 0`, the ReLU of the CPU op (NaN and -0 give +0).
extern "C" __global__ void relu_cat(const float *a, const float *b, uint64_t na, uint64_t nb,
                                    uint64_t len, float *y) {
    const uint64_t n = na + nb;
    FOR_EACH(i, len) {
        const uint64_t img = i / n, r = i - img * n;
        const float v = r < na ? a[img * na + r] : b[img * nb + (r - na)];
        y[i] = v > 0.f ? v : 0.f;
    }
}

// One operand's share of relu_cat's gradient: dx = out > 0 ? grad : 0 over the `np` values
// starting at `off` of each image's `n` values of out and grad ([B, C, H, W]).
extern "C" __global__ void relu_cat_grad(const float *out, const float *g, uint64_t n,
                                         uint64_t off, uint64_t np, uint64_t len, float *dx) {
    FOR_EACH(i, len) {
        const uint64_t img = i / np, at = img * n + off + (i - img * np);
        dx[i] = out[at] > 0.f ? g[at] : 0.f;
    }
}

// Inverted dropout, y = x * (draw < p ? 0 : scale), where draw i is word i of the ChaCha8
// keystream of key k (stream 0; rand_chacha's ChaCha8Rng) made a float in [0, 1) as rand 0.9
// does: (word >> 8) * 2^-24. The same op is its own backward (grad * mask). Each thread makes
// one 16-word block into shared memory; the block then reads and writes its 16 * blockDim
// elements coalesced. Launch with blockDim = BLOCK.
__device__ inline uint32_t rotl32(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }
#define CHACHA_QR(a, b, c, d)            \
    a += b; d = rotl32(d ^ a, 16);       \
    c += d; b = rotl32(b ^ c, 12);       \
    a += b; d = rotl32(d ^ a, 8);        \
    c += d; b = rotl32(b ^ c, 7);

extern "C" __global__ void dropout(const float *x, uint32_t k0, uint32_t k1, uint32_t k2,
                                   uint32_t k3, uint32_t k4, uint32_t k5, uint32_t k6,
                                   uint32_t k7, float p, float scale, uint64_t len, float *y) {
    __shared__ float mask[16 * BLOCK];
    const uint64_t per_block = 16 * (uint64_t)BLOCK;
    for (uint64_t start = (uint64_t)blockIdx.x * per_block; start < len;
         start += (uint64_t)gridDim.x * per_block) {
        const uint64_t counter = start / 16 + threadIdx.x;
        const uint32_t in[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u,
                                 k0, k1, k2, k3, k4, k5, k6, k7,
                                 (uint32_t)counter, (uint32_t)(counter >> 32), 0u, 0u};
        uint32_t s[16];
        for (int w = 0; w < 16; ++w) s[w] = in[w];
        for (int r = 0; r < 4; ++r) {
            CHACHA_QR(s[0], s[4], s[8], s[12]);
            CHACHA_QR(s[1], s[5], s[9], s[13]);
            CHACHA_QR(s[2], s[6], s[10], s[14]);
            CHACHA_QR(s[3], s[7], s[11], s[15]);
            CHACHA_QR(s[0], s[5], s[10], s[15]);
            CHACHA_QR(s[1], s[6], s[11], s[12]);
            CHACHA_QR(s[2], s[7], s[8], s[13]);
            CHACHA_QR(s[3], s[4], s[9], s[14]);
        }
        for (int w = 0; w < 16; ++w) {
            const float u = (float)((s[w] + in[w]) >> 8) * (1.0f / 16777216.0f);
            mask[threadIdx.x * 16 + w] = u < p ? 0.f : scale;
        }
        __syncthreads();
        const uint64_t end = min(len - start, per_block);
        for (uint64_t j = threadIdx.x; j < end; j += BLOCK) y[start + j] = x[start + j] * mask[j];
        __syncthreads();
    }
}

// Mean and unbiased variance of one plane of n values, by a block of BLOCK threads, in f64:
// the mean, then the centred sum of squares (src/adain.rs's mean_var).
__device__ void plane_mean_var(const float *p, uint64_t n, double *shared, double *mean,
                               double *var) {
    double s = 0.0;
    for (uint64_t i = threadIdx.x; i < n; i += BLOCK) s += p[i];
    const double m = block_sum_all(s, shared) / (double)n;
    s = 0.0;
    for (uint64_t i = threadIdx.x; i < n; i += BLOCK) {
        const double d = (double)p[i] - m;
        s += d * d;
    }
    *var = block_sum_all(s, shared) / (double)(n - 1);
    *mean = m;
}

// AdaIN (src/adain.rs) on planes of n content values x and ns style values y, one block of
// BLOCK threads per plane (blockIdx.x), with m, s (content) and M, S (style) the mean and
// sqrt(unbiased variance + eps), xhat = (x - m) / s:
//   pass 0: out = (x - m) * (S / s) + M                                  (content-shaped)
//   pass 1: out = S / s * (g - sum(g) / n - xhat * sum(g xhat) / (n - 1)) (content's gradient)
//   pass 2: out = sum(g) / ns + sum(g xhat) / S * (y - M) / (ns - 1)      (style's gradient)
// g is the output's gradient (content-shaped; unused by pass 0).
extern "C" __global__ void adain_plane(const float *x, const float *y, const float *g,
                                       uint64_t n, uint64_t ns, double eps, int32_t pass,
                                       float *out) {
    __shared__ double shared[BLOCK / 32];
    const uint64_t plane = blockIdx.x;
    const float *xp = x + plane * n, *yp = y + plane * ns;
    double m, v, mm, vv;
    plane_mean_var(xp, n, shared, &m, &v);
    plane_mean_var(yp, ns, shared, &mm, &vv);
    const double s = sqrt(v + eps), ss = sqrt(vv + eps);
    if (pass == 0) {
        const float scale = (float)(ss / s), mf = (float)m, mmf = (float)mm;
        float *op = out + plane * n;
        for (uint64_t i = threadIdx.x; i < n; i += BLOCK) op[i] = (xp[i] - mf) * scale + mmf;
        return;
    }
    const float *gp = g + plane * n;
    double s0 = 0.0, s1 = 0.0;
    for (uint64_t i = threadIdx.x; i < n; i += BLOCK) {
        const double gi = gp[i];
        s0 += gi;
        s1 += gi * ((double)xp[i] - m);
    }
    const double sg = block_sum_all(s0, shared), sgx = block_sum_all(s1, shared) / s;
    if (pass == 2) {
        const float a = (float)(sg / (double)ns), b = (float)(sgx / ss / (double)(ns - 1));
        const float mmf = (float)mm;
        float *op = out + plane * ns;
        for (uint64_t i = threadIdx.x; i < ns; i += BLOCK) op[i] = a + b * (yp[i] - mmf);
    } else {
        const float k = (float)(ss / s), mg = (float)(sg / (double)n);
        const float c = (float)(sgx / (double)(n - 1)), mf = (float)m, inv = (float)(1.0 / s);
        float *op = out + plane * n;
        for (uint64_t i = threadIdx.x; i < n; i += BLOCK)
            op[i] = k * (gp[i] - mg - (xp[i] - mf) * inv * c);
    }
}

// The pix2pix losses (src/loss.rs): kind 0 is |p - t|, kind 1 is (p - label)^2 (t unused).
__device__ inline double loss_value(int32_t kind, float p, float t, float label) {
    if (kind == 0) return fabs((double)p - (double)t);
    const double d = (double)p - (double)label;
    return d * d;
}

// Partial sums of the loss in f64: block `part` of `gridDim.x` sums the part-th contiguous
// piece of the len elements into partial[part].
extern "C" __global__ void loss_partials(const float *p, const float *t, int32_t kind, float label,
                                         uint64_t len, double *partial) {
    __shared__ double shared[BLOCK / 32];
    const uint64_t parts = gridDim.x, part = blockIdx.x;
    const uint64_t lo = len * part / parts, hi = len * (part + 1) / parts;
    double s = 0.0;
    for (uint64_t i = lo + threadIdx.x; i < hi; i += BLOCK)
        s += loss_value(kind, p[i], t == nullptr ? 0.f : t[i], label);
    const double total = block_sum(s, shared);
    if (threadIdx.x == 0) partial[part] = total;
}

// out[0] = sum(partial[0..parts]) / len, added in order by one thread.
extern "C" __global__ void loss_finish(const double *partial, uint32_t parts, uint64_t len,
                                       float *out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0.0;
    for (uint32_t i = 0; i < parts; ++i) s += partial[i];
    out[0] = (float)(s / (double)len);
}

// One operand's gradient: dx = (sign * g[0] / len) * d loss / d p, with the derivative
// sign(p - t) (0 where equal) or 2 (p - label).
extern "C" __global__ void loss_grad(const float *p, const float *t, const float *g,
                                     int32_t kind, float label, float sign, uint64_t len,
                                     float *dx) {
    const float k = sign * g[0] / (float)len;
    FOR_EACH(i, len) {
        float d;
        if (kind == 0) {
            const float a = p[i], b = t[i];
            d = a > b ? 1.f : (a < b ? -1.f : 0.f);
        } else {
            d = 2.f * (p[i] - label);
        }
        dx[i] = k * d;
    }
}
