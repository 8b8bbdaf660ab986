// SPDX-License-Identifier: MIT
// procpool_bench: procpool beside Python's process pools and the floor of
// what the machine allows, in one run of interleaved rounds, written up in
// <out>/latest.md with plots. `cmake --build <dir> --target bench` runs it
// with the results going to bench/results.
//
//   procpool_bench [--rounds N] [--quick] [--group G[,G]] [--out DIR] [--python PY | --no-python]
//   procpool_bench --system procpool|floor|start-methods|sandbox --round R [--quick] [--raw DIR]
//                                                        (one round; used by the driver)
#include <unistd.h>

#include <procpool/procpool.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "driver.hpp"
#include "report.hpp"
#include "sandbox_figures.hpp"
#include "start_methods_report.hpp"
#include "summary.hpp"
#include "system.hpp"

namespace {

constexpr const char* kUsage =
    "Usage: procpool_bench [--rounds N] [--quick] [--group G[,G]] [--out DIR] [--python PY | --no-python]\n"
    "  --rounds N   interleaved rounds (default 3); figures are medians over rounds\n"
    "  --quick      one tiny round: a smoke test of the whole suite\n"
    "  --group G    only these groups of figures (default: all): core (procpool, the floor,\n"
    "               Python's executors) and start-methods (fork, forkserver, spawn: start-up,\n"
    "               respawn and crash replacement at two host sizes, beside Python's) and\n"
    "               sandbox (each profile's round trip and start-up against none);\n"
    "               repeat it or separate names with commas\n"
    "  --out DIR    where latest.md, records.tsv and the plots go (default bench-results)\n"
    "  --python PY  the Python interpreter for the Python systems (default: python3, else Debian's)\n"
    "  --no-python  measure procpool and the floor only\n";

struct Options {
  int rounds = 3;
  bool quick = false, python_enabled = true;
  std::string out = "bench-results", python, system, raw;
  std::set<std::string> groups;  // empty: all
  int round = 1;
};

// Adds the comma-separated group names of `list`; false if one is unknown.
bool add_groups(const std::string& list, std::set<std::string>& groups) {
  std::istringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    if (!bench::all_groups().count(name)) return false;
    groups.insert(name);
  }
  return !list.empty();
}

int usage_error(const std::string& what) {
  std::fprintf(stderr, "procpool_bench: %s\n%s", what.c_str(), kUsage);
  return 2;
}

std::string self_path() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : path.string();
}

int run_suite(const Options& o, const std::string& command) {
  namespace fs = std::filesystem;
  bench::SuiteOptions suite;
  suite.rounds = o.quick ? 1 : o.rounds;
  suite.quick = o.quick;
  if (!o.groups.empty()) suite.groups = o.groups;
  suite.self = self_path();
  suite.python_dir = PROCPOOL_BENCH_PYTHON_DIR;
  suite.python = o.python_enabled ? (o.python.empty() ? bench::find_python() : o.python) : "";
  fs::path out = fs::absolute(o.out);
  suite.raw_dir = (out / "raw").string();
  fs::remove_all(suite.raw_dir);
  fs::create_directories(suite.raw_dir);
  if (o.python_enabled && suite.python.empty())
    std::fprintf(stderr, "procpool_bench: no Python 3 found; the Python systems are skipped\n");
  else if (!suite.python.empty())
    std::fprintf(stderr, "procpool_bench: Python systems run with %s\n", suite.python.c_str());

  bench::SuiteResults results = bench::run_suite(suite);
  if (suite.python.empty()) {
    std::vector<const char*> systems;
    if (suite.groups.count(bench::kCoreGroup)) systems = {"python-ppe", "python-loky"};
    if (suite.groups.count(bench::kStartMethodsGroup))
      systems.insert(systems.end(), {"python-fork", "python-forkserver", "python-spawn", "python-loky"});
    for (const char* system : systems)
      results.skipped[system] = o.python_enabled ? "no Python 3 interpreter found" : "--no-python";
  }
  bench::ReportContext context{out.string(), suite.raw_dir, command, suite.python, suite.rounds, suite.quick};
  int missed = bench::write_report(results, context);
  bench::write_plots(results, context);
  std::printf("procpool_bench: %zu values in %.0f s; %d target(s) missed; report in %s/latest.md\n",
              results.records.size(), results.seconds, missed, out.c_str());
  // The start-methods tables on stdout too: they are short, and the
  // group is often run alone (--group start-methods).
  std::string start_methods = bench::start_methods_markdown(bench::Summary(results.records));
  if (!start_methods.empty()) std::printf("\n%s", start_methods.c_str());
  std::string sandbox = bench::sandbox_markdown(bench::Summary(results.records));
  if (!sandbox.empty()) std::printf("\n%s", sandbox.c_str());
  for (const std::string& failure : results.failures) std::printf("FAILED: %s\n", failure.c_str());
  return results.failures.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // First thing: forks the zygote of StartMethod::forkserver while this
  // process is small and has one thread, and, in a worker started by
  // StartMethod::spawn, becomes that worker (it never returns there).
  procpool::init(argc, argv);
  Options o;
  std::string command = "procpool_bench";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    command += " " + arg;
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) return "";
      command += std::string(" ") + argv[i + 1];
      return argv[++i];
    };
    if (arg == "--quick") o.quick = true;
    else if (arg == "--no-python") o.python_enabled = false;
    else if (arg == "--rounds") o.rounds = std::atoi(value().c_str());
    else if (arg == "--round") o.round = std::atoi(value().c_str());
    else if (arg == "--out") o.out = value();
    else if (arg == "--python") o.python = value();
    else if (arg == "--system") o.system = value();
    else if (arg == "--raw") o.raw = value();
    else if (arg == "--group") {
      std::string list = value();
      if (!add_groups(list, o.groups))
        return usage_error("unknown group in '" + list + "' (core, start-methods, sandbox)");
    } else if (arg == "-h" || arg == "--help") return std::printf("%s", kUsage), 0;
    else return usage_error("unknown option '" + arg + "'");
  }
  if (o.rounds < 1 || o.round < 1) return usage_error("--rounds and --round take a positive number");
  bench::RoundOptions round{o.round, o.quick, o.raw};
  if (o.system == "procpool") return bench::measure_procpool(round), 0;
  if (o.system == "floor") return bench::measure_floor(round), 0;
  if (o.system == "start-methods") return bench::measure_start_methods(round), 0;
  if (o.system == "sandbox") return bench::measure_sandbox_cost(round), 0;
  if (!o.system.empty())
    return usage_error("unknown system '" + o.system + "' (procpool, floor, start-methods or sandbox)");
  return run_suite(o, command);
}
