// SPDX-License-Identifier: MIT
#pragma once
// The record protocol between the suite's driver and the programs that
// measure one system for one round (procpool and the floor in this
// executable, Python's executors in bench/python/executor_bench.py). Each
// measuring program prints, on stdout, one line per fact:
//
//   R    <system> <figure> <param> <round> <value>   a measured value
//   NOTE <system> <figure> <text>                    a remark for the report
//   SKIP <system> <reason>                           the system is unavailable
//
// fields separated by tabs. Each figure has one fixed unit (bench/suite/
// figures.hpp); progress goes to stderr. Raw latency samples go to
// <raw dir>/<system>.rtt.tsv, one "round<TAB>micros" line each.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace bench {

struct Record {
  std::string system, figure, param;
  int round = 0;
  double value = 0;
};

struct Note {
  std::string system, figure, text;
};

// What one line of a measuring program's output says.
struct Line {
  enum Kind { kRecord, kNote, kSkip, kOther } kind = kOther;
  Record record;
  Note note;  // for kSkip: system and text (the reason)
};

Line parse_line(const std::string& line);

// Prints a record on stdout (flushed, so that the driver sees progress).
void emit(const std::string& system, const std::string& figure, const std::string& param, int round, double value);
void emit_note(const std::string& system, const std::string& figure, const std::string& text);

// Appends raw latency samples to <dir>/<system>.rtt.tsv (no-op if dir is empty).
void append_samples(const std::string& dir, const std::string& system, int round, const std::vector<double>& micros);

}  // namespace bench
