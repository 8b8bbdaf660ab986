// SPDX-License-Identifier: MIT
#pragma once
// The fuzz targets' seed corpora are written by the targets themselves,
// with the library's own encoders, so that a seed is a well-formed input
// of the version that wrote it: `<target> --write-seeds=fuzz/corpus/<target>`
// (run from LLVMFuzzerInitialize, before libFuzzer reads its flags).
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include <procpool/common/archive.hpp>

namespace procpool::fuzz {

inline void write_seed(const std::string& dir, const std::string& name, std::span<const std::byte> bytes) {
  std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
}
inline void write_seed(const std::string& dir, const std::string& name, const detail::ByteBuffer& bytes) {
  write_seed(dir, name, {bytes.data(), bytes.size()});
}

// With --write-seeds=DIR among the arguments: writes the seeds there and exits.
inline void write_seeds_if_asked(int argc, char** argv, void (*write)(const std::string& dir)) {
  constexpr std::string_view kFlag = "--write-seeds=";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (!arg.starts_with(kFlag)) continue;
    write(std::string(arg.substr(kFlag.size())));
    std::exit(0);
  }
}

}  // namespace procpool::fuzz
