#include "tests/testing/knot_server.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/status.h"
#include "common/strings.h"
#include "tests/testing/command.h"
#include "tests/testing/free_port.h"

namespace loom::testing {

absl::StatusOr<std::unique_ptr<KnotServer>> KnotServer::Start(KnotOptions options) {
  if (options.zones.empty()) return absl::InvalidArgumentError("knot: no zone");
  if (options.port == 0) {
    if (!options.netns.empty()) return absl::InvalidArgumentError("knot: give a port with netns");
    ASSIGN_OR_RETURN(options.port, PickFreePort(options.listen_ip));
  }
  std::unique_ptr<KnotServer> k(new KnotServer(std::move(options)));
  char tmpl[] = "/tmp/loom-knot-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  k->dir_ = tmpl;
  std::ofstream conf(k->dir_ + "/knot.conf");
  conf << "server:\n  listen: " << k->options_.listen_ip << "@" << k->options_.port
       << "\n  rundir: " << k->dir_ << "\n  user: root:root\n  udp-workers: "
       << k->options_.udp_workers << "\n  tcp-workers: " << k->options_.tcp_workers
       << "\n  background-workers: 1\n"
       << "database:\n  storage: " << k->dir_ << "\n"
       << "log:\n  - target: stderr\n    any: warning\n"
       << "template:\n  - id: default\n    storage: " << k->dir_ << "\n"
       << "zone:\n";
  for (const auto& [zone, text] : k->options_.zones) {
    std::string file = StrCat(zone, ".zone");
    conf << "  - domain: " << zone << "\n    file: " << file << "\n";
    std::ofstream z(StrCat(k->dir_, "/", file));
    z << "$ORIGIN " << zone << ".\n" << text;
  }
  conf.close();
  RETURN_IF_ERROR(k->Launch());
  return k;
}

absl::Status KnotServer::Launch() {
  std::vector<std::string> argv;
  if (!options_.netns.empty()) argv = {"ip", "netns", "exec", options_.netns};
  argv.insert(argv.end(), {"knotd", "-c", dir_ + "/knot.conf"});
  SubprocessOptions so;
  so.log_path = dir_ + "/knotd.log";
  ASSIGN_OR_RETURN(proc_, Subprocess::Start(argv, so));
  // Ready once it answers the SOA of its first zone.
  const std::string& zone = options_.zones.begin()->first;
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    std::vector<std::string> dig;
    if (!options_.netns.empty()) dig = {"ip", "netns", "exec", options_.netns};
    dig.insert(dig.end(), {"dig", "@" + options_.listen_ip, "-p", std::to_string(options_.port),
                           "+short", "+tries=1", "+time=1", zone, "SOA"});
    auto r = RunCommand(dig, absl::Seconds(3));
    if (r.ok() && r->exit_code == 0 && !r->out.empty()) return absl::OkStatus();
    if (!proc_->running()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  std::ifstream log(dir_ + "/knotd.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  proc_.reset();
  return absl::UnavailableError(StrCat("knotd did not start: ", text));
}

std::string KnotServer::Address() const {
  return StrCat(options_.listen_ip, ":", options_.port);
}

void KnotServer::Stop() {
  if (!proc_) return;
  (void)proc_->Signal(SIGTERM);
  if (!proc_->Wait(absl::Seconds(5)).ok()) (void)proc_->Signal(SIGKILL);
  proc_.reset();
}

absl::Status KnotServer::Restart() {
  Stop();
  return Launch();
}

KnotServer::~KnotServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

}  // namespace loom::testing
