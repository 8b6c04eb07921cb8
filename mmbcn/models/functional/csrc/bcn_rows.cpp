// CPU kernels behind BCN. A row is one (sample, channel) of an (N, C, L)
// input seen as (N*C, L). Compiled with -O3 -fopenmp (setup.py).
//
// Row kernels (rows in parallel, each row read from memory once per kernel;
// it stays in cache for the second pass of row_moments):
//
//   row_moments(x)              -> mean[r], biased var[r]  (two-pass per row)
//   row_affine(x, a, b)         -> a[r] * x + b[r]
//   row_sums(dy, x)             -> sum(dy)[r], sum(dy * x)[r]
//   row_affine2(dy, x, p, q, c) -> p[r] * dy + q[r] * x + c[r]
//
// Fused micro-batch BCN (the whole layer with fixed batch-stage statistics,
// see mmbcn/models/functional/bcn.py for the math), processed one block of
// rows at a time so that a block is read from memory once and its second
// pass finds it in cache, as torch's GroupNorm kernels do:
//
//   bcn_forward   blocks = channel groups (all samples): row moments, the
//                 per-channel batch moments and estimate update, the group
//                 statistics, then y = A[n, c] x + B[n, c];
//   bcn_backward  blocks = (sample, group): row sums of dy and dy x, the
//                 group means, then dx = P dy + Q x + R; the parameter
//                 gradients from the per-row sums at the end.
//
// Sums accumulate in vector lanes of T (several independent lanes, so that
// the adds pipeline) over blocks of kBlock elements, and the block sums in
// double (accurate for long rows); per-row and per-group statistics are
// combined in double. With GCC >= 12 on x86-64 Linux the kernels are compiled
// for AVX-512, AVX2 + FMA and the baseline ISA, and the loader picks the one
// the CPU runs (function multi-versioning), as torch picks its own kernels.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    defined(__x86_64__) && defined(__linux__)
#define MMBCN_CLONES \
  __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define MMBCN_CLONES
#endif
#if defined(__GNUC__)
#define MMBCN_INLINE inline __attribute__((always_inline))
#else
#define MMBCN_INLINE inline
#endif

namespace {

void check_rows(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.dim() == 2, name, " must be 2-D (rows, length), got ",
              t.dim(), "-D");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

at::Tensor per_row(const at::Tensor& t, const at::Tensor& like,
                   const char* name) {
  TORCH_CHECK(t.numel() == like.size(0), name, " needs one value per row");
  return t.contiguous().to(like.scalar_type());
}

// A per-channel or per-group (n, ...) vector as a contiguous tensor of x's
// dtype with `size` elements.
at::Tensor vec_of(const at::Tensor& t, const at::Tensor& x, int64_t size,
                  const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.numel() == size, name, " must have ", size,
              " elements, got ", t.numel());
  return t.contiguous().to(x.scalar_type());
}

// rows per parallel task: enough work per task to amortize scheduling
int64_t grain(int64_t length) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, length));
}

constexpr int64_t kBlock = 2048;

// sum of f(p[i]), i < n
template <typename T, typename F>
MMBCN_INLINE double lane_sum(const T* p, int64_t n, F f) {
  constexpr int K = 256 / sizeof(T);
  double total = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    T acc[K] = {};
    int64_t i = b;
    for (; i + K <= e; i += K) {
#pragma omp simd
      for (int j = 0; j < K; ++j) acc[j] += f(p[i + j]);
    }
    T part = 0;
    for (; i < e; ++i) part += f(p[i]);
#pragma omp simd reduction(+ : part)
    for (int j = 0; j < K; ++j) part += acc[j];
    total += part;
  }
  return total;
}

// sum of dy[i] and of dy[i] * x[i], i < n
template <typename T>
MMBCN_INLINE void lane_sums2(const T* dy, const T* x, int64_t n, double& s1,
                             double& s2) {
  constexpr int K = 128 / sizeof(T);
  double t1 = 0, t2 = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    T a1[K] = {}, a2[K] = {};
    int64_t i = b;
    for (; i + K <= e; i += K) {
#pragma omp simd
      for (int j = 0; j < K; ++j) {
        a1[j] += dy[i + j];
        a2[j] += dy[i + j] * x[i + j];
      }
    }
    T p1 = 0, p2 = 0;
    for (; i < e; ++i) {
      p1 += dy[i];
      p2 += dy[i] * x[i];
    }
#pragma omp simd reduction(+ : p1, p2)
    for (int j = 0; j < K; ++j) {
      p1 += a1[j];
      p2 += a2[j];
    }
    t1 += p1;
    t2 += p2;
  }
  s1 = t1;
  s2 = t2;
}

