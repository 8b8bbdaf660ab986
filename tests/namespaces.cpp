// SPDX-License-Identifier: MIT
// PoolOptions::namespaces: what a worker in namespaces of its own can no
// longer reach, and a pool refused where the kernel refuses them.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include <procpool/procpool.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

// 0 if a TCP connection to 127.0.0.1:port could be made, else the errno.
int connect_to_loopback(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int err = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
  ::close(s);
  return err;
}
PROCPOOL_REGISTER(connect_to_loopback);

std::string namespace_of(std::string kind) {
  char target[128] = {};
  (void)!::readlink(("/proc/self/ns/" + kind).c_str(), target, sizeof target - 1);
  return target;
}
PROCPOOL_REGISTER(namespace_of);

struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd); }
};

}  // namespace

TEST_CASE("Namespaces.ANetworkNamespaceLeavesAWorkerNoNetwork" * doctest::timeout(60)) {
  Listener host;
  {
    procpool::ProcessPool open({.workers = 1});
    CHECK(open.submit(connect_to_loopback, host.port).get() == 0);  // reachable without one
  }
  procpool::ProcessPool pool({.workers = 1, .namespaces = {.network = true}});
  CHECK(pool.submit(connect_to_loopback, host.port).get() == ENETUNREACH);
  // After a replacement too.
  CHECK_THROWS_AS(pool.submit(tasks::crash, std::string("segv")).get(), procpool::WorkerCrashed);
  CHECK(pool.submit(connect_to_loopback, host.port).get() == ENETUNREACH);
}

TEST_CASE("Namespaces.EachOneAskedForIsTheWorkersOwnAndNoOther" * doctest::timeout(60)) {
  const std::vector<std::string> kinds{"net", "ipc", "mnt", "uts", "pid"};
  std::vector<std::string> hosts;
  for (const auto& k : kinds) hosts.push_back(namespace_of(k));
  auto owned = [&](procpool::Namespaces asked) {
    procpool::ProcessPool pool({.workers = 1, .namespaces = asked});
    std::string own;
    for (size_t i = 0; i < kinds.size(); ++i)
      if (pool.submit(namespace_of, kinds[i]).get() != hosts[i]) own += kinds[i] + " ";
    return own;
  };
  CHECK(owned({}) == "");
  CHECK(owned({.network = true}) == "net ");
  CHECK(owned({.ipc = true, .uts = true}) == "ipc uts ");
  CHECK(owned({.network = true, .ipc = true, .mount = true, .uts = true}) == "net ipc mnt uts ");
  CHECK(owned({.pid = true}) == "mnt pid ");  // its /proc is mounted again, in a mount namespace of its own
  CHECK(owned({.network = true, .ipc = true, .mount = true, .uts = true, .pid = true}) == "net ipc mnt uts pid ");
}

TEST_CASE("Namespaces.WorkWithTheStrictestSandbox" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1,
                              .sandbox = procpool::Sandbox::compute_only(),
                              .namespaces = {.network = true, .ipc = true, .mount = true, .uts = true, .pid = true}});
  CHECK(pool.submit(tasks::add, 20, 22).get() == 42);
  CHECK_THROWS_AS(pool.submit(tasks::crash, std::string("segv")).get(), procpool::WorkerCrashed);
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
}

TEST_CASE("Namespaces.WhereTheKernelRefusesThemThePoolIsRefused" * doctest::timeout(60)) {
  // In a child whose unshare(2) fails with EPERM (a seccomp filter of its
  // own, as a container's runtime may install): a pool asking for a
  // namespace is refused when made, naming the reason; one that does not
  // ask runs.
  int failed = census::exit_code_in_child([&] {
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
      _exit(9);
    int code_out = 0;
    try {
      procpool::ProcessPool refused(
          {.workers = 1, .start_method = procpool::StartMethod::fork, .namespaces = {.network = true}});
      code_out |= 1;
    } catch (const procpool::Error& e) {
      std::string what = e.what();
      if (what.find("refuses them (unshare: Operation not permitted") == std::string::npos) code_out |= 2;
    }
    try {
      procpool::ProcessPool fine({.workers = 1, .start_method = procpool::StartMethod::fork});
      if (fine.submit(tasks::add, 1, 1).get() != 2) code_out |= 4;
    } catch (...) {
      code_out |= 8;
    }
    return code_out;
  });
  CHECK(failed == 0);
}
