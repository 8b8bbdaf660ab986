// SPDX-License-Identifier: MIT
#include <procpool/loop/output_capture.hpp>

#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/loop/pool_core.hpp>

namespace procpool::detail {
namespace {

// A pipe whose read end is non-blocking (the reactor's) and write end
// blocking (a task that outprints the host waits for it, as on a terminal).
void make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error(std::string("cannot capture a worker's output: pipe2: ") + detail::errno_text(errno));
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  int flags = ::fcntl(fds[0], F_GETFL);
  if (flags < 0 || ::fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) != 0)
    throw Error(std::string("cannot capture a worker's output: fcntl: ") + detail::errno_text(errno));
}

bool hex8(const std::string& s, size_t at, uint32_t& value) {
  value = 0;
  for (size_t i = at; i < at + 8; ++i) {
    char c = s[i];
    uint32_t digit;
    if (c >= '0' && c <= '9') digit = static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f') digit = static_cast<uint32_t>(c - 'a' + 10);
    else return false;
    value = value << 4 | digit;
  }
  return true;
}

}  // namespace

OutputPipes make_output_pipes() {
  OutputPipes p;
  make_pipe(p.out_read, p.out_write);
  make_pipe(p.err_read, p.err_write);
  return p;
}

OutputCapture::OutputCapture(boost::asio::io_context& io, OutputPipes& pipes, pid_t pid, Deliver deliver)
    : pid_(pid), deliver_(std::move(deliver)) {
  out_.pipe = std::make_unique<boost::asio::posix::stream_descriptor>(io, pipes.out_read.get());
  pipes.out_read.release();
  err_.pipe = std::make_unique<boost::asio::posix::stream_descriptor>(io, pipes.err_read.get());
  pipes.err_read.release();
}

void OutputCapture::start() {
  watch(out_);
  watch(err_);
}

void OutputCapture::watch(Stream& s) {
  s.pipe->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                     [self = shared_from_this(), &s](const boost::system::error_code& ec) {
                       if (!ec) self->on_readable(s);
                     });
}

void OutputCapture::on_readable(Stream& s) {
  std::vector<OutputLine> lines;
  bool more;
  {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    // A bounded helping per wake-up: a flood on one pipe does not starve
    // the reactor's other work.
    more = read_available(s, 4 * s.buffer.size(), lines);
    if (more) watch(s);
  }
  if (!lines.empty()) deliver_(lines);
}

bool OutputCapture::read_available(Stream& s, size_t most, std::vector<OutputLine>& out) {
  for (size_t taken = 0; taken < most;) {
    ssize_t n = ::read(s.pipe->native_handle(), s.buffer.data(), s.buffer.size());
    if (n > 0) {
      feed(s, s.buffer.data(), static_cast<size_t>(n), out);
      taken += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);  // 0: every writer is gone
  }
  return true;
}

void OutputCapture::feed(Stream& s, const char* data, size_t n, std::vector<OutputLine>& out) {
  while (n > 0) {
    const char* newline = static_cast<const char*>(std::memchr(data, '\n', n));
    size_t take = newline ? static_cast<size_t>(newline - data) : n;
    // A line longer than kMaxOutputLine goes on in pieces.
    size_t room = kMaxOutputLine - s.partial.size();
    if (take >= room) {
      s.partial.append(data, room);
      end_line(s, out);
      data += room;
      n -= room;
      continue;
    }
    s.partial.append(data, take);
    data += take;
    n -= take;
    if (newline) {
      end_line(s, out);
      ++data;
      --n;
    }
  }
}

void OutputCapture::end_line(Stream& s, std::vector<OutputLine>& out) {
  std::string line;
  line.swap(s.partial);
  take_line(s, std::move(line), out);
}

void OutputCapture::take_line(Stream& s, std::string line, std::vector<OutputLine>& out) {
  // A marker ends the line: after text the task left unfinished, it is
  // that text's end too.
  size_t at = line.size() >= kOutputMarkerBytes - 1 ? line.size() - (kOutputMarkerBytes - 1) : std::string::npos;
  uint32_t id = 0;
  if (at != std::string::npos && line[at] == kOutputMarker && hex8(line, at + 1, id)) {
    if (at > 0) take_line(s, line.substr(0, at), out);
    const FunctionEntry* entry = FunctionRegistry::instance().at(id);
    s.function = entry ? entry->name : "#" + std::to_string(id);
    return;
  }
  if (last_.size() == kLastOutputLines) last_.pop_front();
  last_.push_back(line);
  out.push_back(OutputLine{pid_, s.function, s.which, std::move(line)});
}

std::vector<OutputLine> OutputCapture::finish() {
  std::vector<OutputLine> lines;
  std::lock_guard lock(mutex_);
  if (finished_) return lines;
  finished_ = true;
  for (Stream* s : {&out_, &err_}) {
    read_available(*s, SIZE_MAX / 2, lines);
    if (!s->partial.empty()) end_line(*s, lines);
    boost::system::error_code ignored;
    s->pipe->close(ignored);  // a wait still queued finds finished_ set
  }
  return lines;
}

std::vector<std::string> OutputCapture::last_lines() const {
  std::lock_guard lock(mutex_);
  return {last_.begin(), last_.end()};
}

void PoolCore::deliver_output(std::vector<OutputLine>& lines) noexcept {
  for (const OutputLine& line : lines) {
    if (options_.on_output) {
      try {
        options_.on_output(line);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "procpool: on_output threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "procpool: on_output threw a non-standard exception\n");
      }
      continue;
    }
    // One write per line: stdio's lock keeps it whole among the host's own.
    std::string text = "[worker " + std::to_string(line.pid) + (line.function.empty() ? "" : " " + line.function) +
                       "] " + line.text + "\n";
    std::fwrite(text.data(), 1, text.size(), line.stream == OutputStream::err ? stderr : stdout);
  }
  lines.clear();
}

}  // namespace procpool::detail
