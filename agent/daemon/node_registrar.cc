#include "agent/daemon/node_registrar.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {

std::string NodeKey(std::string_view node_name) { return StrCat(kNodesPrefix, node_name); }

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

Json NodeToJson(const NodeInfo& node, absl::Time heartbeat) {
  return Json{{"name", node.name},
              {"underlayIP", node.underlay_ip},
              {"vtepMAC", node.vtep_mac},
              {"podCIDR", node.pod_cidr},
              {"capacity", {{"cpus", node.cpus}, {"memoryBytes", node.memory_bytes}}},
              {"heartbeat", FormatRfc3339(heartbeat)},
              {"version", node.version}};
}

NodeRegistrar::NodeRegistrar(store::Store* store, NodeInfo node, RegistrarOptions options)
    : store_(store), node_(std::move(node)), options_(std::move(options)),
      key_(NodeKey(node_.name)) {
  if (options_.metrics != nullptr) {
    renewals_ = &options_.metrics
                     ->AddCounter("loom_node_lease_renewals_total",
                                  "Successful keep-alives of this node's lease.")
                     .Get();
    renewal_failures_ = &options_.metrics
                             ->AddCounter("loom_node_lease_renewal_failures_total",
                                          "Keep-alives of this node's lease that failed.")
                             .Get();
    registrations_ = &options_.metrics
                          ->AddCounter("loom_node_registrations_total",
                                       "Times this node's key was written on a lease.")
                          .Get();
  }
}

NodeRegistrar::~NodeRegistrar() { Stop(); }

absl::StatusOr<store::LeaseId> NodeRegistrar::ReadLeaseFile() const {
  if (options_.lease_file.empty()) return store::kNoLease;
  std::ifstream in(options_.lease_file);
  if (!in) return store::kNoLease;
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
  store::LeaseId id = 0;
  bool parsed = !fields.empty() && absl::SimpleAtoi(fields[0], &id) && id > 0;
  if (!parsed) {
    LOG_WARNING("ignoring malformed lease file", {"path", options_.lease_file});
    return store::kNoLease;
  }
  std::string owner = fields.size() == 3 ? StrCat(fields[1], " ", fields[2]) : "";
  if (owner != LeaseOwner()) {
    LOG_INFO("lease file is for another store or node; not reusing it",
             {"path", options_.lease_file}, {"was", owner}, {"now", LeaseOwner()});
    return store::kNoLease;
  }
  return id;
}

std::string NodeRegistrar::LeaseOwner() const {
  return StrCat(options_.store_name.empty() ? "-" : options_.store_name, " ", node_.name);
}

absl::Status NodeRegistrar::WriteLeaseFile(store::LeaseId lease) const {
  if (options_.lease_file.empty()) return absl::OkStatus();
  // Write a temporary file, fsync, rename: a crash leaves the old id or the new one.
  std::string tmp = StrCat(options_.lease_file, ".tmp");
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("write ", tmp));
  std::string text = StrCat(lease, " ", LeaseOwner(), "\n");
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), options_.lease_file.c_str()) != 0) {
    if (ok) err = errno;
    unlink(tmp.c_str());
    return ErrnoToStatus(err, StrCat("write ", options_.lease_file));
  }
  return absl::OkStatus();
}

void NodeRegistrar::SetResult(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  healthy_ = status.ok();
  last_error_ = status.ok() ? "" : std::string(status.message());
}

absl::Status NodeRegistrar::Register() {
  absl::Status result = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(store::LeaseId lease, ReadLeaseFile());
    {
      absl::MutexLock lock(&mu_);
      if (lease_ != store::kNoLease) lease = lease_;
    }
    if (lease != store::kNoLease) {
      absl::Status alive = store_->KeepAlive(lease);
      if (absl::IsNotFound(alive)) {
        lease = store::kNoLease;
      } else if (!alive.ok()) {
        return Annotate(alive, "renew node lease");
      } else {
        LOG_INFO("reusing live node lease", {"node", node_.name}, {"lease", lease});
      }
    }
    std::string value = NodeToJson(node_, options_.now()).dump();
    // Twice at most: a reused lease can expire between the keep-alive and the put.
    for (int attempt = 0;; ++attempt) {
      if (lease == store::kNoLease) {
        ASSIGN_OR_RETURN(lease, store_->GrantLease(options_.ttl));
        RETURN_IF_ERROR(WriteLeaseFile(lease));
      }
      absl::StatusOr<store::Revision> put = store_->Put(key_, value, lease);
      if (put.ok()) break;
      if (!absl::IsNotFound(put.status()) || attempt > 0) {
        return Annotate(put.status(), StrCat("put ", key_));
      }
      lease = store::kNoLease;
    }
    {
      absl::MutexLock lock(&mu_);
      lease_ = lease;
    }
    if (registrations_ != nullptr) registrations_->Increment();
    LOG_INFO("node registered", {"node", node_.name}, {"key", key_}, {"lease", lease},
             {"ttl", absl::FormatDuration(options_.ttl)});
    return absl::OkStatus();
  }();
  SetResult(result);
  return result;
}

absl::Status NodeRegistrar::RenewOnce() {
  store::LeaseId lease = this->lease();
  if (lease == store::kNoLease) return Register();
  absl::Status alive = store_->KeepAlive(lease);
  if (absl::IsNotFound(alive)) {
    LOG_WARNING("node lease lost; registering again", {"node", node_.name}, {"lease", lease});
    {
      absl::MutexLock lock(&mu_);
      lease_ = store::kNoLease;
    }
    // The lease file still names the dead lease; Register finds it gone and replaces it.
    return Register();
  }
  if (!alive.ok()) {
    if (renewal_failures_ != nullptr) renewal_failures_->Increment();
    LOG_WARNING("node lease renewal failed", {"node", node_.name}, {"lease", lease},
                {"error", alive.message()});
    absl::Status status = Annotate(alive, "renew node lease");
    SetResult(status);
    return status;
  }
  if (renewals_ != nullptr) renewals_->Increment();
  SetResult(absl::OkStatus());
  return absl::OkStatus();
}

void NodeRegistrar::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (keeper_.joinable()) return;
    stopping_ = false;
  }
  keeper_ = std::thread([this] {
    const absl::Duration period = options_.ttl / 3;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
      }
      RenewOnce().IgnoreError();
    }
  });
}

void NodeRegistrar::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (keeper_.joinable()) keeper_.join();
}

bool NodeRegistrar::healthy() const {
  absl::MutexLock lock(&mu_);
  return healthy_;
}

std::string NodeRegistrar::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

store::LeaseId NodeRegistrar::lease() const {
  absl::MutexLock lock(&mu_);
  return lease_;
}

}  // namespace loom::agent
