// SPDX-License-Identifier: MIT
#include "protocol.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bench {

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t')) fields.push_back(field);
  return fields;
}

}  // namespace

Line parse_line(const std::string& text) {
  Line line;
  std::vector<std::string> f = split_tabs(text);
  if (f.size() == 6 && f[0] == "R") {
    char* end = nullptr;
    line.record = {f[1], f[2], f[3], std::atoi(f[4].c_str()), std::strtod(f[5].c_str(), &end)};
    if (end != f[5].c_str()) line.kind = Line::kRecord;
  } else if (f.size() == 4 && f[0] == "NOTE") {
    line.kind = Line::kNote;
    line.note = {f[1], f[2], f[3]};
  } else if (f.size() == 3 && f[0] == "SKIP") {
    line.kind = Line::kSkip;
    line.note = {f[1], "", f[2]};
  }
  return line;
}

void emit(const std::string& system, const std::string& figure, const std::string& param, int round, double value) {
  std::printf("R\t%s\t%s\t%s\t%d\t%.6g\n", system.c_str(), figure.c_str(), param.c_str(), round, value);
  std::fflush(stdout);
}

void emit_note(const std::string& system, const std::string& figure, const std::string& text) {
  std::printf("NOTE\t%s\t%s\t%s\n", system.c_str(), figure.c_str(), text.c_str());
  std::fflush(stdout);
}

void append_samples(const std::string& dir, const std::string& system, int round, const std::vector<double>& micros) {
  if (dir.empty()) return;
  std::filesystem::path path = std::filesystem::path(dir) / (system + ".rtt.tsv");
  bool fresh = !std::filesystem::exists(path);
  std::ofstream out(path, std::ios::app);
  if (fresh) out << "round\tmicros\n";
  for (double us : micros) out << round << '\t' << us << '\n';
}

}  // namespace bench
