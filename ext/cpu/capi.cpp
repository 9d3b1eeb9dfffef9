// A plain C ABI over the CPU kernels, for callers without torch (the decoder loads it with ctypes).
//
// Entry points, all on caller-owned float32 / integer arrays (row-major, contiguous):
//   gsvc_render_forward: splats -> image [3,H,W] (prepare_splats + bin_tiles + forward, the same
//     calls as the torch binding, so the image is the same bit for bit);
//   gsvc_yuv444_to_codes: YUV 4:4:4 floats [3,H,W] (code value / peak) -> integer code planes,
//     clamped to [0,1], times peak, chroma box-averaged over 2^sy x 2^sx blocks (edges replicated),
//     rounded half to even: the same arithmetic as Frame.from_yuv444_float's torch path;
//   gsvc_decay_sequence: the integer decay sequence of the entropy coder's LAPLACE and SKEW tables
//     (docs/FORMAT.md), a serial recurrence that costs ~0.5 us a term in Python;
//   gsvc_move_picture: an M-frame's picture, the previous one moved by its field (FORMAT.md
//     "M-frame"; gsvc_cli/codec/moved_picture.py is the same arithmetic in numpy).
//   gsvc_move_picture_overlapped: the same with kind 6's overlapped cells.
//   gsvc_window_errors: the encoder's block search, each cell's squared error at many vectors;
//   gsvc_quarter_errors: the same at quarter-pixel vectors, read as gsvc_move_picture reads them;
//   gsvc_choose_vectors: per cell, the candidate of least error + lambda x bits, in coding order;
//   gsvc_window_sums: per cell, a weighted squared error summed over the cell and a ring around it.
//   gsvc_median_field: an M-frame's flagged field from its median-predicted residuals, a serial
//     recurrence (FORMAT.md "Flagged field"; motion_vectors.undo_median_reference in Python);
//   gsvc_fit_error_sums, gsvc_fit_error_gradient: the fitting loop's distortion (each channel's
//     squared error, raw and with the render clamped) and its gradient, one pass over the frame each.
// Return values: 0 on success, 1 for bad arguments, 2 when memory ran out. No exception crosses
// the ABI.
#include <omp.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <stdint.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "render_cpu.h"

namespace {

// The code of one value already clamped and scaled to [0, peak]: round half to even (the default
// rounding mode, as torch.round), then the integer type.
template <typename Code>
inline Code to_code(float v) {
  return static_cast<Code>(std::nearbyint(v));
}

inline float scaled(float x, float peak) { return std::min(std::max(x, 0.0f), 1.0f) * peak; }

template <typename Code>
void luma_plane(const float* src, int64_t count, float peak, Code* out, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < count; ++i) out[i] = to_code<Code>(scaled(src[i], peak));
}

// One chroma plane: each output code averages a (1 << sy) x (1 << sx) block, summed row by row from
// zero (as torch's avg_pool2d: ((a + b) + c) + d for 2x2), rows and columns past the edge repeating
// the last one.
template <typename Code>
void chroma_plane(const float* src, int32_t height, int32_t width, int sx, int sy, float peak, Code* out,
                  int threads) {
  const int32_t fx = 1 << sx, fy = 1 << sy;
  const int32_t out_w = (width + fx - 1) >> sx, out_h = (height + fy - 1) >> sy;
  const int32_t inner_w = width >> sx;  // outputs whose block lies wholly inside a row
  const float divisor = static_cast<float>(fx * fy);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int32_t oy = 0; oy < out_h; ++oy) {
    const float* r0 = src + static_cast<int64_t>(oy * fy) * width;
    const float* r1 = src + static_cast<int64_t>(std::min(oy * fy + fy - 1, height - 1)) * width;
    Code* line = out + static_cast<int64_t>(oy) * out_w;
    if (fx == 2 && fy == 2) {
      for (int32_t ox = 0; ox < inner_w; ++ox) {
        const float sum = ((scaled(r0[2 * ox], peak) + scaled(r0[2 * ox + 1], peak)) + scaled(r1[2 * ox], peak)) +
                          scaled(r1[2 * ox + 1], peak);
        line[ox] = to_code<Code>(sum / divisor);
      }
    } else if (fx == 2) {
      for (int32_t ox = 0; ox < inner_w; ++ox) {
        const float sum = scaled(r0[2 * ox], peak) + scaled(r0[2 * ox + 1], peak);
        line[ox] = to_code<Code>(sum / divisor);
      }
    }
    for (int32_t ox = fx == 2 ? inner_w : 0; ox < out_w; ++ox) {  // the odd last column (or 4:4:0)
      float sum = 0.0f;
      for (int32_t r = 0; r < fy; ++r) {
        const float* row = r == 0 ? r0 : r1;
        for (int32_t c = 0; c < fx; ++c) sum += scaled(row[std::min(ox * fx + c, width - 1)], peak);
      }
      line[ox] = to_code<Code>(sum / divisor);
    }
  }
}

template <typename Code>
int to_codes(const float* yuv, int32_t height, int32_t width, float peak, int sx, int sy, Code* y, Code* u,
             Code* v, int threads) {
  if (height < 1 || width < 1 || sx < 0 || sx > 1 || sy < 0 || sy > 1 || threads < 1) return 1;
  const int64_t plane = static_cast<int64_t>(height) * width;
  luma_plane(yuv, plane, peak, y, threads);
  if (sx == 0 && sy == 0) {
    luma_plane(yuv + plane, plane, peak, u, threads);
    luma_plane(yuv + 2 * plane, plane, peak, v, threads);
  } else {
    chroma_plane(yuv + plane, height, width, sx, sy, peak, u, threads);
    chroma_plane(yuv + 2 * plane, height, width, sx, sy, peak, v, threads);
  }
  return 0;
}

// An M-frame's quarter-pixel read must give the same float32 on every machine (FORMAT.md): each
// product and each sum rounded on its own, so no fused multiply-add here, whatever -march allows.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

// Keys cubic (a = -1/2) weights x 128 of pixels i - 1 .. i + 2 for a read at i + f/4.
constexpr float kQuarterTaps[4][4] = {{0, 128, 0, 0}, {-9, 111, 29, -3}, {-8, 72, 72, -8}, {-3, 29, 111, -9}};
// The 8-tap filter's weights x 64 of pixels i - 3 .. i + 4 (format 9.0, a field's "sharp" unit bit).
constexpr float kSharpTaps[4][8] = {{0, 0, 0, 64, 0, 0, 0, 0},
                                    {-1, 4, -10, 58, 17, -5, 1, 0},
                                    {-1, 4, -11, 40, 40, -11, 4, -1},
                                    {0, 1, -5, 17, 58, -10, 4, -1}};

// The float32 weights of a read at fraction f (0..3) of a quarter pixel through T taps.
template <int T>
inline void tap_weights(int64_t f, float* w) {
  for (int t = 0; t < T; ++t) w[t] = T == 8 ? kSharpTaps[f][t] / 64.0f : kQuarterTaps[f][t] / 128.0f;
}

inline int64_t clamp_index(int64_t i, int64_t last) { return i < 0 ? 0 : (i > last ? last : i); }

