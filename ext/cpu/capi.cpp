// A plain C ABI over the CPU kernels, for callers without torch (the decoder loads it with ctypes).
//
// Five entry points, all on caller-owned float32 / integer arrays (row-major, contiguous):
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
// Return values: 0 on success, 1 for bad arguments, 2 when memory ran out. No exception crosses
// the ABI.
#include <omp.h>
#include <stdint.h>

#include <algorithm>
#include <cmath>
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

// One cell (columns x0 .. x1 - 1, rows y0 .. y0 + rows - 1) of every channel read through T taps
// at (vx, vy) quarter pixels: across first, (..((w0 a + w1 b) + w2 c) ..) + w[T-1] z, for the rows
// T/2 - 1 above the cell to T/2 below it into `across` ((rows + T - 1) x cell floats of scratch,
// each source row filtered once for the cell), then down the same way. Each output value is the
// same sum of the same products as one read at a time (FORMAT.md), so the order of the loops is free.
template <int T>
void filter_cell(const float* picture, int32_t channels, int32_t height, int32_t width, int64_t vx, int64_t vy,
                 int32_t x0, int32_t x1, int32_t y0, int32_t rows, float* across, float* out) {
  constexpr int kBefore = T / 2 - 1;
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int32_t n = x1 - x0;
  const int64_t ux = -vx, uy = -vy;  // reading at p + u / 4
  const int64_t ix = ux >= 0 ? ux / 4 : -((-ux + 3) / 4), iy = uy >= 0 ? uy / 4 : -((-uy + 3) / 4);
  float wx[T], wy[T];
  tap_weights<T>(ux - 4 * ix, wx);
  tap_weights<T>(uy - 4 * iy, wy);
  const bool inside = x0 + ix - kBefore >= 0 && x1 - 1 + ix + (T - 1 - kBefore) <= width - 1;
  for (int32_t c = 0; c < channels; ++c) {
    const float* src = picture + c * plane;
    for (int32_t j = 0; j < rows + T - 1; ++j) {
      const float* line = src + clamp_index(y0 + iy - kBefore + j, height - 1) * width;
      float* h = across + static_cast<int64_t>(j) * n;
      if (inside) {
        const float* at = line + x0 + ix - kBefore;
        for (int32_t x = 0; x < n; ++x) {
          float s = wx[0] * at[x];
          for (int t = 1; t < T; ++t) s = s + wx[t] * at[x + t];
          h[x] = s;
        }
      } else {
        for (int32_t x = 0; x < n; ++x) {
          const int64_t at = x0 + x + ix - kBefore;
          float s = wx[0] * line[clamp_index(at, width - 1)];
          for (int t = 1; t < T; ++t) s = s + wx[t] * line[clamp_index(at + t, width - 1)];
          h[x] = s;
        }
      }
    }
    for (int32_t r = 0; r < rows; ++r) {
      const float* h = across + static_cast<int64_t>(r) * n;
      float* dst = out + c * plane + static_cast<int64_t>(y0 + r) * width + x0;
      for (int32_t x = 0; x < n; ++x) {
        float v = wy[0] * h[x];
        for (int t = 1; t < T; ++t) v = v + wy[t] * h[x + static_cast<int64_t>(t) * n];
        dst[x] = std::min(std::max(v, 0.0f), 1.0f);
      }
    }
  }
}

// One row of cells (output rows y0 .. y1 - 1) of every channel. Whole-pixel vectors copy; a
// quarter-pixel cell reads through the cubic (or with `sharp`, the 8-tap filter): filter_cell.
void move_cell_row(const float* picture, int32_t channels, int32_t height, int32_t width, const int64_t* vectors,
                   int32_t gw, int32_t cell, int32_t per_pixel, bool sharp, int32_t y0, float* across, float* out) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int32_t y1 = std::min(height, y0 + cell), rows = y1 - y0;
  const int64_t* row_vectors = vectors + 2 * static_cast<int64_t>(y0 / cell) * gw;
  for (int32_t column = 0; column < gw; ++column) {
    const int32_t x0 = column * cell, x1 = std::min(width, x0 + cell), n = x1 - x0;
    const int64_t vx = row_vectors[2 * column], vy = row_vectors[2 * column + 1];
    if (per_pixel == 1) {
      const bool inside = x0 - vx >= 0 && x1 - 1 - vx <= width - 1;
      for (int32_t c = 0; c < channels; ++c) {
        for (int32_t y = y0; y < y1; ++y) {
          const float* src = picture + c * plane + clamp_index(y - vy, height - 1) * width;
          float* dst = out + c * plane + static_cast<int64_t>(y) * width;
          if (inside) {
            const float* from = src + (x0 - vx);
            float* to = dst + x0;
            for (int32_t x = 0; x < n; ++x) to[x] = from[x];  // cells are short: no memmove call
          } else {
            for (int32_t x = x0; x < x1; ++x) dst[x] = src[clamp_index(x - vx, width - 1)];
          }
        }
      }
    } else if (sharp) {
      filter_cell<8>(picture, channels, height, width, vx, vy, x0, x1, y0, rows, across, out);
    } else {
      filter_cell<4>(picture, channels, height, width, vx, vy, x0, x1, y0, rows, across, out);
    }
  }
}

