// Splitting CPU work over threads. Not at::parallel_for: with torch's OpenMP backend its
// `#pragma omp parallel` is inlined into this extension, which is built without -fopenmp (that
// would link a second OpenMP runtime beside torch's bundled one), so it would run serially.
// Plain std::threads, as many as torch's intra-op setting allows; callers only split work that
// is worth a thread start (tens of microseconds), and every chunk is independent and
// deterministic, so results do not depend on the thread count.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace ganfast {
namespace cpu {

// fn(begin, end) over [0, n) in at most at::get_num_threads() contiguous chunks of at least
// `grain` items. The first exception thrown by a chunk is rethrown here.
template <typename F>
void parallel_chunks(int64_t n, int64_t grain, const F& fn) {
  if (n <= 0) return;
  const int64_t max_chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n / std::max<int64_t>(grain, 1)));
  if (max_chunks <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t per = (n + max_chunks - 1) / max_chunks;
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(max_chunks);
  for (int64_t c = 1; c < max_chunks; ++c) {
    const int64_t begin = c * per, end = std::min(n, begin + per);
    if (begin >= end) break;
    workers.emplace_back([&, c, begin, end] {
      try {
        fn(begin, end);
      } catch (...) {
        errors[c] = std::current_exception();
      }
    });
  }
  try {
    fn(int64_t{0}, std::min(n, per));
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace cpu
}  // namespace ganfast