template <typename T>
MMBCN_INLINE void moments_row(const T* row, int64_t length, T& mean,
                              T& var) {
  const T m = static_cast<T>(lane_sum(row, length, [](T v) { return v; }) /
                             length);
  const double m2 = lane_sum(row, length, [m](T v) {
    const T d = v - m;
    return d * d;
  });
  mean = m;
  var = static_cast<T>(m2 / length);
}

template <typename T>
MMBCN_INLINE void affine_row(const T* x, T s, T t, T* y, int64_t length) {
#pragma omp simd
  for (int64_t i = 0; i < length; ++i) y[i] = s * x[i] + t;
}

template <typename T>
MMBCN_INLINE void affine2_row(const T* dy, const T* x, T a, T b, T t, T* out,
                              int64_t length) {
#pragma omp simd
  for (int64_t i = 0; i < length; ++i) out[i] = a * dy[i] + b * x[i] + t;
}

// ---------------------------------------------------------------- row kernels

template <typename T>
MMBCN_CLONES void moments_rows(const T* x, T* mean, T* var, int64_t begin,
                               int64_t end, int64_t length) {
  for (int64_t r = begin; r < end; ++r)
    moments_row(x + r * length, length, mean[r], var[r]);
}

template <typename T>
MMBCN_CLONES void affine_rows(const T* x, const T* a, const T* b, T* y,
                              int64_t begin, int64_t end, int64_t length) {
  for (int64_t r = begin; r < end; ++r)
    affine_row(x + r * length, a[r], b[r], y + r * length, length);
}

template <typename T>
MMBCN_CLONES void sums_rows(const T* dy, const T* x, T* s_dy, T* s_dyx,
                            int64_t begin, int64_t end, int64_t length) {
  for (int64_t r = begin; r < end; ++r) {
    double a, b;
    lane_sums2(dy + r * length, x + r * length, length, a, b);
    s_dy[r] = static_cast<T>(a);
    s_dyx[r] = static_cast<T>(b);
  }
}

template <typename T>
MMBCN_CLONES void affine2_rows(const T* dy, const T* x, const T* p,
                               const T* q, const T* c, T* out, int64_t begin,
                               int64_t end, int64_t length) {
  for (int64_t r = begin; r < end; ++r)
    affine2_row(dy + r * length, x + r * length, p[r], q[r], c[r],
                out + r * length, length);
}

// ------------------------------------------------------------- fused forward

// torch's lerp: start + w (end - start), from the nearer end for w >= 0.5
template <typename T>
MMBCN_INLINE T lerp(T start, T end, T w) {
  return w < T(0.5) ? start + w * (end - start)
                    : end - (end - start) * (T(1) - w);
}

template <typename T>
struct ForwardArgs {
  const T *x, *est_mean, *est_var, *bw, *bb, *w, *b;
  int64_t n, c, length, groups, w_div;  // w/b index: channel / w_div
  T eps, rate;
  bool update;
  // outputs
  T *y, *mean_nc, *var_nc, *new_mean, *new_var, *m, *v, *a, *inv, *mean_inv,
      *centre, *rstd;
};

