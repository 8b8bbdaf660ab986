// SPDX-License-Identifier: MIT
// The report's plots: data files and one gnuplot script in the raw folder,
// PNGs next to latest.md. gnuplot (Debian's gnuplot-nox) draws them; the
// suite only arranges the numbers.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "figures.hpp"
#include "report.hpp"
#include "summary.hpp"

namespace bench {
namespace {

std::string value_or_nan(std::optional<double> v) {
  std::ostringstream s;
  if (v) s << *v;
  else s << "NaN";
  return s.str();
}

// Latency CDF points of one system's raw samples, denser in the tail.
bool write_latency_block(std::ostream& out, const std::string& raw_dir, const std::string& system) {
  std::ifstream in(raw_dir + "/" + system + ".rtt.tsv");
  std::string header;
  if (!std::getline(in, header)) return false;
  std::vector<double> us;
  for (double round, v; in >> round >> v;) us.push_back(v);
  if (us.empty()) return false;
  std::sort(us.begin(), us.end());
  out << "# " << system << '\n';
  for (int i = 0; i <= 400; ++i) {
    // Fractions from 0 to 0.9999, log-spaced towards 1 so the tail shows.
    double q = 1 - std::pow(10.0, -4.0 * i / 400.0);
    size_t k = std::min(us.size() - 1, static_cast<size_t>(q * static_cast<double>(us.size())));
    out << us[k] << '\t' << 100 * q << '\n';
  }
  out << "\n\n";
  return true;
}

std::string plot_latency(const ReportContext& c) {
  std::ofstream data(c.raw_dir + "/latency.dat");
  std::ostringstream gp;
  gp << "set output '" << c.out_dir << "/latency.png'\n"
     << "set title 'No-op round trip, one call at a time (cumulative distribution)'\n"
     << "set logscale x; set xlabel 'round trip (µs, log scale)'; set ylabel 'calls at or below (%)'\n"
     << "set key bottom right; set grid\nplot ";
  int index = 0;
  for (const std::string& system : system_order()) {
    if (!write_latency_block(data, c.raw_dir, system)) continue;
    gp << (index ? ", " : "") << "'" << c.raw_dir << "/latency.dat' index " << index
       << " using 1:2 with lines lw 2 title '" << system_label(system) << "'";
    ++index;
  }
  return index ? gp.str() + "\n" : "";
}

std::string plot_throughput(const ReportContext& c, const Summary& s) {
  const std::vector<std::string> systems = {"procpool", "python-ppe", "python-loky", "thread-pool"};
  struct Row {
    const char *label, *figure, *param;
  };
  const Row rows[] = {{"100k submitted", "throughput", "100000"},
                      {"1M submitted", "throughput", "1000000"},
                      {"100k gather", "throughput_gather", "100000"},
                      {"1M map(chunksize=256)", "throughput_map", "1000000"}};
  std::ofstream data(c.raw_dir + "/throughput.dat");
  data << "figure";
  for (const std::string& system : systems) data << '\t' << '"' << system_label(system) << '"';
  data << '\n';
  bool any = false;
  for (const Row& row : rows) {
    data << '"' << row.label << '"';
    for (const std::string& system : systems) {
      std::optional<double> v = s.median(system, row.figure, row.param);
      any |= v.has_value();
      data << '\t' << value_or_nan(v);
    }
    data << '\n';
  }
  if (!any) return "";  // (--quick measures other counts)
  std::ostringstream gp;
  gp << "set output '" << c.out_dir << "/throughput.png'\n"
     << "set title 'No-op throughput (tasks/s, log scale; missing bar = not offered or not run)'\n"
     << "set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1\n"
     << "set logscale y; set yrange [1000:*]; set ylabel 'tasks/s'; set key top right; set grid y\n"
     << "plot for [col=2:" << systems.size() + 1 << "] '" << c.raw_dir
     << "/throughput.dat' using col:xtic(1) title columnheader(col)\n";
  return gp.str();
}

std::string plot_payload(const ReportContext& c, const Summary& s) {
  const std::vector<std::string> systems = {"procpool", "python-ppe", "python-loky", "floor-copy", "memcpy"};
  std::ofstream data(c.raw_dir + "/payload.dat");
  for (const char* size : {"64", "4096", "65536", "1048576", "67108864"}) {
    data << size;
    for (const std::string& system : systems) data << '\t' << value_or_nan(s.median(system, "payload_bw", size));
    data << '\n';
  }
  std::ostringstream gp;
  gp << "set output '" << c.out_dir << "/payload.png'\n"
     << "set title 'Echo bandwidth: size / round trip (memcpy: size / one copy)'\n"
     << "set logscale xy; set xlabel 'payload (bytes)'; set ylabel 'MB/s'; set key top left; set grid\n"
     << "set xtics ('64 B' 64, '4 KiB' 4096, '64 KiB' 65536, '1 MiB' 1048576, '64 MiB' 67108864)\nplot ";
  for (size_t i = 0; i < systems.size(); ++i)
    gp << (i ? ", " : "") << "'" << c.raw_dir << "/payload.dat' using 1:" << i + 2 << " with linespoints lw 2 "
       << (systems[i] == "memcpy" || systems[i] == "floor-copy" ? "dt 2 " : "") << "title '" << system_label(systems[i])
       << "'";
  return gp.str() + "\n";
}

std::string plot_scaling(const ReportContext& c, const Summary& s) {
  const std::vector<std::string> systems = {"procpool", "python-ppe", "python-loky"};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  std::ofstream data(c.raw_dir + "/scaling.dat");
  for (const char* workers : {"1", "2", "4"}) {
    data << workers;
    for (const std::string& system : systems) {
      bool measured = s.median(system, "scaling", "1").has_value();
      std::optional<double> up = std::string(workers) == "1" && measured ? 1.0 : s.median(system, "speedup", workers);
      data << '\t' << value_or_nan(up);
    }
    data << '\t' << std::min<long>(std::atol(workers), cores) << '\n';
  }
  std::ostringstream gp;
  gp << "set output '" << c.out_dir << "/scaling.png'\n"
     << "set title 'CPU-bound batch: speed-up over 1 worker (" << cores << " cores)'\n"
     << "set xlabel 'workers'; set ylabel 'speed-up'; set xtics (1, 2, 4); set key top left; set grid\n"
     << "set yrange [0:*]\nplot ";
  for (size_t i = 0; i < systems.size(); ++i)
    gp << "'" << c.raw_dir << "/scaling.dat' using 1:" << i + 2 << " with linespoints lw 2 title '"
       << system_label(systems[i]) << "', ";
  gp << "'" << c.raw_dir << "/scaling.dat' using 1:" << systems.size() + 2
     << " with lines dt 2 lc 'gray' title 'ideal (one task per core)'\n";
  return gp.str();
}

}  // namespace

bool write_plots(const SuiteResults& results, const ReportContext& c) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "procpool_bench: gnuplot not found, no plots (tools/install-deps.sh --bench installs it)\n");
    return false;
  }
  Summary s(results.records);
  std::string script_path = c.raw_dir + "/plots.gp";
  {
    std::ofstream gp(script_path);
    gp << "set terminal pngcairo size 900,540 font 'sans,10'\nset encoding utf8\n"
       << plot_latency(c) << "reset\n"
       << plot_throughput(c, s) << "reset\n"
       << plot_payload(c, s) << "reset\n"
       << plot_scaling(c, s);
  }
  if (std::system(("gnuplot '" + script_path + "'").c_str()) != 0) {
    std::fprintf(stderr, "procpool_bench: gnuplot failed on %s\n", script_path.c_str());
    return false;
  }
  return true;
}

}  // namespace bench
