// SPDX-License-Identifier: MIT
#include "driver.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "../bench_util.hpp"

namespace bench {
namespace {

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool command_succeeds(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

struct Program {
  std::string system;  // as named in progress lines
  std::string command;
};

void run_program(const Program& program, SuiteResults& results) {
  FILE* out = popen(program.command.c_str(), "r");
  if (!out) {
    results.failures.push_back(program.system + ": could not start: " + program.command);
    return;
  }
  std::string line;
  for (int c; (c = std::fgetc(out)) != EOF;) {
    if (c != '\n') {
      line += static_cast<char>(c);
      continue;
    }
    Line parsed = parse_line(line);
    if (parsed.kind == Line::kRecord) results.records.push_back(parsed.record);
    else if (parsed.kind == Line::kNote) results.notes.push_back(parsed.note);
    else if (parsed.kind == Line::kSkip) results.skipped[parsed.note.system] = parsed.note.text;
    else std::fprintf(stderr, "  %s: %s\n", program.system.c_str(), line.c_str());
    line.clear();
  }
  int status = pclose(out);
  if (status != 0) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    results.failures.push_back(program.system + " exited with status " + std::to_string(code));
  }
}

// Samples per round of start_methods.py: loky takes over a second a start
// on this 2-core VM, so that its default of 7 would take some 2 minutes a
// round; the suite's rounds make up the rest.
constexpr int kPythonStartSamples = 2;

std::string round_arg(const SuiteOptions& o, int round) {
  return " --round " + std::to_string(round) + (o.quick ? " --quick" : "");
}
std::string python_in(const SuiteOptions& o) { return quoted(o.python) + " -B " + quoted(o.python_dir); }

std::vector<Program> programs(const SuiteOptions& o, int round) {
  std::string common = round_arg(o, round) + " --raw " + quoted(o.raw_dir);
  std::string python = python_in(o);
  std::vector<Program> list;
  if (o.groups.count(kCoreGroup)) {
    list.push_back({"procpool", quoted(o.self) + " --system procpool" + common});
    list.push_back({"floor", quoted(o.self) + " --system floor" + common});
    if (!o.python.empty())
      for (const char* system : {"python-ppe", "python-loky"})
        list.push_back({system, executor_bench_command(o, system, round)});
  }
  if (o.groups.count(kStartMethodsGroup)) {
    list.push_back({"procpool start methods", quoted(o.self) + " --system start-methods" + common});
    std::string samples = o.quick ? "" : " --samples " + std::to_string(kPythonStartSamples);
    if (!o.python.empty())
      list.push_back({"python start methods", python + "/start_methods.py" + round_arg(o, round) + samples});
  }
  if (o.groups.count(kSandboxGroup))
    list.push_back({"procpool sandbox", quoted(o.self) + " --system sandbox" + common});
  return list;
}

}  // namespace

void run_measuring_program(const std::string& system, const std::string& command, SuiteResults& results) {
  run_program(Program{system, command}, results);
}

std::string executor_bench_command(const SuiteOptions& o, const std::string& system, int round) {
  return python_in(o) + "/executor_bench.py --system " + system + round_arg(o, round) + " --raw " + quoted(o.raw_dir);
}

std::string find_python() {
  const std::vector<std::string> candidates = {"python3", "/usr/bin/python3"};
  for (const std::string& py : candidates)
    if (command_succeeds(py + " -c 'from joblib.externals import loky'")) return py;
  for (const std::string& py : candidates)
    if (command_succeeds(py + " -c 'import asyncio, concurrent.futures'")) return py;
  return "";
}

SuiteResults run_suite(const SuiteOptions& o) {
  SuiteResults results;
  auto t0 = Clock::now();
  for (int round = 1; round <= o.rounds; ++round) {
    std::vector<Program> list = programs(o, round);
    std::rotate(list.begin(), list.begin() + (round - 1) % static_cast<int>(list.size()), list.end());
    for (const Program& program : list) {
      if (results.skipped.count(program.system)) continue;
      std::fprintf(stderr, "[%5.0f s] round %d/%d: %s\n", micros(Clock::now() - t0) / 1e6, round, o.rounds,
                   program.system.c_str());
      run_program(program, results);
    }
  }
  results.seconds = micros(Clock::now() - t0) / 1e6;
  return results;
}

}  // namespace bench