template <typename T>
MMBCN_CLONES void forward_groups(const ForwardArgs<T>& p, int64_t g_begin,
                                 int64_t g_end) {
  const int64_t d = p.c / p.groups, length = p.length;
  std::vector<T> shift(d);
  for (int64_t g = g_begin; g < g_end; ++g) {
    const int64_t c0 = g * d;
    // 1. moments of the block's rows
    for (int64_t s = 0; s < p.n; ++s)
      for (int64_t c = c0; c < c0 + d; ++c) {
        const int64_t r = s * p.c + c;
        moments_row(p.x + r * length, length, p.mean_nc[r], p.var_nc[r]);
      }
    // 2. batch moments, estimates, batch-stage affine a x + shift
    for (int64_t c = c0; c < c0 + d; ++c) {
      double sm = 0, sv = 0;
      for (int64_t s = 0; s < p.n; ++s) {
        const int64_t r = s * p.c + c;
        const T dev = p.mean_nc[r] - p.est_mean[c];
        sm += p.mean_nc[r];
        sv += p.var_nc[r] + dev * dev;
      }
      p.m[c] = static_cast<T>(sm / p.n);
      p.v[c] = static_cast<T>(sv / p.n);
      T em = p.est_mean[c], ev = p.est_var[c];
      if (p.update) {
        em = lerp(em, p.m[c], p.rate);
        ev = lerp(ev, p.v[c], p.rate);
      }
      p.new_mean[c] = em;
      p.new_var[c] = ev;
      const T inv = T(1) / std::sqrt(ev + p.eps);
      p.inv[c] = inv;
      p.a[c] = p.bw[c] * inv;
      p.mean_inv[c] = em * inv;
      shift[c - c0] = p.bb[c] - p.a[c] * em;
    }
    // 3. per sample: group statistics of a x + shift, then the output
    for (int64_t s = 0; s < p.n; ++s) {
      const int64_t r0 = s * p.c + c0;
      double sum1 = 0;
      for (int64_t j = 0; j < d; ++j)
        sum1 += p.a[c0 + j] * p.mean_nc[r0 + j] + shift[j];
      const double mean_g = sum1 / d;
      double sq = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double aj = p.a[c0 + j];
        const double m1 = aj * p.mean_nc[r0 + j] + shift[j] - mean_g;
        sq += aj * aj * p.var_nc[r0 + j] + m1 * m1;
      }
      const T rstd = static_cast<T>(1 / std::sqrt(sq / d + p.eps));
      p.rstd[s * p.groups + g] = rstd;
      for (int64_t j = 0; j < d; ++j) {
        const int64_t c = c0 + j, r = r0 + j;
        const T centre = shift[j] - static_cast<T>(mean_g);
        p.centre[r] = centre;
        const T w = p.w[c / p.w_div], b = p.b[c / p.w_div];
        affine_row(p.x + r * length, p.a[c] * rstd * w,
                   centre * rstd * w + b, p.y + r * length, length);
      }
    }
  }
}

// ------------------------------------------------------------ fused backward

template <typename T>
struct BackwardArgs {
  const T *dy, *x, *a, *centre, *rstd, *w;
  int64_t n, c, length, groups, w_div;
  bool need_x;
  // outputs: grad_x (if need_x), per-row sums, per-(sample, group) means
  T* grad_x;
  double *s_dy, *s_dyx, *s_dy_xhat, *g1, *g2;
};

template <typename T>
MMBCN_CLONES void backward_blocks(const BackwardArgs<T>& p, int64_t begin,
                                  int64_t end) {
  const int64_t d = p.c / p.groups, length = p.length;
  const double group_size = static_cast<double>(d) * length;
  for (int64_t blk = begin; blk < end; ++blk) {  // blk = s * groups + g
    const int64_t s = blk / p.groups, g = blk % p.groups, c0 = g * d;
    const int64_t r0 = s * p.c + c0;
    const double rstd = p.rstd[blk];
    double sum1 = 0, sum2 = 0;
    for (int64_t j = 0; j < d; ++j) {
      const int64_t r = r0 + j, c = c0 + j;
      double a, b;
      lane_sums2(p.dy + r * length, p.x + r * length, length, a, b);
      p.s_dy[r] = a;
      p.s_dyx[r] = b;
      const double sx = rstd * (p.a[c] * b + p.centre[r] * a);
      p.s_dy_xhat[r] = sx;
      const double w = p.w[c / p.w_div];
      sum1 += w * a;
      sum2 += w * sx;
    }
    const double g1 = sum1 / group_size, g2 = sum2 / group_size;
    p.g1[blk] = g1;
    p.g2[blk] = g2;
    if (!p.need_x) continue;
    for (int64_t j = 0; j < d; ++j) {
      const int64_t r = r0 + j, c = c0 + j;
      const double ar = p.a[c] * rstd;
      affine2_row(p.dy + r * length, p.x + r * length,
                  static_cast<T>(ar * p.w[c / p.w_div]),
                  static_cast<T>(-ar * ar * g2),
                  static_cast<T>(-ar * (g1 + rstd * g2 * p.centre[r])),
                  p.grad_x + r * length, length);
    }
  }
}

