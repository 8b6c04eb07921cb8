// Row kernels behind BCN on CPU. A row is one (sample, channel) of an
// (N, C, L) input seen as (N*C, L); rows are processed in parallel and each
// row is read from memory once per kernel (it stays in cache for the second
// pass of row_moments). Compiled with -O3 -fopenmp (setup.py).
//
//   row_moments(x)              -> mean[r], biased var[r]  (two-pass per row)
//   row_affine(x, a, b)         -> a[r] * x + b[r]
//   row_sums(dy, x)             -> sum(dy)[r], sum(dy * x)[r]
//   row_affine2(dy, x, p, q, c) -> p[r] * dy + q[r] * x + c[r]
#include <torch/extension.h>
#include <ATen/Parallel.h>

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

// rows per parallel task: enough work per task to amortize scheduling
int64_t grain(int64_t length) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, length));
}

// Sums are accumulated in vector lanes of T over blocks of kBlock elements
// (fast), and the block sums in double (accurate for long rows).
constexpr int64_t kBlock = 2048;

template <typename T>
void moments_rows(const T* x, T* mean, T* var, int64_t begin, int64_t end,
                  int64_t length) {
  for (int64_t r = begin; r < end; ++r) {
    const T* row = x + r * length;
    double sum = 0;
    for (int64_t b = 0; b < length; b += kBlock) {
      const int64_t e = std::min(length, b + kBlock);
      T part = 0;
#pragma omp simd reduction(+ : part)
      for (int64_t i = b; i < e; ++i) part += row[i];
      sum += part;
    }
    const T m = static_cast<T>(sum / length);
    double m2 = 0;
    for (int64_t b = 0; b < length; b += kBlock) {
      const int64_t e = std::min(length, b + kBlock);
      T part = 0;
#pragma omp simd reduction(+ : part)
      for (int64_t i = b; i < e; ++i) {
        const T d = row[i] - m;
        part += d * d;
      }
      m2 += part;
    }
    mean[r] = m;
    var[r] = static_cast<T>(m2 / length);
  }
}

template <typename T>
void affine_rows(const T* x, const T* a, const T* b, T* y, int64_t begin,
                 int64_t end, int64_t length) {
  for (int64_t r = begin; r < end; ++r) {
    const T s = a[r], t = b[r];
    const T* xr = x + r * length;
    T* yr = y + r * length;
#pragma omp simd
    for (int64_t i = 0; i < length; ++i) yr[i] = s * xr[i] + t;
  }
}

template <typename T>
void sums_rows(const T* dy, const T* x, T* s_dy, T* s_dyx, int64_t begin,
               int64_t end, int64_t length) {
  for (int64_t r = begin; r < end; ++r) {
    const T* dr = dy + r * length;
    const T* xr = x + r * length;
    double a = 0, b = 0;
    for (int64_t k = 0; k < length; k += kBlock) {
      const int64_t e = std::min(length, k + kBlock);
      T pa = 0, pb = 0;
#pragma omp simd reduction(+ : pa, pb)
      for (int64_t i = k; i < e; ++i) {
        pa += dr[i];
        pb += dr[i] * xr[i];
      }
      a += pa;
      b += pb;
    }
    s_dy[r] = static_cast<T>(a);
    s_dyx[r] = static_cast<T>(b);
  }
}

template <typename T>
void affine2_rows(const T* dy, const T* x, const T* p, const T* q,
                  const T* c, T* out, int64_t begin, int64_t end,
                  int64_t length) {
  for (int64_t r = begin; r < end; ++r) {
    const T a = p[r], b = q[r], t = c[r];
    const T* dr = dy + r * length;
    const T* xr = x + r * length;
    T* orow = out + r * length;
#pragma omp simd
    for (int64_t i = 0; i < length; ++i) orow[i] = a * dr[i] + b * xr[i] + t;
  }
}

}  // namespace

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
      moments_rows(px, pm, pv, b, e, length);
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
      affine_rows(px, pa, pb, py, s, e, length);
    });
  });
  return y;
}

std::vector<at::Tensor> row_sums(const at::Tensor& dy, const at::Tensor& x) {
  check_rows(dy, "dy");
  check_rows(x, "x");
  TORCH_CHECK(dy.sizes() == x.sizes(), "dy and x must have the same shape");
  const int64_t rows = x.size(0), length = x.size(1);
  auto s_dy = at::empty({rows}, x.options());
  auto s_dyx = at::empty({rows}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_sums", [&] {
    const scalar_t* pd = dy.data_ptr<scalar_t>();
    const scalar_t* px = x.data_ptr<scalar_t>();
    scalar_t* p1 = s_dy.data_ptr<scalar_t>();
    scalar_t* p2 = s_dyx.data_ptr<scalar_t>();
    at::parallel_for(0, rows, grain(length), [&](int64_t s, int64_t e) {
      sums_rows(pd, px, p1, p2, s, e, length);
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
      affine2_rows(pd, px, pp, pq, pr, po, s, e, length);
    });
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("row_moments", &row_moments, "per-row mean and biased variance");
  m.def("row_affine", &row_affine, "a[r] * x + b[r]");
  m.def("row_sums", &row_sums, "per-row sum(dy) and sum(dy * x)");
  m.def("row_affine2", &row_affine2, "p[r] * dy + q[r] * x + c[r]");
}
