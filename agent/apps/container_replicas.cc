#include "agent/apps/container_replicas.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

LocalReplica FromView(const containers::ContainerView& v) {
  LocalReplica r;
  r.id = v.id;
  r.labels = v.labels;
  r.running = v.status.state == runtime::ContainerState::kRunning;
  r.exit_code = v.status.exit_code;
  r.oom_killed = v.status.oom_killed;
  r.started = v.status.started_at == absl::InfinitePast() ? v.created : v.status.started_at;
  if (!v.ips.empty()) r.ip = v.ips[0].substr(0, v.ips[0].find('/'));
  return r;
}

absl::Status WriteFile(const std::string& path, const std::string& content, uint32_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("create ", path));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return ErrnoToStatus(e, StrCat("write ", path));
    }
    done += static_cast<size_t>(n);
  }
  // The mode asked for, exactly (not narrowed by the umask).
  if (::fchmod(fd, mode) != 0 || ::close(fd) != 0) return ErrnoToStatus(errno, StrCat("chmod ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<LocalReplica>> ContainerReplicas::List() {
  std::vector<LocalReplica> out;
  for (const containers::ContainerView& v : manager_->List(/*all=*/true)) {
    if (v.labels.contains(kAppLabel)) out.push_back(FromView(v));
  }
  return out;
}

absl::Status ContainerReplicas::WriteFiles(const std::string& dir, const model::App& app,
                                           std::vector<std::string>* volumes) const {
  if (app.config_files.empty() && app.secret_files.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("create ", dir, ": ", ec.message()));
  ::chmod(dir.c_str(), 0700);
  int n = 0;
  for (const auto* files : {&app.config_files, &app.secret_files}) {
    for (const model::AppFile& f : *files) {
      std::string host = StrCat(dir, "/", n++);
      RETURN_IF_ERROR(WriteFile(host, f.content, f.mode));
      volumes->push_back(StrCat(host, ":", f.path, ":ro"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LocalReplica> ContainerReplicas::Start(const ReplicaStart& spec) {
  const model::App& app = *spec.app;
  containers::RunRequest req;
  req.name = spec.name;
  req.image = app.image;
  req.command = app.command;
  for (const model::EnvVar& e : app.env) req.env.push_back(StrCat(e.name, "=", e.value));
  req.cpus = app.cpus;
  req.memory_bytes = app.memory_bytes;
  req.pids_limit = app.pids;
  req.workdir = app.working_dir;
  req.labels = spec.labels;
  req.pod_namespace = spec.ns;
  req.ready_on_attach = !app.readiness.has_value();
  std::string dir = StrCat(files_dir_, "/", spec.name);
  absl::Status files = WriteFiles(dir, app, &req.volumes);
  if (!files.ok()) {
    std::filesystem::remove_all(dir);
    return files;
  }
  absl::StatusOr<containers::ContainerView> v = manager_->Run(req);
  if (!v.ok()) {
    std::filesystem::remove_all(dir);
    return v.status();
  }
  return FromView(*v);
}

absl::Status ContainerReplicas::Remove(const std::string& id, absl::Duration grace) {
  absl::StatusOr<containers::ContainerView> v = manager_->Inspect(id);
  if (!v.ok()) return absl::IsNotFound(v.status()) ? absl::OkStatus() : v.status();
  if (v->status.state == runtime::ContainerState::kRunning) {
    RETURN_IF_ERROR(manager_->Stop(id, grace).status());
  }
  RETURN_IF_ERROR(manager_->Remove(id, /*force=*/true));
  std::error_code ec;
  std::filesystem::remove_all(StrCat(files_dir_, "/", v->name), ec);
  return absl::OkStatus();
}

absl::StatusOr<int> ContainerReplicas::Exec(const std::string& id,
                                            const std::vector<std::string>& command,
                                            absl::Duration timeout) {
  runtime::ExecSpec spec;
  spec.command = command;
  ASSIGN_OR_RETURN(runtime::ExecResult r, manager_->Exec(id, spec, timeout));
  return r.exit_code;
}

absl::Status ContainerReplicas::SetReady(const std::string& id, bool ready) {
  const std::string key = StrCat("/loom/pods/", node_, "/", id);
  for (int attempt = 0; attempt < 8; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(key));
    if (!kv) return absl::NotFoundError(StrCat("no pod record ", key));
    ASSIGN_OR_RETURN(Json j, ParseJson(kv->value));
    ASSIGN_OR_RETURN(model::Pod pod, model::PodFromJson(j));
    if (pod.ready == ready) return absl::OkStatus();
    pod.ready = ready;
    store::Txn txn;
    txn.compare.push_back(store::Compare::ModRevisionIs(key, kv->mod_revision));
    txn.success.push_back(store::Op::Put(key, model::PodToJson(pod).dump()));
    ASSIGN_OR_RETURN(store::TxnResult r, store_->Commit(txn));
    if (r.succeeded) return absl::OkStatus();
  }
  return absl::AbortedError(StrCat("pod record ", key, " kept changing"));
}

}  // namespace loom::agent