// Rows [ya, ya + rows) x columns [xa, xa + NE) of one plane moved by one quarter-pixel vector into
// dst (row stride `stride`) through T taps (4: the cubic, 8: the 8-tap filter): for each value the
// products and sums of FORMAT.md in their order, so the values are the same bit for bit. The
// block may reach past the frame (an overlapped cell's extension at an edge): those values are
// computed from clamped reads like any other and never land in the picture. NE > 0 fixes the width
// at compile time (the cells the encoder uses: loops of a known length vectorise whole; a caller
// with scratch rounds its width up to NE, the extra columns computed like the others); 0 takes
// `width_runtime`. `across` holds (rows + T - 1) x NE floats.
template <int NE, int T>
void quarter_block(const float* __restrict__ src, int32_t height, int32_t width, int64_t vx, int64_t vy, int32_t ya,
                   int32_t rows, int32_t xa, int32_t width_runtime, float* __restrict__ across,
                   float* __restrict__ dst, int64_t stride) {
  constexpr int kBefore = T / 2 - 1;
  const int32_t ne = NE > 0 ? NE : width_runtime;
  const int64_t ux = -vx, uy = -vy;  // reading at p + u / 4
  const int64_t ix = ux >= 0 ? ux / 4 : -((-ux + 3) / 4), iy = uy >= 0 ? uy / 4 : -((-uy + 3) / 4);
  float wx[T], wy[T];
  tap_weights<T>(ux - 4 * ix, wx);
  tap_weights<T>(uy - 4 * iy, wy);
  const bool inside = xa + ix - kBefore >= 0 && xa + ne - 1 + ix + (T - 1 - kBefore) <= width - 1;
#if defined(__AVX__)
  constexpr bool kEights = NE > 0 && NE % 8 == 0;  // eight values at a time, each as the loops below
#else
  constexpr bool kEights = false;
#endif
  for (int32_t j = 0; j < rows + T - 1; ++j) {
    const float* line = src + clamp_index(ya + iy - kBefore + j, height - 1) * width;
    float* h = across + static_cast<int64_t>(j) * ne;
    if (inside) {
      const float* at = line + xa + ix - kBefore;
      if constexpr (kEights) {
#if defined(__AVX__)
        for (int32_t x = 0; x < NE; x += 8) {
          __m256 s = _mm256_mul_ps(_mm256_set1_ps(wx[0]), _mm256_loadu_ps(at + x));
          for (int t = 1; t < T; ++t)
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(wx[t]), _mm256_loadu_ps(at + x + t)));
          _mm256_storeu_ps(h + x, s);
        }
#endif
        continue;
      }
      for (int32_t x = 0; x < ne; ++x) {
        float s = wx[0] * at[x];
        for (int t = 1; t < T; ++t) s = s + wx[t] * at[x + t];
        h[x] = s;
      }
    } else {
      for (int32_t x = 0; x < ne; ++x) {
        const int64_t at = xa + x + ix - kBefore;
        float s = wx[0] * line[clamp_index(at, width - 1)];
        for (int t = 1; t < T; ++t) s = s + wx[t] * line[clamp_index(at + t, width - 1)];
        h[x] = s;
      }
    }
  }
  for (int32_t r = 0; r < rows; ++r) {
    const float* h = across + static_cast<int64_t>(r) * ne;
    float* d = dst + r * stride;
    if constexpr (kEights) {
#if defined(__AVX__)
      const __m256 zero = _mm256_set1_ps(0.0f), one = _mm256_set1_ps(1.0f);
      for (int32_t x = 0; x < NE; x += 8) {
        __m256 v = _mm256_mul_ps(_mm256_set1_ps(wy[0]), _mm256_loadu_ps(h + x));
        for (int t = 1; t < T; ++t)
          v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(wy[t]), _mm256_loadu_ps(h + x + t * NE)));
        // std::min(std::max(v, 0), 1): max/min return their second operand on NaN, as std's do here
        _mm256_storeu_ps(d + x, _mm256_min_ps(one, _mm256_max_ps(zero, v)));
      }
#endif
      continue;
    }
    for (int32_t x = 0; x < ne; ++x) {
      float v = wy[0] * h[x];
      for (int t = 1; t < T; ++t) v = v + wy[t] * h[x + static_cast<int64_t>(t) * ne];
      d[x] = std::min(std::max(v, 0.0f), 1.0f);
    }
  }
}

// The same block for a whole-pixel vector: copies, coordinates clamped (FORMAT.md kind 2). NE > 0
// fixes the width at compile time, as quarter_block's (a copy of a known length, no call per row).
template <int NE = 0>
void whole_block(const float* src, int32_t height, int32_t width, int64_t vx, int64_t vy, int32_t ya, int32_t rows,
                 int32_t xa, int32_t width_runtime, float* dst, int64_t stride) {
  const int32_t ne = NE > 0 ? NE : width_runtime;
  const bool inside = xa - vx >= 0 && xa + ne - 1 - vx <= width - 1;
  for (int32_t r = 0; r < rows; ++r) {
    const float* line = src + clamp_index(ya + r - vy, height - 1) * width;
    float* d = dst + r * stride;
    if (inside) {
      const float* from = line + (xa - vx);
      for (int32_t x = 0; x < ne; ++x) d[x] = from[x];
    } else {
      for (int32_t x = 0; x < ne; ++x) d[x] = line[clamp_index(xa + x - vx, width - 1)];
    }
  }
}

// A plain cell's block (n columns; n == cell for every cell but the last column's) through
// whole_block or quarter_block at a width fixed at compile time where n is 8, 16 or 32, the
// encoder's cells; the values are the same either way.
template <int T>
void cell_block(const float* src, int32_t height, int32_t width, int32_t per_pixel, int64_t vx, int64_t vy,
                int32_t ya, int32_t rows, int32_t xa, int32_t n, float* across, float* dst, int64_t stride) {
  if (per_pixel == 1) {
    switch (n) {
      case 8: whole_block<8>(src, height, width, vx, vy, ya, rows, xa, n, dst, stride); break;
      case 16: whole_block<16>(src, height, width, vx, vy, ya, rows, xa, n, dst, stride); break;
      case 32: whole_block<32>(src, height, width, vx, vy, ya, rows, xa, n, dst, stride); break;
      default: whole_block<0>(src, height, width, vx, vy, ya, rows, xa, n, dst, stride); break;
    }
    return;
  }
  switch (n) {
    case 8: quarter_block<8, T>(src, height, width, vx, vy, ya, rows, xa, n, across, dst, stride); break;
    case 16: quarter_block<16, T>(src, height, width, vx, vy, ya, rows, xa, n, across, dst, stride); break;
    case 32: quarter_block<32, T>(src, height, width, vx, vy, ya, rows, xa, n, across, dst, stride); break;
    default: quarter_block<0, T>(src, height, width, vx, vy, ya, rows, xa, n, across, dst, stride); break;
  }
}

// One row of cells (output rows y0 .. y1 - 1) of every channel. Whole-pixel vectors copy; a
// quarter-pixel cell reads through the cubic (or with `sharp`, the 8-tap filter): quarter_block, a
// channel at a time, each source row under the cell filtered across once, then down.
void move_cell_row(const float* picture, int32_t channels, int32_t height, int32_t width, const int64_t* vectors,
                   int32_t gw, int32_t cell, int32_t per_pixel, bool sharp, int32_t y0, float* across, float* out) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int32_t y1 = std::min(height, y0 + cell), rows = y1 - y0;
  const int64_t* row_vectors = vectors + 2 * static_cast<int64_t>(y0 / cell) * gw;
  for (int32_t column = 0; column < gw; ++column) {
    const int32_t x0 = column * cell, x1 = std::min(width, x0 + cell), n = x1 - x0;
    const int64_t vx = row_vectors[2 * column], vy = row_vectors[2 * column + 1];
    for (int32_t c = 0; c < channels; ++c) {
      float* dst = out + c * plane + static_cast<int64_t>(y0) * width + x0;
      if (sharp)
        cell_block<8>(picture + c * plane, height, width, per_pixel, vx, vy, y0, rows, x0, n, across, dst, width);
      else
        cell_block<4>(picture + c * plane, height, width, per_pixel, vx, vy, y0, rows, x0, n, across, dst, width);
    }
  }
}