void check_fused_input(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "x must be a CPU tensor");
  TORCH_CHECK(x.dim() == 3, "x must be 3-D (N, C, L), got ", x.dim(), "-D");
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
}

int64_t affine_div(const at::Tensor& w, int64_t channels, int64_t groups) {
  TORCH_CHECK(w.numel() == channels || w.numel() == groups,
              "weight / bias need one value per group or per channel");
  return w.numel() == channels ? 1 : channels / groups;
}

}  // namespace

// ---------------------------------------------------------------- bindings

std::vector<at::Tensor> row_moments(const at::Tensor& x) {
  check_rows(x, "x");
  const int64_t rows = x.size(0), length = x.size(1);
  auto mean = at::empty({rows}, x.options());
  auto var = at::empty({rows}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_moments", [&] {
    const scalar_t* px = x.data_ptr<scalar_t>();
    scalar_t* pm = mean.data_ptr<scalar_t>();
    scalar_t* pv = var.data_ptr<scalar_t>();
    at::parallel_for(0, rows, grain(length), [&](int64_t b, int64_t e) {
      moments_rows<scalar_t>(px, pm, pv, b, e, length);
    });
  });
  return {mean, var};
}

at::Tensor row_affine(const at::Tensor& x, const at::Tensor& a,
                      const at::Tensor& b) {
  check_rows(x, "x");
  const int64_t rows = x.size(0), length = x.size(1);
  auto ac = per_row(a, x, "a");
  auto bc = per_row(b, x, "b");
  auto y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_affine", [&] {
    const scalar_t* px = x.data_ptr<scalar_t>();
    const scalar_t* pa = ac.data_ptr<scalar_t>();
    const scalar_t* pb = bc.data_ptr<scalar_t>();
    scalar_t* py = y.data_ptr<scalar_t>();
    at::parallel_for(0, rows, grain(length), [&](int64_t s, int64_t e) {
      affine_rows<scalar_t>(px, pa, pb, py, s, e, length);
    });
  });
  return y;
}

std::vector<at::Tensor> row_sums(const at::Tensor& dy, const at::Tensor& x) {
  check_rows(dy, "dy");
  check_rows(x, "x");
  TORCH_CHECK(dy.sizes() == x.sizes(), "dy and x must have the same shape");
  TORCH_CHECK(dy.scalar_type() == x.scalar_type(),
              "dy and x must have the same dtype");
  const int64_t rows = x.size(0), length = x.size(1);
  auto s_dy = at::empty({rows}, x.options());
  auto s_dyx = at::empty({rows}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_sums", [&] {
    const scalar_t* pd = dy.data_ptr<scalar_t>();
    const scalar_t* px = x.data_ptr<scalar_t>();
    scalar_t* p1 = s_dy.data_ptr<scalar_t>();
    scalar_t* p2 = s_dyx.data_ptr<scalar_t>();
    at::parallel_for(0, rows, grain(length), [&](int64_t s, int64_t e) {
      sums_rows<scalar_t>(pd, px, p1, p2, s, e, length);
    });
  });
  return {s_dy, s_dyx};
}

at::Tensor row_affine2(const at::Tensor& dy, const at::Tensor& x,
                       const at::Tensor& p, const at::Tensor& q,
                       const at::Tensor& c) {
  check_rows(dy, "dy");
  check_rows(x, "x");
  TORCH_CHECK(dy.sizes() == x.sizes(), "dy and x must have the same shape");
  TORCH_CHECK(dy.scalar_type() == x.scalar_type(),
              "dy and x must have the same dtype");
  const int64_t rows = x.size(0), length = x.size(1);
  auto pc = per_row(p, x, "p");
  auto qc = per_row(q, x, "q");
  auto cc = per_row(c, x, "c");
  auto out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_affine2", [&] {
    const scalar_t* pd = dy.data_ptr<scalar_t>();
    const scalar_t* px = x.data_ptr<scalar_t>();
    const scalar_t* pp = pc.data_ptr<scalar_t>();
    const scalar_t* pq = qc.data_ptr<scalar_t>();
    const scalar_t* pr = cc.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, rows, grain(length), [&](int64_t s, int64_t e) {
      affine2_rows<scalar_t>(pd, px, pp, pq, pr, po, s, e, length);
    });
  });
  return out;
}

