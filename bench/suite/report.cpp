// SPDX-License-Identifier: MIT
#include "report.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "../bench_util.hpp"
#include "figures.hpp"
#include "start_methods_report.hpp"
#include "summary.hpp"

namespace bench {
namespace {

std::string first_line_of(const std::string& command) {
  std::string text;
  if (FILE* p = popen((command + " 2>&1").c_str(), "r")) {
    char buf[256];
    if (std::fgets(buf, sizeof buf, p)) text = buf;
    pclose(p);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string machine_line(const ReportContext& c) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  utsname u{};
  uname(&u);
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::ostringstream s;
  s << date << "; " << model << ", " << sysconf(_SC_NPROCESSORS_ONLN) << " cores; Linux " << u.release << "; g++ "
    << __VERSION__;
  if (!c.python.empty()) s << "; " << first_line_of(c.python + " --version");
  return s.str();
}

// One target: how it reads, what was measured, and whether it was met.
constexpr const char* kNotMeasured = "not measured";

struct Target {
  std::string what, measured;
  bool met = false;
};

std::string x(double ratio) { return fmt(ratio) + "×"; }

std::vector<Target> targets(const Summary& s) {
  using V = std::optional<double>;
  std::vector<Target> out;
  // Adds the target as measured, or as kNotMeasured when a value is missing.
  auto check = [&](std::string what, std::initializer_list<V> needed, const std::function<Target()>& judge) {
    for (const V& v : needed)
      if (!v) return out.push_back({std::move(what), kNotMeasured, false});
    Target t = judge();
    t.what = std::move(what);
    out.push_back(std::move(t));
  };

  V pp = s.median("procpool", "rtt", "p50"), py = s.median("python-ppe", "rtt", "p50");
  check("awaited round trip p50 ≥ 50× faster than asyncio + ProcessPoolExecutor", {pp, py}, [&] {
    return Target{"", fmt(*pp) + " µs vs " + fmt(*py) + " µs: " + x(*py / *pp), *py / *pp >= 50};
  });
  V futex_hot = s.median("floor-futex", "rtt", "p50");
  check("awaited round trip p50 ≤ 3× the futex ping-pong floor (both back to back)", {pp, futex_hot}, [&] {
    return Target{"", fmt(*pp) + " µs vs " + fmt(*futex_hot) + " µs: " + x(*pp / *futex_hot), *pp <= 3 * *futex_hot};
  });
  V idle = s.median("procpool", "rtt_idle", "p50"), futex = s.median("floor-futex", "rtt_idle", "p50");
  check("round trip to a sleeping worker ≤ 3× the futex ping-pong floor (both 2 ms apart)", {idle, futex}, [&] {
    return Target{"", fmt(*idle) + " µs vs " + fmt(*futex) + " µs: " + x(*idle / *futex), *idle <= 3 * *futex};
  });
  V hot = s.median("procpool", "rtt_blocking", "p50"), spin = s.median("floor-spin", "rtt", "p50");
  check("back-to-back round trip ≤ 1.5× the spinning ping-pong floor", {hot, spin}, [&] {
    return Target{"", fmt(*hot) + " µs vs " + fmt(*spin) + " µs: " + x(*hot / *spin), *hot <= 1.5 * *spin};
  });
  for (auto [param, count] : {std::pair{"100000", "100,000"}, std::pair{"1000000", "1,000,000"}}) {
    V t = s.median("procpool", "throughput", param);
    check(std::string("≥ 2,000,000 tasks/s with ") + count + " no-ops submitted then awaited", {t}, [&] {
      return Target{"", fmt(*t) + " tasks/s", *t >= 2e6};
    });
  }
  // Three ways to move a payload, each judged: std::vector<char> (copied
  // each way), SharedBytes echoed (handed over, no byte copied), and a
  // worker that returns a new SharedBytes (one copy, into fresh memory).
  struct PayloadWay {
    const char *system, *figure, *what;
  };
  for (PayloadWay way : {PayloadWay{"procpool", "payload_bw", "echo of std::vector<char>"},
                         PayloadWay{"procpool-shared", "payload_bw", "echo of SharedBytes"},
                         PayloadWay{"procpool-shared", "payload_new_bw", "a new SharedBytes copy from the worker"}})
    for (auto [param, size] : {std::pair{"1048576", "1 MiB"}, std::pair{"67108864", "64 MiB"}}) {
      V bw = s.median(way.system, way.figure, param), mem = s.median("memcpy", "payload_bw", param);
      check(std::string(way.what) + " ≥ 25% of memcpy bandwidth at " + size, {bw, mem}, [&] {
        return Target{"", fmt(*bw) + " vs " + fmt(*mem) + " MB/s: " + fmt(100 * *bw / *mem) + "%", *bw >= 0.25 * *mem};
      });
    }
  V up = s.median("procpool", "speedup", "2");
  check("CPU speed-up ≥ 1.9× on 2 workers vs 1", {up}, [&] { return Target{"", x(*up), *up >= 1.9}; });
  V start = s.median("procpool", "startup", "2");
  check("start-up to first result ≤ 1 ms (2 workers)", {start}, [&] {
    return Target{"", fmt(*start) + " ms", *start <= 1};
  });
  V replace = s.median("procpool", "crash_replace", "1");
  auto lost = s.get("procpool", "crash_others_failed", "40");
  V worst_lost = lost ? V(lost->max) : V();
  check("crash → replacement serving ≤ 2 ms, and no other call failed", {replace, worst_lost}, [&] {
    return Target{"", fmt(*replace) + " ms; " + fmt(*worst_lost) + " other calls failed",
                  *replace <= 2 && *worst_lost == 0};
  });
  V deadline = s.median("procpool", "deadline_replace", "1");
  check("deadline → replacement serving ≤ 2 ms (1 worker)", {deadline}, [&] {
    return Target{"", fmt(*deadline) + " ms", *deadline <= 2};
  });
  V plain = s.median("procpool", "supervision_rtt", "none"), timed = s.median("procpool", "supervision_rtt", "timeout");
  check("a deadline on every call costs the hot round trip ≤ 5%", {plain, timed}, [&] {
    return Target{"", fmt(*timed) + " vs " + fmt(*plain) + " µs: " + x(*timed / *plain), *timed <= 1.05 * *plain};
  });
  V bytes = s.median("procpool", "mem_pending", "100000");
  check("host memory ≤ 256 B per pending call", {bytes}, [&] { return Target{"", fmt(*bytes) + " B", *bytes <= 256}; });
  return out;
}

void write_records(const SuiteResults& results, const std::string& path) {
  std::ofstream out(path);
  out << "system\tfigure\tparam\tround\tvalue\n";
  for (const Record& r : results.records)
    out << r.system << '\t' << r.figure << '\t' << r.param << '\t' << r.round << '\t' << r.value << '\n';
}

// Every figure, each measured system on its own row, procpool first.
void write_figures(std::ostream& md, const Summary& s) {
  md << "| figure | system | median | spread (min – max) | unit | ÷ procpool |\n|---|---|--:|--:|---|--:|\n";
  for (const FigureSpec& f : catalogue()) {
    bool first = true;
    auto reference = s.median("procpool", f.figure, f.param);
    for (const std::string& system : system_order()) {
      auto stat = s.get(system, f.figure, f.param);
      if (!stat) continue;
      std::string ratio = system != "procpool" && reference && *reference != 0 ? fmt(stat->median / *reference) : "";
      md << "| " << (first ? f.label : "") << " | " << system_label(system) << " | " << fmt(stat->median) << " | "
         << fmt(stat->min) << " – " << fmt(stat->max) << " | " << f.unit << " | " << ratio << " |\n";
      first = false;
    }
  }
}

// Not targets: each missed payload target beside the floor of the same
// work on this machine, so that a reader sees how much of the cost is the
// library's and how much the copies and fresh memory that any design of
// the same kind pays.
void write_floor_comparisons(std::ostream& md, const Summary& s) {
  struct Pair {
    const char *what, *system, *figure, *floor_system;
  };
  md << "| figure | procpool | floor of the same work | procpool ÷ floor |\n|---|--:|--:|--:|\n";
  for (Pair p : {Pair{"echo of std::vector<char>", "procpool", "payload_rtt", "floor-copy"},
                 Pair{"a new SharedBytes copy from the worker", "procpool-shared", "payload_new_rtt", "floor-memfd"}})
    for (auto [param, size] : {std::pair{"1048576", "1 MiB"}, std::pair{"67108864", "64 MiB"}}) {
      auto ours = s.median(p.system, p.figure, param), floor = s.median(p.floor_system, p.figure, param);
      if (!ours || !floor) continue;
      md << "| " << p.what << ", " << size << ", round trip | " << fmt(*ours) << " µs | " << fmt(*floor) << " µs ("
         << system_label(p.floor_system) << ") | " << x(*ours / *floor) << " |\n";
    }
}

void write_notes(std::ostream& md, const SuiteResults& results) {
  // One note per system and figure: the first round's (a later round may
  // say the same with other numbers).
  std::set<std::pair<std::string, std::string>> seen;
  for (const Note& n : results.notes)
    if (seen.insert({n.system, n.figure}).second)
      md << "- " << system_label(n.system) << ", " << n.figure << ": " << n.text << '\n';
  for (const auto& [system, reason] : results.skipped)
    md << "- " << system_label(system) << " skipped: " << reason << '\n';
  for (const std::string& failure : results.failures) md << "- **failed**: " << failure << '\n';
}

}  // namespace

int write_report(const SuiteResults& results, const ReportContext& c) {
  write_records(results, c.out_dir + "/records.tsv");
  Summary summary(results.records);
  std::vector<Target> goals = targets(summary);
  int missed = 0;

  std::ofstream md(c.out_dir + "/latest.md");
  md << "# procpool benchmark: latest run\n\n"
     << machine_line(c) << ".\n\n"
     << c.rounds << " interleaved round(s)" << (c.quick ? " of the --quick smoke test" : "") << ", "
     << fmt(results.seconds) << " s in all, made by `" << c.command << "`. "
     << "Each value is the median over rounds, with the spread (min – max) over rounds; "
     << "\"÷ procpool\" divides a system's median by procpool's. The per-round values are in "
     << "[records.tsv](records.tsv); what each figure measures is in the README's performance section.\n\n"
     << "## Targets\n\n| target | measured | met |\n|---|---|---|\n";
  for (const Target& t : goals) {
    // A target whose figures were not measured (--quick, a system skipped)
    // is neither met nor missed.
    bool measured = t.measured != kNotMeasured;
    md << "| " << t.what << " | " << t.measured << " | " << (t.met ? "yes" : measured ? "**no**" : "—") << " |\n";
    missed += t.met || !measured ? 0 : 1;
  }
  md << "\n## Beside the floor of the same work\n\n";
  write_floor_comparisons(md, summary);
  if (std::string start_methods = start_methods_markdown(summary); !start_methods.empty())
    md << "\n## Start methods\n\n" << start_methods;
  if (std::string sandbox = sandbox_markdown(summary); !sandbox.empty()) md << "\n## Sandbox profiles\n\n" << sandbox;
  md << "\n## Plots\n\n"
     << "![round-trip latency distribution](latency.png)\n![throughput](throughput.png)\n"
     << "![echo bandwidth by size](payload.png)\n![CPU scaling](scaling.png)\n\n"
     << "## Every figure\n\n";
  write_figures(md, summary);
  md << "\n## Notes\n\n";
  write_notes(md, results);
  return missed;
}

}  // namespace bench
