// SPDX-License-Identifier: MIT
#include "start_methods_report.hpp"

#include <optional>
#include <sstream>
#include <vector>

#include "../bench_util.hpp"

namespace bench {
namespace {

using V = std::optional<double>;

const char* const kHeaps[] = {"10MiB", "1GiB"};

struct Column {
  const char *system, *title;
};
const Column kColumns[] = {
    {"procpool-fork", "procpool fork"},
    {"procpool-forkserver", "procpool forkserver"},
    {"procpool-spawn", "procpool spawn"},
    {"python-fork", "Python fork"},
    {"python-forkserver", "Python forkserver"},
    {"python-spawn", "Python spawn"},
    {"python-loky", "loky"},
};

struct Row {
  const char *figure, *what;
};
const Row kRows[] = {
    {"sm_startup", "start-up: 2 workers, constructor → first result"},
    {"sm_startup_cold", "the same, the fork server started too"},
    {"sm_respawn", "respawn: max_tasks_per_child=1, no spare, result → next result"},
    {"sm_respawn_spare", "respawn with 1 spare, 6 calls back to back (mean)"},
    {"sm_respawn_spare_ready", "respawn with 1 spare, each call made once the spare is ready"},
    {"sm_crash_replace", "worker SIGKILLed, no spare: crashing submit → next result"},
    {"sm_rebuild", "worker killed: its call's failure → a call served (Python: a new executor)"},
};

std::string cell(V v) { return v ? fmt(*v) : "—"; }
std::string ratio(V a, V b) { return a && b && *b != 0 ? fmt(*a / *b) + "×" : "—"; }

void values_table(std::ostream& md, const Summary& s) {
  md << "| figure (ms) | host heap |";
  for (const Column& c : kColumns) md << ' ' << c.title << " |";
  md << "\n|---|---|";
  for (size_t i = 0; i < std::size(kColumns); ++i) md << "--:|";
  md << '\n';
  for (const Row& r : kRows)
    for (const char* heap : kHeaps) {
      bool any = false;
      for (const Column& c : kColumns) any = any || s.median(c.system, r.figure, heap);
      if (!any) continue;
      md << "| " << r.what << " | " << heap << " |";
      for (const Column& c : kColumns) md << ' ' << cell(s.median(c.system, r.figure, heap)) << " |";
      md << '\n';
    }
}

// Each start method against procpool's fork in the same host, and each of
// Python's against procpool's same method (loky, a fork and an exec of a
// new interpreter, against spawn).
void ratios_table(std::ostream& md, const Summary& s) {
  md << "| figure | host heap | procpool forkserver ÷ fork | procpool spawn ÷ fork | Python fork ÷ procpool fork "
        "| Python forkserver ÷ procpool forkserver | Python spawn ÷ procpool spawn | loky ÷ procpool spawn |\n"
        "|---|---|--:|--:|--:|--:|--:|--:|\n";
  for (const Row& r : kRows)
    for (const char* heap : kHeaps) {
      auto m = [&](const char* system) { return s.median(system, r.figure, heap); };
      V fork = m("procpool-fork"), server = m("procpool-forkserver"), spawn = m("procpool-spawn");
      if (!fork && !server && !spawn) continue;
      md << "| " << r.what << " | " << heap << " | " << ratio(server, fork) << " | " << ratio(spawn, fork) << " | "
         << ratio(m("python-fork"), fork) << " | " << ratio(m("python-forkserver"), server) << " | "
         << ratio(m("python-spawn"), spawn) << " | " << ratio(m("python-loky"), spawn) << " |\n";
    }
}

void hosts_table(std::ostream& md, const Summary& s) {
  md << "| measuring process | host heap | RSS (MiB) | fork() returns (ms) | fork, _exit, waitpid (ms) |\n"
        "|---|---|--:|--:|--:|\n";
  for (auto [system, title] : {std::pair{"procpool-host", "procpool_bench"}, std::pair{"python-bare-fork", "Python"}})
    for (const char* heap : kHeaps) {
      V rss = s.median(system, "sm_host_rss", heap);
      if (!rss) continue;
      md << "| " << title << " | " << heap << " | " << cell(rss) << " | "
         << cell(s.median(system, "sm_fork_return", heap)) << " | " << cell(s.median(system, "sm_fork_wait", heap))
         << " |\n";
    }
}

}  // namespace

std::string start_methods_markdown(const Summary& s) {
  bool measured = false;
  for (const Column& c : kColumns) measured = measured || s.median(c.system, "sm_startup", "10MiB");
  if (!measured) return "";
  std::ostringstream md;
  md << "Medians over rounds (each round's value is the median of its samples), in ms; the host holds the "
        "given extra heap, every page touched, allocated after procpool::init (the zygote holds none of it). "
        "\"—\": not measured (Python refuses max_tasks_per_child with fork, loky has no such option: see the "
        "notes; procpool's zygote is always running, so it has no cold start).\n\n";
  values_table(md, s);
  md << "\nRatios, each taken within this run:\n\n";
  ratios_table(md, s);
  md << "\nThe measuring processes themselves (what the fork start method copies):\n\n";
  hosts_table(md, s);
  return md.str();
}

std::string sandbox_markdown(const Summary& s) {
  if (!s.median("procpool-forkserver", "sandbox_startup", "none")) return "";
  std::ostringstream md;
  md << "Medians over rounds (each round's value is the median of its batches or samples), every profile "
        "measured interleaved with a pool without one, on forkserver workers; the ratios are taken within "
        "this run.\n\n"
        "| figure (forkserver workers) | no sandbox | compute_only() | ÷ none | read_only_files({\"/usr/share\"}) "
        "| ÷ none | Namespaces{.pid} | ÷ none |\n|---|--:|--:|--:|--:|--:|--:|--:|\n";
  for (auto [figure, what] : {std::pair{"sandbox_rtt", "blocking no-op round trip, worker hot (µs)"},
                              std::pair{"sandbox_startup", "start-up of 2 workers to first result (ms)"}}) {
    V none = s.median("procpool-forkserver", figure, "none");
    V compute = s.median("procpool-forkserver", figure, "compute_only");
    V files = s.median("procpool-forkserver", figure, "read_only_files");
    V pid = s.median("procpool-forkserver", figure, "pid_namespace");
    md << "| " << what << " | " << cell(none) << " | " << cell(compute) << " | " << ratio(compute, none) << " | "
       << cell(files) << " | " << ratio(files, none) << " | " << cell(pid) << " | " << ratio(pid, none) << " |\n";
  }
  md << "| entering the sandbox alone, in a forked child (µs) | — | "
     << cell(s.median("procpool-forkserver", "sandbox_enter", "compute_only")) << " | | "
     << cell(s.median("procpool-forkserver", "sandbox_enter", "read_only_files")) << " | | — | |\n";
  md << "| the same, its CPU time (µs) | — | "
     << cell(s.median("procpool-forkserver", "sandbox_enter_cpu", "compute_only")) << " | | "
     << cell(s.median("procpool-forkserver", "sandbox_enter_cpu", "read_only_files")) << " | | — | |\n";
  return md.str();
}

}  // namespace bench