// One value of a plane moved by one vector (vx, vy) at pixel (x, y): the products and sums of
// filter_cell for that pixel, in its order, so the value is the same bit for bit.
template <int T>
float filtered_value(const float* src, int32_t height, int32_t width, int64_t vx, int64_t vy, int32_t x,
                     int32_t y) {
  constexpr int kBefore = T / 2 - 1;
  const int64_t ux = -vx, uy = -vy;
  const int64_t ix = ux >= 0 ? ux / 4 : -((-ux + 3) / 4), iy = uy >= 0 ? uy / 4 : -((-uy + 3) / 4);
  float wx[T], wy[T], h[T];
  tap_weights<T>(ux - 4 * ix, wx);
  tap_weights<T>(uy - 4 * iy, wy);
  const int64_t at = x + ix - kBefore;
  for (int j = 0; j < T; ++j) {
    const float* line = src + clamp_index(y + iy - kBefore + j, height - 1) * width;
    float s = wx[0] * line[clamp_index(at, width - 1)];
    for (int t = 1; t < T; ++t) s = s + wx[t] * line[clamp_index(at + t, width - 1)];
    h[j] = s;
  }
  float v = wy[0] * h[0];
  for (int t = 1; t < T; ++t) v = v + wy[t] * h[t];
  return std::min(std::max(v, 0.0f), 1.0f);
}

float moved_value(const float* src, int32_t height, int32_t width, int64_t vx, int64_t vy, int32_t per_pixel,
                  bool sharp, int32_t x, int32_t y) {
  if (per_pixel == 1) return src[clamp_index(y - vy, height - 1) * width + clamp_index(x - vx, width - 1)];
  return sharp ? filtered_value<8>(src, height, width, vx, vy, x, y)
               : filtered_value<4>(src, height, width, vx, vy, x, y);
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

// The border pixels of row y of an overlapped M-frame, blended in place over the plain move in
// `out`: only where a pixel blends and a neighbour's vector differs from its cell's does anything
// change (elsewhere the formula gives the plain value exactly).
void blend_row(const float* picture, int32_t channels, int32_t height, int32_t width, const int64_t* vectors,
               int32_t gh, int32_t gw, int32_t cell, int32_t per_pixel, bool sharp, int32_t k, int32_t y,
               float* out) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  float ay;
  const int sy = border_side(y % cell, cell, k, &ay);
  const int32_t r = y / cell, rn = static_cast<int32_t>(clamp_index(r + sy, gh - 1));
  for (int32_t x = 0; x < width; ++x) {
    float ax;
    const int sx = border_side(x % cell, cell, k, &ax);
    if (sx == 0 && sy == 0) continue;
    const int32_t c = x / cell, cn = static_cast<int32_t>(clamp_index(c + sx, gw - 1));
    const int64_t* own = vectors + 2 * (static_cast<int64_t>(r) * gw + c);
    const int64_t* across = vectors + 2 * (static_cast<int64_t>(r) * gw + cn);
    const int64_t* down = vectors + 2 * (static_cast<int64_t>(rn) * gw + c);
    const int64_t* diagonal = vectors + 2 * (static_cast<int64_t>(rn) * gw + cn);
    auto same = [own](const int64_t* v) { return v[0] == own[0] && v[1] == own[1]; };
    if (same(across) && same(down) && same(diagonal)) continue;
    for (int32_t ch = 0; ch < channels; ++ch) {
      const float* src = picture + ch * plane;
      float* dst = out + ch * plane + static_cast<int64_t>(y) * width + x;
      const float m = *dst;
      auto read = [&](const int64_t* v) {
        return same(v) ? m : moved_value(src, height, width, v[0], v[1], per_pixel, sharp, x, y);
      };
      const float m_across = read(across), m_down = read(down), m_diagonal = read(diagonal);
      const float top = m + ax * (m_across - m);
      const float bottom = m_down + ax * (m_diagonal - m_down);
      *dst = std::min(std::max(top + ay * (bottom - top), 0.0f), 1.0f);
    }
  }
}

#pragma GCC pop_options

}  // namespace

extern "C" {

// Bumped when a signature below changes or one is added (the Python side refuses a library of
// another version).
int gsvc_capi_version(void) { return 6; }

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
  if (channels < 1 || height < 1 || width < 1 || cell < 1 || (per_pixel != 1 && per_pixel != 4) || threads < 1 ||
      (sharp != 0 && sharp != 1) || (sharp && per_pixel != 4) || gh != (height - 1) / cell + 1 ||
      gw != (width - 1) / cell + 1)
    return 1;
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

// An overlapped M-frame (payload kind 6): the plain move, then each cell's border pixels blended with
// the moves by its neighbours' vectors (FORMAT.md "Overlapped cells"; the numpy path is
// gsvc_cli/codec/moved_picture.overlap_blend). Same arguments and return values as gsvc_move_picture.
int gsvc_move_picture_overlapped(const float* picture, int32_t channels, int32_t height, int32_t width,
                                 const int64_t* vectors, int32_t gh, int32_t gw, int32_t cell, int32_t per_pixel,
                                 int32_t sharp, float* out, int threads) {
  const int status = gsvc_move_picture(picture, channels, height, width, vectors, gh, gw, cell, per_pixel, sharp,
                                       out, threads);
  if (status != 0 || cell < 2) return status;
  const int32_t k = std::max(1, cell / 8);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int32_t y = 0; y < height; ++y)
    blend_row(picture, channels, height, width, vectors, gh, gw, cell, per_pixel, sharp != 0, k, y, out);
  return 0;
}

}  // extern "C"