// Returns y (N, C, L); mean_nc, var_nc (N, C); new_mean, new_var (C) (the
// estimates after the update, or as given without update); m, v (C) the
// batch moments of the update (v around the given estimate); a, inv,
// mean_inv (C); centre (N, C); rstd (N, G).
std::vector<at::Tensor> bcn_forward(
    const at::Tensor& x, const at::Tensor& est_mean,
    const at::Tensor& est_var, const at::Tensor& batch_weight,
    const at::Tensor& batch_bias, const at::Tensor& weight,
    const at::Tensor& bias, int64_t groups, double eps, bool update,
    double rate) {
  check_fused_input(x);
  const int64_t n = x.size(0), c = x.size(1), length = x.size(2);
  TORCH_CHECK(n >= 1 && length >= 1, "x must have N >= 1 and L >= 1");
  TORCH_CHECK(groups >= 1 && c % groups == 0, "groups (", groups,
              ") must divide the channels (", c, ")");
  TORCH_CHECK(weight.numel() == bias.numel(),
              "weight and bias must have the same size");
  const int64_t w_div = affine_div(weight, c, groups);
  auto em = vec_of(est_mean, x, c, "est_mean");
  auto ev = vec_of(est_var, x, c, "est_var");
  auto bw = vec_of(batch_weight, x, c, "batch_weight");
  auto bb = vec_of(batch_bias, x, c, "batch_bias");
  auto w = vec_of(weight, x, weight.numel(), "weight");
  auto b = vec_of(bias, x, bias.numel(), "bias");
  auto y = at::empty_like(x);
  auto nc = at::empty({n, c}, x.options());
  auto mean_nc = at::empty_like(nc), var_nc = at::empty_like(nc);
  auto centre = at::empty_like(nc);
  auto rstd = at::empty({n, groups}, x.options());
  auto per_c = [&] { return at::empty({c}, x.options()); };
  auto new_mean = per_c(), new_var = per_c(), m = per_c(), v = per_c(),
       a = per_c(), inv = per_c(), mean_inv = per_c();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bcn_forward", [&] {
    using T = scalar_t;
    ForwardArgs<T> p{x.data_ptr<T>(), em.data_ptr<T>(), ev.data_ptr<T>(),
                     bw.data_ptr<T>(), bb.data_ptr<T>(), w.data_ptr<T>(),
                     b.data_ptr<T>(), n, c, length, groups, w_div,
                     static_cast<T>(eps), static_cast<T>(rate), update,
                     y.data_ptr<T>(), mean_nc.data_ptr<T>(),
                     var_nc.data_ptr<T>(), new_mean.data_ptr<T>(),
                     new_var.data_ptr<T>(), m.data_ptr<T>(), v.data_ptr<T>(),
                     a.data_ptr<T>(), inv.data_ptr<T>(),
                     mean_inv.data_ptr<T>(), centre.data_ptr<T>(),
                     rstd.data_ptr<T>()};
    const int64_t block = n * (c / groups) * length;
    at::parallel_for(0, groups, std::max<int64_t>(1, 32768 / block),
                     [&](int64_t s, int64_t e) { forward_groups<T>(p, s, e); });
  });
  return {y, mean_nc, var_nc, new_mean, new_var, m, v, a, inv, mean_inv,
          centre, rstd};
}

