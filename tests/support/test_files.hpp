// SPDX-License-Identifier: MIT
#pragma once
// Files a test has its tasks write (tasks::record_run appends one id a
// run), to count how many times each call ran.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

// A path under /tmp of this test process's own, `tag` telling the test;
// whatever an earlier run left there is removed.
inline std::string temp_path(const std::string& tag) {
  std::string path = "/tmp/procpool-test-" + tag + "-" + std::to_string(::getpid());
  std::remove(path.c_str());
  return path;
}

// How many times each id was recorded in `path`.
inline std::map<int, int> runs_in(const std::string& path) {
  std::map<int, int> out;
  std::ifstream in(path);
  for (int id; in >> id;) ++out[id];
  return out;
}