// Along one axis: the side (-1, 0, +1) of the neighbour a pixel at `offset` in its cell blends
// with, and that neighbour's share a = 1 - (2k + 1 + 2j) / 4k (FORMAT.md "Overlapped cells").
inline int border_side(int32_t offset, int32_t cell, int32_t k, float* share) {
  int side = 0, j = 0;
  if (offset < k) {
    side = -1;
    j = offset;
  } else if (cell - 1 - offset < k) {
    side = 1;
    j = cell - 1 - offset;
  }
  *share = side ? 1.0f - static_cast<float>(2 * k + 1 + 2 * j) / static_cast<float>(4 * k) : 0.0f;
  return side;
}


// One pixel's overlapped value from its own prediction m and those of its neighbours across, down
// and diagonally (FORMAT.md "Overlapped cells": each operation one float32 operation, in order).
inline float blend(float m, float m_across, float m_down, float m_diagonal, float ax, float ay) {
  const float top = m + ax * (m_across - m);
  const float bottom = m_down + ax * (m_diagonal - m_down);
  return std::min(std::max(top + ay * (bottom - top), 0.0f), 1.0f);
}

// The overlapped move of one thread's run of cell rows, a cell row at a time. Each cell's own
// vector is read once over its cell extended by the k pixels its differing neighbours blend with
// (left and right, above and below, and the corners for the diagonal ones): one block, each source
// row filtered once, as move_cell_row reads the cell alone. The extension lands in small buffers
// (the strips of the neighbours that use it), the cell itself in the picture; once a cell row and
// the rows on either side of it are read, its border pixels are blended in place. A pixel whose
// neighbours' vectors all equal its cell's keeps the plain value (as the formula gives it); one
// that blends takes each neighbour's prediction from the block of that neighbour, computed with
// the same operations as the plain move, so every value is the one a read at a time gives.
// CELL > 0 fixes the cell size at compile time (the encoder's 8, 16 and 32: the loops over a
// cell's pixels unroll); 0 takes it at run time.
template <int CELL>
class OverlapRun {
 public:
  OverlapRun(const float* picture, int32_t channels, int32_t height, int32_t width, const int64_t* vectors,
             int32_t gh, int32_t gw, int32_t cell, int32_t per_pixel, bool sharp, float* out)
      : picture_(picture), channels_(channels), height_(height), width_(width), vectors_(vectors), gh_(gh),
        gw_(gw), cell_(cell), per_pixel_(per_pixel), k_(std::max(1, cell / 8)), sharp_(sharp), out_(out),
        plane_(static_cast<int64_t>(height) * width) {
    const int32_t ne = (std::min(cell_, width_) + 2 * k_ + 7) / 8 * 8, rows = std::min(cell_, height_) + 2 * k_;
    across_.resize(static_cast<size_t>(rows + 7) * ne);  // the 8-tap filter's rows (the cubic uses 3 fewer)
    for (auto& b : blocks_) b.resize(static_cast<size_t>(rows) * ne);
    share_.resize(static_cast<size_t>(cell_));
    for (int32_t o = 0; o < cell_; ++o) border_side(o, cell_, k_, &share_[static_cast<size_t>(o)]);
    strip_ = static_cast<int64_t>(gw_) * 2 * k_;  // per cell: k values of its left strip, then k of its right
    cell_rows_ = std::min(cell_, height_);
    for (auto& a : a_) a.resize(static_cast<size_t>(channels_) * cell_rows_ * strip_);
    for (auto& d : dn_) d.resize(static_cast<size_t>(channels_) * k_ * width_);
    for (auto& g : gn_) g.resize(static_cast<size_t>(channels_) * k_ * strip_);
    up_.resize(static_cast<size_t>(channels_) * k_ * width_);
    gu_.resize(static_cast<size_t>(channels_) * k_ * strip_);
  }

  // Cell rows [ra, rb): the plain move and the blend of every pixel in them.
  void run(int32_t ra, int32_t rb) {
    if (ra >= rb) return;
    if (ra > 0) read_row(ra - 1, false, false, true);  // what the row above gives row ra's top strip
    for (int32_t r = ra; r < rb; ++r) {
      read_row(r, true, r > ra, true);
      if (r > ra) blend_cells(r - 1, true);
      blend_cells(r, false);
    }
    if (rb < gh_) read_row(rb, false, true, false);  // what the row below gives row rb - 1's bottom strip
    blend_cells(rb - 1, true);
  }

 private:
  int32_t cell() const { return CELL > 0 ? CELL : cell_; }
  int32_t k() const { return CELL > 0 ? std::max(1, CELL / 8) : k_; }
  const int64_t* vector(int32_t r, int32_t c) const { return vectors_ + 2 * (static_cast<int64_t>(r) * gw_ + c); }
  static bool same(const int64_t* a, const int64_t* b) { return a[0] == b[0] && a[1] == b[1]; }
  // A neighbour (r + dr, c + dc) inside the grid whose vector differs from v: its pixels next to
  // the cell (r, c) read v's prediction there.
  bool differs(const int64_t* v, int32_t r, int32_t c, int dr, int dc) const {
    const int32_t rr = r + dr, cc = c + dc;
    return rr >= 0 && rr < gh_ && cc >= 0 && cc < gw_ && !same(v, vector(rr, cc));
  }

  // Buffers of the strips, per channel ch: a (per cell row, by parity): for each row of the cell
  // row, per cell, the across neighbours' predictions of its left strip (k values) then of its
  // right strip; dn (by parity of the cell row it serves): the k rows of the top strip as the cell
  // above moves them, W wide; gn: those rows' corners as the diagonal neighbours move them, per
  // cell as a; up, gu: the same for the bottom strip of the cell row being finished (from below).
  float* a_row(int32_t r, int32_t ch, int32_t row) {
    return a_[r & 1].data() + (static_cast<int64_t>(ch) * cell_rows_ + row) * strip_;
  }
  float* dn_row(int32_t r, int32_t ch, int32_t t) {
    return dn_[r & 1].data() + (static_cast<int64_t>(ch) * k() + t) * width_;
  }
  float* gn_row(int32_t r, int32_t ch, int32_t t) {
    return gn_[r & 1].data() + (static_cast<int64_t>(ch) * k() + t) * strip_;
  }
  float* up_row(int32_t ch, int32_t t) { return up_.data() + (static_cast<int64_t>(ch) * k() + t) * width_; }
  float* gu_row(int32_t ch, int32_t t) { return gu_.data() + (static_cast<int64_t>(ch) * k() + t) * strip_; }

  // Rows [ya, ya + rows) x columns [xa, xa + ne) of channel ch moved by v into dst (row stride).
  // padded: dst may take columns up to the next multiple of 8 (scratch), so that the loops of the
  // encoder's cells (8, 16 or 32 wide, 10, 20 or 40 with the extension) have a fixed length.
  void predict(const int64_t* v, int32_t ch, int32_t ya, int32_t rows, int32_t xa, int32_t ne, bool padded,
               float* dst, int64_t stride) {
    const float* src = picture_ + ch * plane_;
    if (per_pixel_ == 1) {
      whole_block(src, height_, width_, v[0], v[1], ya, rows, xa, ne, dst, stride);
      return;
    }
    float* h = across_.data();
    if (sharp_)
      quarter_width<8>(padded ? (ne + 7) / 8 * 8 : ne, src, v, ya, rows, xa, ne, h, dst, stride);
    else
      quarter_width<4>(padded ? (ne + 7) / 8 * 8 : ne, src, v, ya, rows, xa, ne, h, dst, stride);
  }