// Returns grad_x (undefined unless need_x), grad_batch_weight,
// grad_batch_bias (C), grad_weight, grad_bias (the size of weight).
std::vector<at::Tensor> bcn_backward(
    const at::Tensor& dy_in, const at::Tensor& x, const at::Tensor& mean_nc,
    const at::Tensor& var_nc, const at::Tensor& a, const at::Tensor& inv,
    const at::Tensor& mean_inv, const at::Tensor& centre,
    const at::Tensor& rstd, const at::Tensor& weight, int64_t groups,
    bool need_x) {
  check_fused_input(x);
  const int64_t n = x.size(0), c = x.size(1), length = x.size(2);
  TORCH_CHECK(dy_in.sizes() == x.sizes(), "dy and x must have the same shape");
  TORCH_CHECK(groups >= 1 && c % groups == 0, "groups (", groups,
              ") must divide the channels (", c, ")");
  auto dy = dy_in.contiguous().to(x.scalar_type());
  const int64_t w_div = affine_div(weight, c, groups);
  auto mn = vec_of(mean_nc, x, n * c, "mean_nc");
  auto vn = vec_of(var_nc, x, n * c, "var_nc");
  auto ac = vec_of(a, x, c, "a");
  auto ic = vec_of(inv, x, c, "inv");
  auto mic = vec_of(mean_inv, x, c, "mean_inv");
  auto cn = vec_of(centre, x, n * c, "centre");
  auto rg = vec_of(rstd, x, n * groups, "rstd");
  auto w = vec_of(weight, x, weight.numel(), "weight");
  at::Tensor grad_x;
  if (need_x) grad_x = at::empty_like(x);
  std::vector<double> s_dy(n * c), s_dyx(n * c), s_dy_xhat(n * c),
      g1(n * groups), g2(n * groups);
  auto dopt = x.options().dtype(at::kDouble);
  auto d_bw = at::zeros({c}, dopt), d_bb = at::zeros({c}, dopt);
  auto d_w = at::zeros({weight.numel()}, dopt);
  auto d_b = at::zeros({weight.numel()}, dopt);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bcn_backward", [&] {
    using T = scalar_t;
    BackwardArgs<T> p{dy.data_ptr<T>(), x.data_ptr<T>(), ac.data_ptr<T>(),
                      cn.data_ptr<T>(), rg.data_ptr<T>(), w.data_ptr<T>(),
                      n, c, length, groups, w_div, need_x,
                      need_x ? grad_x.data_ptr<T>() : nullptr, s_dy.data(),
                      s_dyx.data(), s_dy_xhat.data(), g1.data(), g2.data()};
    const int64_t block = (c / groups) * length;
    at::parallel_for(0, n * groups, std::max<int64_t>(1, 32768 / block),
                     [&](int64_t s, int64_t e) { backward_blocks<T>(p, s, e); });
    // parameter gradients, through dx1 = rstd (w dy - g1 - xhat g2) and
    // x1 = a x + shift
    const T* pm = mn.data_ptr<T>();
    const T* pv = vn.data_ptr<T>();
    const T* pi = ic.data_ptr<T>();
    const T* pmi = mic.data_ptr<T>();
    double* gbw = d_bw.data_ptr<double>();
    double* gbb = d_bb.data_ptr<double>();
    double* gw = d_w.data_ptr<double>();
    double* gb = d_b.data_ptr<double>();
    const int64_t d = c / groups;
    for (int64_t ch = 0; ch < c; ++ch) {
      const double ach = p.a[ch], wch = p.w[ch / w_div];
      double d_shift = 0, d_a = 0;
      for (int64_t s = 0; s < n; ++s) {
        const int64_t r = s * c + ch, blk = s * groups + ch / d;
        const double rs = p.rstd[blk], mean = pm[r];
        const double sum_xhat = length * rs * (ach * mean + p.centre[r]);
        const double sum_xhat_x = length * rs * ach * pv[r] + mean * sum_xhat;
        d_shift += rs * (wch * s_dy[r] - length * g1[blk] - g2[blk] * sum_xhat);
        d_a += rs * (wch * s_dyx[r] - g1[blk] * length * mean -
                     g2[blk] * sum_xhat_x);
        gw[ch / w_div] += s_dy_xhat[r];
        gb[ch / w_div] += s_dy[r];
      }
      gbw[ch] = d_a * pi[ch] - d_shift * pmi[ch];
      gbb[ch] = d_shift;
    }
  });
  auto t = x.scalar_type();
  return {grad_x, d_bw.to(t), d_bb.to(t), d_w.to(t), d_b.to(t)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("row_moments", &row_moments, "per-row mean and biased variance");
  m.def("row_affine", &row_affine, "a[r] * x + b[r]");
  m.def("row_sums", &row_sums, "per-row sum(dy) and sum(dy * x)");
  m.def("row_affine2", &row_affine2, "p[r] * dy + q[r] * x + c[r]");
  m.def("bcn_forward", &bcn_forward,
        "fused micro-batch BCN forward with the estimate update");
  m.def("bcn_backward", &bcn_backward, "fused micro-batch BCN backward");
}
