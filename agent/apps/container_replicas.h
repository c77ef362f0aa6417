// The reconciler's runtime in loomd: replicas are containers of the ContainerManager
// (agent/containers), attached through the CNI conf dir like any container and so
// registered as pods by the `loom` plugin, in the App's namespace, not ready
// (LOOM_READY=false) until the reconciler says so on their pod record.
//
// An App's configFiles and secretFiles are written under
// <files_dir>/<container name>/ (directory 0700; each file with its mode, secrets 0600
// by default) and bind-mounted read-only at their paths; removed with the replica.
#pragma once

#include <string>

#include "agent/apps/reconciler.h"
#include "agent/containers/container_manager.h"
#include "agent/store/store.h"

namespace loom::agent {

class ContainerReplicas : public ReplicaRuntime {
 public:
  ContainerReplicas(containers::ContainerManager* manager, store::Store* store, std::string node,
                    std::string files_dir)
      : manager_(manager), store_(store), node_(std::move(node)), files_dir_(std::move(files_dir)) {}

  absl::StatusOr<std::vector<LocalReplica>> List() override;
  absl::StatusOr<LocalReplica> Start(const ReplicaStart& spec) override;
  absl::Status Remove(const std::string& id, absl::Duration grace) override;
  absl::StatusOr<int> Exec(const std::string& id, const std::vector<std::string>& command,
                           absl::Duration timeout) override;
  absl::Status SetReady(const std::string& id, bool ready) override;

 private:
  absl::Status WriteFiles(const std::string& dir, const model::App& app,
                          std::vector<std::string>* volumes) const;

  containers::ContainerManager* manager_;
  store::Store* store_;
  std::string node_;
  std::string files_dir_;
};

}  // namespace loom::agent