  // quarter_block at a width fixed at compile time where it is one the encoder's cells give.
  template <int T>
  void quarter_width(int32_t fixed, const float* src, const int64_t* v, int32_t ya, int32_t rows, int32_t xa,
                     int32_t ne, float* h, float* dst, int64_t stride) {
    switch (fixed) {
      case 8: quarter_block<8, T>(src, height_, width_, v[0], v[1], ya, rows, xa, ne, h, dst, stride); break;
      case 16: quarter_block<16, T>(src, height_, width_, v[0], v[1], ya, rows, xa, ne, h, dst, stride); break;
      case 24: quarter_block<24, T>(src, height_, width_, v[0], v[1], ya, rows, xa, ne, h, dst, stride); break;
      case 32: quarter_block<32, T>(src, height_, width_, v[0], v[1], ya, rows, xa, ne, h, dst, stride); break;
      case 40: quarter_block<40, T>(src, height_, width_, v[0], v[1], ya, rows, xa, ne, h, dst, stride); break;
      default: quarter_block<0, T>(src, height_, width_, v[0], v[1], ya, rows, xa, ne, h, dst, stride); break;
    }
  }

  // Cell row r read by its own vectors: with `own`, the cell row itself into out and the across
  // strips of its neighbours into a; with `above`, the k rows above it (the bottom strip of row
  // r - 1: up, gu); with `below`, the k rows below it (the top strip of row r + 1: dn, gn). Only
  // the parts some neighbour blends with (its vector differs) are read.
  void read_row(int32_t r, bool own, bool above, bool below) {
    const int32_t k = this->k(), y0 = r * cell(), y1 = std::min(height_, y0 + cell()), rows = y1 - y0;
    reads_.resize(static_cast<size_t>(gw_));
    for (int32_t c = 0; c < gw_; ++c) {  // what each cell's block covers
      const int64_t* v = vector(r, c);
      const bool left = differs(v, r, c, 0, -1), right = differs(v, r, c, 0, 1);
      const bool up_left = above && differs(v, r, c, -1, -1), up_right = above && differs(v, r, c, -1, 1);
      const bool down_left = below && differs(v, r, c, 1, -1), down_right = below && differs(v, r, c, 1, 1);
      const bool top = up_left || up_right || (above && differs(v, r, c, -1, 0));
      const bool bottom = down_left || down_right || (below && differs(v, r, c, 1, 0));
      const bool sides = (own && (left || right)) || up_left || up_right || down_left || down_right;
      Read& read = reads_[static_cast<size_t>(c)];
      read.plain = own && !top && !bottom && !sides;  // a cell no neighbour blends with: the plain move
      read.sides = sides;
      read.ya = own ? y0 - (top ? k : 0) : (top ? y0 - k : y1);
      read.yb = own ? y1 + (bottom ? k : 0) : (top ? y0 : (bottom ? y1 + k : y1));
    }
    for (int32_t ch = 0; ch < channels_; ++ch) {  // a plane at a time: its source rows stay in cache
      int32_t pending = -1;  // a cell whose block (in blocks_[slot]) waits to be spread (see below)
      int slot = 0;
      for (int32_t c = 0; c < gw_; ++c) {
        const Read& read = reads_[static_cast<size_t>(c)];
        const int32_t x0 = c * cell(), n = std::min(width_, x0 + cell()) - x0;
        const int64_t* v = vector(r, c);
        if (read.plain) {
          predict(v, ch, y0, rows, x0, n, false, out_ + ch * plane_ + static_cast<int64_t>(y0) * width_ + x0,
                  width_);
          continue;
        }
        if (read.ya >= read.yb) continue;
        const int32_t xa = read.sides ? x0 - k : x0, ne = read.sides ? n + 2 * k : n;
        // Each block is spread to the picture and the strips after the next one is computed: read
        // back at once, its last rows would wait for their stores (at another offset) to land.
        float* block = blocks_[pending >= 0 ? 1 - slot : slot].data();
        predict(v, ch, read.ya, read.yb - read.ya, xa, ne, true, block, (ne + 7) / 8 * 8);
        if (pending >= 0) spread(r, ch, pending, blocks_[slot].data());
        pending = c;
        slot = static_cast<int>(block == blocks_[1].data());
      }
      if (pending >= 0) spread(r, ch, pending, blocks_[slot].data());
    }
  }

  // Cell (r, c)'s block of channel ch (read_row) to where its rows and columns go: the cell's own
  // rows to the picture, the rows above it to up, below it to dn of r + 1, and its columns left and
  // right of the cell to the strips of those rows (the neighbours' a, gu or gn).
  void spread(int32_t r, int32_t ch, int32_t c, const float* block) {
    const Read& read = reads_[static_cast<size_t>(c)];
    const int32_t k = this->k(), y0 = r * cell(), y1 = std::min(height_, y0 + cell());
    const int32_t x0 = c * cell(), n = std::min(width_, x0 + cell()) - x0;
    const int32_t lead = read.sides ? k : 0, stride = (n + 2 * lead + 7) / 8 * 8;
    for (int32_t y = read.ya; y < read.yb; ++y) {
      const float* e = block + static_cast<int64_t>(y - read.ya) * stride;
      float *middle, *strips;  // where the cell's columns go; the strips of this row (per cell)
      if (y < y0) {
        middle = up_row(ch, y - (y0 - k));
        strips = gu_row(ch, y - (y0 - k));
      } else if (y >= y1) {
        middle = dn_row(r + 1, ch, y - y1);
        strips = gn_row(r + 1, ch, y - y1);
      } else {
        middle = out_ + ch * plane_ + static_cast<int64_t>(y) * width_;
        strips = a_row(r, ch, y - y0);
      }
      if (CELL > 0 && n == CELL)  // a fixed length: one or a few vector moves
        std::memcpy(middle + x0, e + lead, CELL * sizeof(float));
      else
        std::memcpy(middle + x0, e + lead, static_cast<size_t>(n) * sizeof(float));
      if (read.sides) {
        if (c > 0)  // the right strip of the cell to the left
          for (int32_t i = 0; i < k; ++i) strips[2 * k * (c - 1) + k + i] = e[i];
        if (c + 1 < gw_)  // the left strip of the cell to the right
          for (int32_t i = 0; i < k; ++i) strips[2 * k * (c + 1) + i] = e[lead + n + i];
      }
    }
  }

