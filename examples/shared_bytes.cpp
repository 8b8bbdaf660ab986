// SPDX-License-Identifier: MIT
// Large byte payloads without copies: a 64 MiB image made once in shared
// memory, handed to workers that each summarise a band of it and return a
// small result, and one worker that returns a new SharedBytes of its own.
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

// The sum of the bytes in [begin, end) of `image`: the worker reads the
// host's pages directly, nothing is copied into the call.
unsigned long band_sum(procpool::SharedBytes image, size_t begin, size_t end) {
  unsigned long sum = 0;
  for (size_t i = begin; i < end && i < image.size(); ++i) sum += std::to_integer<unsigned>(image.bytes()[i]);
  return sum;
}
PROCPOOL_REGISTER(band_sum);

// A new buffer made in the worker: every `step`-th byte of `image`.
procpool::SharedBytes thumbnail(procpool::SharedBytes image, size_t step) {
  size_t n = image.size() / step;
  return procpool::SharedBytes::make(n, [&](std::span<std::byte> out) {
    for (size_t i = 0; i < n; ++i) out[i] = image.bytes()[i * step];
  });
}
PROCPOOL_REGISTER(thumbnail);

int main(int argc, char** argv) {
  procpool::init(argc, argv);  // first: the forkserver's zygote is a copy of this moment
  bool timings = argc > 1 && std::string(argv[1]) == "--timings";
  if (argc > 1 && !timings) {
    std::cout << "Usage: " << argv[0] << " [--timings]\n"
              << "Sums a 64 MiB SharedBytes in 8 bands on 2 workers, then asks a worker for a\n"
              << "thumbnail of it; --timings also prints how long each step took.\n";
    return std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help" ? 0 : 2;
  }
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };

  constexpr size_t kSize = size_t{64} << 20, kBands = 8;
  auto t0 = Clock::now();
  auto image = procpool::SharedBytes::make(kSize, [](std::span<std::byte> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(i % 251);
  });
  auto t1 = Clock::now();

  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<unsigned long>> bands;
  for (size_t b = 0; b < kBands; ++b)
    bands.push_back(pool.submit(band_sum, image, b * kSize / kBands, (b + 1) * kSize / kBands));
  unsigned long total = 0;
  for (auto& f : bands) total += f.get();
  auto t2 = Clock::now();

  procpool::SharedBytes small = pool.submit(thumbnail, image, size_t{1024}).get();
  auto t3 = Clock::now();

  std::cout << "sum of 64 MiB in " << kBands << " bands: " << total << "\n"
            << "thumbnail: " << small.size() << " bytes, first " << std::to_integer<int>(small.bytes()[0])
            << ", second " << std::to_integer<int>(small.bytes()[1]) << "\n";
  if (timings)
    std::cout << "made the image in " << ms(t1 - t0) << " ms, summed it in " << ms(t2 - t1)
              << " ms (pool start-up included), thumbnail in " << ms(t3 - t2) << " ms\n";
}
