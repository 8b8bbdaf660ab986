// SPDX-License-Identifier: MIT
#pragma once
// A ring in ordinary memory, with a producer's and a consumer's view of it,
// for tests of what runs on either side.
#include <cstddef>
#include <vector>

#include <procpool/common/byte_ring.hpp>

struct LocalRing {
  explicit LocalRing(size_t cap)
      : data(cap), producer(&header, data.data(), cap), consumer(&header, data.data(), cap) {}
  procpool::detail::RingHeader header;
  std::vector<std::byte> data;
  procpool::detail::ByteRing producer;
  procpool::detail::ByteRing consumer;
};