  // The blend of cell row r in place: without `bottom`, its top strip and its middle rows (the row
  // above read: dn and gn of r); with it, its bottom strip (the row below read: up and gu). Along
  // each axis a pixel blends with the neighbour on its side (clamped to the grid: at the frame's
  // edge that is its own cell); a neighbour whose vector equals the cell's gives the plain value.
  void blend_cells(int32_t r, bool bottom) {
    const int32_t cell = this->cell(), k = this->k(), y0 = r * cell, rows = std::min(height_, y0 + cell) - y0;
    const int32_t rn = static_cast<int32_t>(clamp_index(r + (bottom ? 1 : -1), gh_ - 1));
    // the strip's rows: offsets [s0, s1) in the cell, row t of dn / gn (up / gu) at offset s0 + t
    const int32_t s0 = bottom ? cell - k : 0, s1 = bottom ? rows : std::min(k, rows);
    const int32_t m0 = k, m1 = bottom ? k : std::min(rows, cell - k);  // middle rows (top pass only)
    const float* share = share_.data();
    for (int32_t c = 0; c < gw_; ++c) {
      const int32_t x0 = c * cell, n = std::min(width_, x0 + cell) - x0;
      const int32_t cl = std::max(c - 1, 0), cr = std::min(c + 1, gw_ - 1);
      const int64_t* v = vector(r, c);
      const bool same_left = same(v, vector(r, cl)), same_right = same(v, vector(r, cr));
      const bool same_down = same(v, vector(rn, c));
      const bool same_down_left = same(v, vector(rn, cl)), same_down_right = same(v, vector(rn, cr));
      const bool corner_left = !(same_left && same_down && same_down_left);
      const bool corner_right = !(same_right && same_down && same_down_right);
      if (same_left && same_right && (s0 >= s1 || (!corner_left && !corner_right && same_down))) continue;
      const int32_t left_to = std::min(k, n), right_from = cell - k, mid_to = std::min(n, cell - k);
      for (int32_t ch = 0; ch < channels_; ++ch) {
        float* plane = out_ + ch * plane_;
        if (!same_left || !same_right) {
          for (int32_t o = m0; o < m1; ++o) {  // middle rows: the across neighbours only (ay = 0)
            float* line = plane + static_cast<int64_t>(y0 + o) * width_ + x0;
            const float* a = a_row(r, ch, o) + 2 * k * c;
            if (!same_left)
              for (int32_t i = 0; i < left_to; ++i) line[i] = blend(line[i], a[i], line[i], a[i], share[i], 0.0f);
            if (!same_right)
              for (int32_t o2 = right_from; o2 < n; ++o2) {
                const float m_across = a[k + o2 - right_from];
                line[o2] = blend(line[o2], m_across, line[o2], m_across, share[o2], 0.0f);
              }
          }
        }
        for (int32_t o = s0; o < s1; ++o) {  // the top or bottom strip
          const int32_t t = o - s0;
          float* line = plane + static_cast<int64_t>(y0 + o) * width_ + x0;
          const float* a = a_row(r, ch, o) + 2 * k * c;
          const float* d = (bottom ? up_row(ch, t) : dn_row(r, ch, t)) + x0;
          const float* g = (bottom ? gu_row(ch, t) : gn_row(r, ch, t)) + 2 * k * c;
          const float ay = share[o];
          if (corner_left)
            for (int32_t i = 0; i < left_to; ++i) {
              const float m = line[i];
              const float m_across = same_left ? m : a[i];
              const float m_down = same_down ? m : d[i];
              // the diagonal neighbour is the across one in the first or last cell row, the
              // vertical one in the first column (clamped), else read by its own block's corner
              const float m_diagonal = same_down_left ? m : (rn == r ? m_across : (cl == c ? m_down : g[i]));
              line[i] = blend(m, m_across, m_down, m_diagonal, share[i], ay);
            }
          if (!same_down)
            for (int32_t x = k; x < mid_to; ++x) line[x] = blend(line[x], line[x], d[x], d[x], 0.0f, ay);
          if (corner_right)
            for (int32_t x = right_from; x < n; ++x) {
              const int32_t i = x - right_from;
              const float m = line[x];
              const float m_across = same_right ? m : a[k + i];
              const float m_down = same_down ? m : d[x];
              const float m_diagonal =
                  same_down_right ? m : (rn == r ? m_across : (cr == c ? m_down : g[k + i]));
              line[x] = blend(m, m_across, m_down, m_diagonal, share[x], ay);
            }
        }
      }
    }
  }

  const float* picture_;
  int32_t channels_, height_, width_;
  const int64_t* vectors_;
  int32_t gh_, gw_, cell_, per_pixel_, k_;
  bool sharp_;
  float* out_;
  int64_t plane_, strip_ = 0;
  int32_t cell_rows_ = 0;
  struct Read {  // one cell's block in read_row: rows [ya, yb), with k columns on each side or not
    bool plain, sides;
    int32_t ya, yb;
  };
  std::vector<Read> reads_;
  std::vector<float> across_, blocks_[2], share_, a_[2], dn_[2], gn_[2], up_, gu_;
};

template <int CELL>
void overlap_rows(const float* picture, int32_t channels, int32_t height, int32_t width, const int64_t* vectors,
                  int32_t gh, int32_t gw, int32_t cell, int32_t per_pixel, bool sharp, float* out, int32_t ra,
                  int32_t rb) {
  OverlapRun<CELL> run(picture, channels, height, width, vectors, gh, gw, cell, per_pixel, sharp, out);
  run.run(ra, rb);
}

#pragma GCC pop_options

bool move_arguments_valid(int32_t channels, int32_t height, int32_t width, int32_t gh, int32_t gw, int32_t cell,
                          int32_t per_pixel, int32_t sharp, int threads) {
  return channels >= 1 && height >= 1 && width >= 1 && cell >= 1 && (per_pixel == 1 || per_pixel == 4) &&
         (sharp == 0 || (sharp == 1 && per_pixel == 4)) && threads >= 1 && gh == (height - 1) / cell + 1 &&
         gw == (width - 1) / cell + 1;
}

// The total of eight float lanes in one fixed order (pairs, then pairs of pairs): the row sums
// below add their lanes so, whatever the thread count, and their callers compare bits.
inline float lane_total(const float (&lanes)[8]) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// Sum over rows x n pixels of (image - block)^2, image rows of stride `width`, block rows of stride n:
// per row eight lanes in a fixed order (it vectorises), rows added in double.
inline float block_error(const float* image, int64_t width, const float* block, int32_t rows, int32_t n) {
  double sum = 0.0;
  for (int32_t r = 0; r < rows; ++r) {
    const float* a = image + r * width;
    const float* b = block + static_cast<int64_t>(r) * n;
    float lanes[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int32_t x = 0;
    for (; x + 8 <= n; x += 8)
      for (int l = 0; l < 8; ++l) {
        const float d = a[x + l] - b[x + l];
        lanes[l] += d * d;
      }
    for (; x < n; ++x) {
      const float d = a[x] - b[x];
      lanes[0] += d * d;
    }
    sum += lane_total(lanes);
  }
  return static_cast<float>(sum);
}

}  // namespace

extern "C" {

// Bumped when a signature below changes or one is added (the Python side refuses a library of
// another version).
int gsvc_capi_version(void) { return 14; }

const char* gsvc_capi_simd(void) { return gsvc::cpu::simd_name(); }

// image [3,height,width] = the splats' sum, exactly as the torch binding's forward; with clamp01,
// each value clamped to [0, 1] as it is stored (as gsvc_clamp01 afterwards, without a second pass).
int gsvc_render_forward(const float* means, const float* chol, const float* colors, int64_t n, int32_t height,
                        int32_t width, float* image, int threads, int clamp01) {
  if (n < 0 || height < 1 || width < 1 || threads < 1) return 1;
  try {
    std::vector<float> conics(static_cast<size_t>(5 * n));
    std::vector<int32_t> boxes(static_cast<size_t>(4 * n));
    std::vector<int64_t> splat_offsets(static_cast<size_t>(n + 1));
    gsvc::cpu::prepare_splats(means, chol, n, height, width, conics.data(), boxes.data(), splat_offsets.data(),
                              threads);
    const int64_t pairs = splat_offsets[static_cast<size_t>(n)];
    std::vector<int64_t> tile_offsets(static_cast<size_t>(gsvc::cpu::tile_count(height, width) + 1));
    std::vector<int32_t> tile_splats(static_cast<size_t>(pairs));
    std::vector<int64_t> tile_pairs(static_cast<size_t>(pairs));
    gsvc::cpu::bin_tiles(boxes.data(), splat_offsets.data(), n, height, width, tile_offsets.data(),
                         tile_splats.data(), tile_pairs.data(), threads);
    gsvc::cpu::forward(conics.data(), boxes.data(), colors, tile_offsets.data(), tile_splats.data(), height,
                       width, image, threads, clamp01 != 0);
  } catch (const std::bad_alloc&) {
    return 2;
  }
  return 0;
}

// Clamp every value of image [count] to [0, 1] in place (what the decoder hands on as its picture).
void gsvc_clamp01(float* image, int64_t count, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < count; ++i) image[i] = std::min(std::max(image[i], 0.0f), 1.0f);
}

