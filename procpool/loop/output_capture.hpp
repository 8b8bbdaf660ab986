// SPDX-License-Identifier: MIT
#pragma once
// The host's end of one worker's captured stdout and stderr
// (WorkerOutput::capture): two pipes read on the reactor, cut into lines,
// each line named with the worker's pid and the function that wrote it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <procpool/common/unique_fd.hpp>
#include <procpool/common/worker_output.hpp>

namespace procpool::detail {

// The pipes of one process to be forked: the worker's ends go into its
// WorkerConfig, the host's into an OutputCapture once the pid is known.
struct OutputPipes {
  UniqueFd out_read, out_write, err_read, err_write;
};
OutputPipes make_output_pipes();  // throws procpool::Error

class OutputCapture : public std::enable_shared_from_this<OutputCapture> {
 public:
  using Deliver = std::function<void(std::vector<OutputLine>&)>;
  // Takes the read ends; `deliver` gets each batch of whole lines, on the
  // thread that read them, with no lock of the pool held.
  OutputCapture(boost::asio::io_context& io, OutputPipes& pipes, pid_t pid, Deliver deliver);
  // Starts reading (not in the constructor: the handlers hold a shared_ptr).
  void start();
  // The process is gone: reads what is left in the pipes (no waiting),
  // ends a last unfinished line, and stops reading. Returns those lines,
  // for the caller to deliver once it holds no lock.
  std::vector<OutputLine> finish();
  // The last lines it wrote (kLastOutputLines at most), oldest first.
  std::vector<std::string> last_lines() const;

 private:
  struct Stream {
    OutputStream which;
    std::unique_ptr<boost::asio::posix::stream_descriptor> pipe;
    std::array<char, std::size_t{16} * 1024> buffer;
    std::string partial;   // the line being read
    std::string function;  // who writes it (the last marker)
  };
  // Waits for the pipe to be readable, then reads it in the handler (not
  // with async_read_some: bytes the reactor read would sit in a queued
  // handler, out of finish()'s reach).
  void watch(Stream& s);
  void on_readable(Stream& s);
  // Reads what the pipe holds now, up to `most` bytes (mutex_ held); false at its end.
  bool read_available(Stream& s, size_t most, std::vector<OutputLine>& out);
  // Cuts bytes into lines (mutex_ held).
  void feed(Stream& s, const char* data, size_t n, std::vector<OutputLine>& out);
  void end_line(Stream& s, std::vector<OutputLine>& out);
  // A whole line: a marker, or text (mutex_ held).
  void take_line(Stream& s, std::string line, std::vector<OutputLine>& out);

  pid_t pid_;
  Deliver deliver_;
  mutable std::mutex mutex_;  // the streams' text and last_; handlers may run on several threads
  Stream out_{OutputStream::out, nullptr, {}, {}, {}};
  Stream err_{OutputStream::err, nullptr, {}, {}, {}};
  std::deque<std::string> last_;
  bool finished_ = false;
};

}  // namespace procpool::detail