// 8-bit codes: y [H,W], u and v [ceil(H/2^sy), ceil(W/2^sx)]; sx, sy in {0, 1}.
int gsvc_yuv444_to_codes8(const float* yuv, int32_t height, int32_t width, float peak, int sx, int sy, uint8_t* y,
                          uint8_t* u, uint8_t* v, int threads) {
  return to_codes<uint8_t>(yuv, height, width, peak, sx, sy, y, u, v, threads);
}

// 9..16-bit codes, as gsvc_yuv444_to_codes8.
int gsvc_yuv444_to_codes16(const float* yuv, int32_t height, int32_t width, float peak, int sx, int sy,
                           uint16_t* y, uint16_t* u, uint16_t* v, int threads) {
  return to_codes<uint16_t>(yuv, height, width, peak, sx, sy, y, u, v, threads);
}

// out[0..length) = g with g[0] = 2^32, g[d+1] = floor(g[d] * r / 2^16), r in [0, 2^16]: exact, as
// g <= 2^32 and r <= 2^16 keep every product below 2^49. Returns the number of terms before the
// first zero (length if none), or -1 for bad arguments.
int64_t gsvc_decay_sequence(int64_t r, int64_t length, int64_t* out) {
  if (r < 0 || r > (int64_t{1} << 16) || length < 0) return -1;
  uint64_t g = uint64_t{1} << 32;
  int64_t d = 0;
  for (; d < length && g != 0; ++d) {
    out[d] = static_cast<int64_t>(g);
    g = (g * static_cast<uint64_t>(r)) >> 16;
  }
  const int64_t nonzero = d;
  for (; d < length; ++d) out[d] = 0;
  return nonzero;
}

// out [C,H,W] = picture [C,H,W] moved by an M-frame's field: vectors [gh,gw,2] (x, y) int64 in
// 1/per_pixel pixels (1 or 4), cells of `cell` pixels tiling the frame from its top-left corner;
// sharp (0 or 1, quarter pixels only): reads through the 8-tap filter instead of the cubic.
int gsvc_move_picture(const float* picture, int32_t channels, int32_t height, int32_t width, const int64_t* vectors,
                      int32_t gh, int32_t gw, int32_t cell, int32_t per_pixel, int32_t sharp, float* out,
                      int threads) {
  if (!move_arguments_valid(channels, height, width, gh, gw, cell, per_pixel, sharp, threads)) return 1;
  try {
    const size_t each = static_cast<size_t>(std::min(cell, height) + 7) * static_cast<size_t>(std::min(cell, width));
    std::vector<float> scratch(static_cast<size_t>(threads) * each);
#pragma omp parallel num_threads(threads)
    {
      float* across = scratch.data() + static_cast<size_t>(omp_get_thread_num()) * each;
#pragma omp for schedule(static)
      for (int32_t row = 0; row < gh; ++row)
        move_cell_row(picture, channels, height, width, vectors, gw, cell, per_pixel, sharp != 0, row * cell, across,
                      out);
    }
  } catch (const std::bad_alloc&) {
    return 2;
  }
  return 0;
}

// An overlapped M-frame (payload kind 6): the plain move with each cell's border pixels blended with
// the moves by its neighbours' vectors (FORMAT.md "Overlapped cells"; the numpy path is
// gsvc_cli/codec/moved_picture.overlap_blend). Same arguments and return values as gsvc_move_picture.
// Each thread takes a run of cell rows (OverlapRun); the values do not depend on the split.
int gsvc_move_picture_overlapped(const float* picture, int32_t channels, int32_t height, int32_t width,
                                 const int64_t* vectors, int32_t gh, int32_t gw, int32_t cell, int32_t per_pixel,
                                 int32_t sharp, float* out, int threads) {
  if (!move_arguments_valid(channels, height, width, gh, gw, cell, per_pixel, sharp, threads)) return 1;
  if (cell < 2)  // cells of one pixel do not blend
    return gsvc_move_picture(picture, channels, height, width, vectors, gh, gw, cell, per_pixel, sharp, out,
                             threads);
  int failed = 0;
#pragma omp parallel num_threads(threads)
  {
    const int64_t parts = omp_get_num_threads(), part = omp_get_thread_num();
    try {
      const int32_t ra = static_cast<int32_t>(gh * part / parts), rb = static_cast<int32_t>(gh * (part + 1) / parts);
      auto rows = cell == 8 ? overlap_rows<8> : cell == 16 ? overlap_rows<16> : cell == 32 ? overlap_rows<32>
                                                                                          : overlap_rows<0>;
      rows(picture, channels, height, width, vectors, gh, gw, cell, per_pixel, sharp != 0, out, ra, rb);
    } catch (const std::bad_alloc&) {
#pragma omp atomic write
      failed = 1;
    }
  }
  return failed ? 2 : 0;
}

// out [K,gh,gw]: for each cell of `cell` pixels tiling image [height,width] from its top-left corner
// and each vector v = base[cy,cx] + offsets[k] (x, y; whole pixels), the sum over the cell's pixels p
// inside the frame of (image(p) - reference(p - v))^2, reads clamped to the frame (the encoder's
// picture_motion search; one cell's sums in a fixed order, so no thread count changes them).
int gsvc_window_errors(const float* image, const float* reference, int32_t height, int32_t width,
                       const int64_t* base, int32_t gh, int32_t gw, int32_t cell, const int64_t* offsets,
                       int32_t count, float* out, int threads) {
  if (height < 1 || width < 1 || cell < 1 || count < 0 || threads < 1 || gh != (height - 1) / cell + 1 ||
      gw != (width - 1) / cell + 1)
    return 1;
  const int64_t cells = static_cast<int64_t>(gh) * gw;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t c = 0; c < cells; ++c) {
    const int32_t y0 = static_cast<int32_t>(c / gw) * cell, x0 = static_cast<int32_t>(c % gw) * cell;
    const int32_t y1 = std::min(height, y0 + cell), x1 = std::min(width, x0 + cell);
    for (int32_t k = 0; k < count; ++k) {
      const int64_t vx = base[2 * c] + offsets[2 * k], vy = base[2 * c + 1] + offsets[2 * k + 1];
      const bool inside = x0 - vx >= 0 && x1 - 1 - vx < width;
      double sum = 0.0;
      for (int32_t y = y0; y < y1; ++y) {
        const float* row = image + static_cast<int64_t>(y) * width;
        const float* ref = reference + std::clamp<int64_t>(y - vy, 0, height - 1) * width;
        float lanes[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};  // a fixed order that vectorises
        int32_t x = x0;
        if (inside) {
          for (; x + 8 <= x1; x += 8)
            for (int l = 0; l < 8; ++l) {
              const float d = row[x + l] - ref[x + l - vx];
              lanes[l] += d * d;
            }
        }
        for (; x < x1; ++x) {
          const float d = row[x] - ref[std::clamp<int64_t>(x - vx, 0, width - 1)];
          lanes[0] += d * d;
        }
        sum += lane_total(lanes);
      }
      out[k * cells + c] = static_cast<float>(sum);
    }
  }
  return 0;
}

// out [K,gh,gw]: each cell's squared error sum, over its pixels inside the frame, between image
// [height,width] and reference read by the quarter-pixel vectors candidates [K,gh,gw,2] (x, y in
// quarter pixels) through the cubic (sharp 0) or the 8-tap filter (sharp 1): the values
// gsvc_move_picture gives each such field (the same quarter_block), without moving whole pictures
// (the encoder's quarter_refine). One cell's sums in a fixed order: no thread count changes them.
int gsvc_quarter_errors(const float* image, const float* reference, int32_t height, int32_t width,
                        const int64_t* candidates, int32_t count, int32_t gh, int32_t gw, int32_t cell,
                        int32_t sharp, float* out, int threads) {
  if (!move_arguments_valid(1, height, width, gh, gw, cell, 4, sharp, threads) || count < 0) return 1;
  const int64_t cells = static_cast<int64_t>(gh) * gw;
  const int32_t rows_max = std::min(cell, height), n_max = std::min(cell, width);
  const size_t each = static_cast<size_t>(rows_max + 7) * n_max + static_cast<size_t>(rows_max) * n_max;
  try {
    std::vector<float> scratch(static_cast<size_t>(threads) * each);
#pragma omp parallel num_threads(threads)
    {
      float* across = scratch.data() + static_cast<size_t>(omp_get_thread_num()) * each;
      float* block = across + static_cast<size_t>(rows_max + 7) * n_max;
#pragma omp for schedule(static)
      for (int64_t c = 0; c < cells; ++c) {
        const int32_t y0 = static_cast<int32_t>(c / gw) * cell, x0 = static_cast<int32_t>(c % gw) * cell;
        const int32_t rows = std::min(height, y0 + cell) - y0, n = std::min(width, x0 + cell) - x0;
        for (int32_t k = 0; k < count; ++k) {
          const int64_t vx = candidates[2 * (k * cells + c)], vy = candidates[2 * (k * cells + c) + 1];
          if (sharp)
            cell_block<8>(reference, height, width, 4, vx, vy, y0, rows, x0, n, across, block, n);
          else
            cell_block<4>(reference, height, width, 4, vx, vy, y0, rows, x0, n, across, block, n);
          out[k * cells + c] = block_error(image + static_cast<int64_t>(y0) * width + x0, width, block, rows, n);
        }
      }
    }
  } catch (const std::bad_alloc&) {
    return 2;
  }
  return 0;
}

// chosen [gh,gw,2]: per cell, of the candidates [K,gh,gw,2] (x, y) with their errors [K,gh,gw], the
// one of least error + lam x bits, bits those of its residual r from the cell's predictor (the
// left neighbour's choice; down the first column the one above; (0, 0) first): (0, 0) costs
// zero_bits[c], any other moving_bits[c] + the sum over components of 1 + 2 log2(1 + |r|) (the flag
// prices per cell [gh,gw]: a split flag stream prices each cell by its bucket); the first of
// equal costs wins, all in float32. With image and reference ([height,width] luma, whole-pixel
// candidates), each cell also tries its predictor itself, at own_weight x its squared error (reads
// clamped to the frame), after the K candidates. Cells are chosen in order, one after another.
// With `median` (format 12.0's flagged fields), cells go in raster order and a vector other than the
// predictor costs moving_bits + the component bits of its residual from the per-component median of
// the left, upper and upper-right choices (the upper one in the last column; the predictor itself in
// the first row and column); a vector equal to the predictor still costs zero_bits.
int gsvc_choose_vectors(const float* errors, const int64_t* candidates, int32_t count, int32_t gh, int32_t gw,
                        float lam, const float* zero_bits, const float* moving_bits, const float* image,
                        const float* reference,
                        int32_t height, int32_t width, int32_t cell, float own_weight, int32_t median,
                        int64_t* chosen) {
  if (count < 1 || gh < 1 || gw < 1) return 1;
  const bool own = image != nullptr && reference != nullptr;
  if (own && (height < 1 || width < 1 || cell < 1 || gh != (height - 1) / cell + 1 || gw != (width - 1) / cell + 1))
    return 1;
  const int64_t cells = static_cast<int64_t>(gh) * gw;
  auto component = [](int64_t r) { return 1.0f + 2.0f * std::log2(1.0f + static_cast<float>(r < 0 ? -r : r)); };
  // (px, py): the neighbour predictor (a vector equal to it costs zero_bits); (mx, my): what any
  // other vector is coded against (the same, or with `median` the median predictor)
  auto choose = [&](int32_t row, int32_t col, int64_t px, int64_t py, int64_t mx, int64_t my) {
    const int64_t c = static_cast<int64_t>(row) * gw + col;
    const float zero = zero_bits[c], moving = moving_bits[c];
    auto bits = [&](int64_t vx, int64_t vy, int64_t px, int64_t py, int64_t mx, int64_t my) {
      return vx == px && vy == py ? zero : (component(vx - mx) + component(vy - my)) + moving;
    };
    int64_t bx = candidates[2 * c], by = candidates[2 * c + 1];
    float best = errors[c] + lam * bits(bx, by, px, py, mx, my);
    for (int32_t k = 1; k < count; ++k) {
      const int64_t at = k * cells + c;
      const int64_t vx = candidates[2 * at], vy = candidates[2 * at + 1];
      const float cost = errors[at] + lam * bits(vx, vy, px, py, mx, my);
      if (cost < best) {
        best = cost;
        bx = vx;
        by = vy;
      }
    }
    if (own) {
      const int32_t y0 = row * cell, x0 = col * cell;
      const int32_t y1 = std::min(height, y0 + cell), x1 = std::min(width, x0 + cell);
      double sum = 0.0;
      for (int32_t y = y0; y < y1; ++y) {
        const float* a = image + static_cast<int64_t>(y) * width;
        const float* b = reference + std::clamp<int64_t>(y - py, 0, height - 1) * width;
        for (int32_t x = x0; x < x1; ++x) {
          const float d = a[x] - b[std::clamp<int64_t>(x - px, 0, width - 1)];
          sum += static_cast<double>(d) * d;
        }
      }
      if (own_weight * static_cast<float>(sum) + lam * zero < best) {
        bx = px;
        by = py;
      }
    }
    chosen[2 * c] = bx;
    chosen[2 * c + 1] = by;
  };
  auto first_column = [&](int32_t row) {  // predicted from the cell above
    const int64_t* above = row ? chosen + 2 * static_cast<int64_t>(row - 1) * gw : nullptr;
    const int64_t px = above ? above[0] : 0, py = above ? above[1] : 0;
    choose(row, 0, px, py, px, py);
  };
  if (!median) {  // each cell needs only its left neighbour: a column at a time
    for (int32_t row = 0; row < gh; ++row) first_column(row);
    for (int32_t col = 1; col < gw; ++col)
      for (int32_t row = 0; row < gh; ++row) {
        const int64_t* left = chosen + 2 * (static_cast<int64_t>(row) * gw + col - 1);
        choose(row, col, left[0], left[1], left[0], left[1]);
      }
    return 0;
  }
  auto med = [](int64_t a, int64_t b, int64_t c) { return std::max(std::min(a, b), std::min(std::max(a, b), c)); };
  for (int32_t row = 0; row < gh; ++row) {  // raster order: the cells above and above-right are chosen
    first_column(row);
    for (int32_t col = 1; col < gw; ++col) {
      const int64_t* left = chosen + 2 * (static_cast<int64_t>(row) * gw + col - 1);
      if (row == 0) {
        choose(row, col, left[0], left[1], left[0], left[1]);
        continue;
      }
      const int64_t* up = chosen + 2 * (static_cast<int64_t>(row - 1) * gw + col);
      const int64_t* up_right = col + 1 < gw ? up + 2 : up;
      choose(row, col, left[0], left[1], med(left[0], up[0], up_right[0]), med(left[1], up[1], up_right[1]));
    }
  }
  return 0;
}

// out [gh,gw] (double): per cell of `cell` pixels tiling [height,width] from the top-left corner, the
// sum over the cell and `reach` pixels around it, inside the frame, of e(p) = sum over channels of
// weights[c] x (a[c,p] - b[c,p])^2 (a, b [channels,height,width]; e in float32, its sums in double):
// the encoder's refine_field cost of a moved picture a against the frame b. Rows first (each row's
// windows across), then down the columns.
int gsvc_window_sums(const float* a, const float* b, int32_t channels, int32_t height, int32_t width,
                     const float* weights, int32_t cell, int32_t reach, int32_t gh, int32_t gw, double* out,
                     int threads) {
  if (channels < 1 || height < 1 || width < 1 || cell < 1 || reach < 0 || threads < 1 ||
      gh != (height - 1) / cell + 1 || gw != (width - 1) / cell + 1)
    return 1;
  const int64_t plane = static_cast<int64_t>(height) * width;
  try {
    std::vector<double> across(static_cast<size_t>(height) * gw);  // [height, gw]: each row's window sums
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> e(static_cast<size_t>(width));
#pragma omp for schedule(static)
      for (int32_t y = 0; y < height; ++y) {
        const int64_t at = static_cast<int64_t>(y) * width;
        for (int32_t x = 0; x < width; ++x) {
          const float d = a[at + x] - b[at + x];
          e[x] = weights[0] * (d * d);
        }
        for (int32_t c = 1; c < channels; ++c)
          for (int32_t x = 0; x < width; ++x) {
            const float d = a[c * plane + at + x] - b[c * plane + at + x];
            e[x] += weights[c] * (d * d);
          }
        double* row = across.data() + static_cast<int64_t>(y) * gw;
        for (int32_t cx = 0; cx < gw; ++cx) {
          const int32_t x0 = std::max(0, cx * cell - reach), x1 = std::min(width, (cx + 1) * cell + reach);
          double sum = 0.0;
          for (int32_t x = x0; x < x1; ++x) sum += e[x];
          row[cx] = sum;
        }
      }
#pragma omp for schedule(static)
      for (int32_t cy = 0; cy < gh; ++cy) {
        const int32_t y0 = std::max(0, cy * cell - reach), y1 = std::min(height, (cy + 1) * cell + reach);
        for (int32_t cx = 0; cx < gw; ++cx) {
          double sum = 0.0;
          for (int32_t y = y0; y < y1; ++y) sum += across[static_cast<size_t>(y) * gw + cx];
          out[static_cast<int64_t>(cy) * gw + cx] = sum;
        }
      }
    }
  } catch (const std::bad_alloc&) {
    return 2;
  }
  return 0;
}

// out [gh,gw,2]: the vectors of a flagged field whose moving cells (moving[i] != 0) carry residuals
// against the median of their left, upper and upper-right neighbours (the upper one in the last
// column; the neighbour predictor in the first row and column), the others none (residuals there
// are ignored): FORMAT.md "Flagged field", unit + 32. Residuals below 2^40 in magnitude (the
// entropy coder's bound) cannot overflow over 65536 cells.
int gsvc_median_field(const int64_t* residuals, const uint8_t* moving, int32_t gh, int32_t gw, int64_t* out) {
  if (gh < 1 || gw < 1) return 1;
  for (int32_t r = 0; r < gh; ++r)
    for (int32_t c = 0; c < gw; ++c) {
      const int64_t i = static_cast<int64_t>(r) * gw + c;
      for (int k = 0; k < 2; ++k) {
        int64_t p;
        if (c == 0) {
          p = r == 0 ? 0 : out[2 * (i - gw) + k];
        } else if (r == 0 || !moving[i]) {
          p = out[2 * (i - 1) + k];
        } else {
          const int64_t a = out[2 * (i - 1) + k], b = out[2 * (i - gw) + k];
          const int64_t d = out[2 * (i - gw + (c + 1 < gw ? 1 : 0)) + k];
          p = std::max(std::min(a, b), std::min(std::max(a, b), d));
        }
        out[2 * i + k] = moving[i] ? p + residuals[2 * i + k] : p;
      }
    }
  return 0;
}

// sums [2 x channels] (double): per channel c, the sum over its `count` values of (a - b)^2, then
// the same with a clamped to [0, 1] (the fitting loop's loss and its PSNR of the picture as coded).
// Each row of `width` values sums in eight float lanes in a fixed order, the rows in double, in
// order: no thread count changes the sums.
int gsvc_fit_error_sums(const float* a, const float* b, int32_t channels, int32_t height, int32_t width,
                        double* sums, int threads) {
  if (channels < 1 || height < 1 || width < 1 || threads < 1) return 1;
  const int64_t rows = static_cast<int64_t>(channels) * height;
  try {
    std::vector<double> raw(static_cast<size_t>(rows)), clamped(static_cast<size_t>(rows));
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = a + r * width;
      const float* y = b + r * width;
      float lanes[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      float lanes_c[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      int32_t i = 0;
      for (; i + 8 <= width; i += 8)
        for (int l = 0; l < 8; ++l) {
          const float d = x[i + l] - y[i + l];
          const float e = std::min(std::max(x[i + l], 0.0f), 1.0f) - y[i + l];
          lanes[l] += d * d;
          lanes_c[l] += e * e;
        }
      for (; i < width; ++i) {
        const float d = x[i] - y[i];
        const float e = std::min(std::max(x[i], 0.0f), 1.0f) - y[i];
        lanes[0] += d * d;
        lanes_c[0] += e * e;
      }
      raw[static_cast<size_t>(r)] = lane_total(lanes);
      clamped[static_cast<size_t>(r)] = lane_total(lanes_c);
    }
    for (int32_t c = 0; c < channels; ++c) {
      double s = 0.0, t = 0.0;
      for (int32_t y = 0; y < height; ++y) {
        s += raw[static_cast<size_t>(c) * height + y];
        t += clamped[static_cast<size_t>(c) * height + y];
      }
      sums[c] = s;
      sums[channels + c] = t;
    }
  } catch (const std::bad_alloc&) {
    return 2;
  }
  return 0;
}

// out [channels, count] = (a - b) x scales[c]: the gradient of sum_c w_c mean_c (a - b)^2 with
// respect to a, scales[c] = 2 w_c / count as the caller rounds it (each value one subtraction and
// one product, as the plain expression's).
int gsvc_fit_error_gradient(const float* a, const float* b, int32_t channels, int64_t count, const float* scales,
                            float* out, int threads) {
  if (channels < 1 || count < 1 || threads < 1) return 1;
  for (int32_t c = 0; c < channels; ++c) {
    const float scale = scales[c];
    const float* x = a + c * count;
    const float* y = b + c * count;
    float* g = out + c * count;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < count; ++i) g[i] = (x[i] - y[i]) * scale;
  }
  return 0;
}

}  // extern "C"
