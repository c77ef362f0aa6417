// The plugin's side of loomd's CNI API (docs/cni.md): one HTTP request per call over
// the unix socket. loomd unreachable or answering 503 is Unavailable (CNI code 11, or
// 50 from STATUS); 404 is NotFound; other failures carry loomd's message.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cni/protocol/net_conf.h"
#include "cni/protocol/result.h"
#include "common/http/client.h"
#include "common/json.h"

namespace loom::cni {

struct AddRequest {
  std::string container_id;
  std::string ifname;
  std::string netns;
  std::string host_veth;
  std::string pod_namespace;
  bool allocate = true;  // false: IPAM is delegated; only mtu, gateway, dns wanted
};

struct AddReply {
  std::string ip;  // empty when allocate = false
  std::string gateway;
  int mtu = 1450;
  Dns dns;
};

struct AttachedRequest {
  std::string container_id;
  std::string ifname;
  std::string pod_namespace;
  std::string pod_name;
  std::map<std::string, std::string> labels;
  std::vector<std::string> ips;
  bool ready = true;
  std::string host_veth;  // loomd attaches its service load balancing here
};

struct AttachmentRecord {
  std::string ip;
  std::string host_veth;
  std::string netns;
};

class LoomdClient {
 public:
  explicit LoomdClient(std::string socket_path);

  absl::StatusOr<AddReply> Add(const AddRequest& request) const;
  absl::Status Attached(const AttachedRequest& request) const;
  absl::Status Del(const std::string& container_id, const std::string& ifname) const;
  // NotFound when loomd has no allocation for the pair.
  absl::StatusOr<AttachmentRecord> Get(const std::string& container_id,
                                       const std::string& ifname) const;
  absl::Status Status() const;
  // The host veths of the attachments loomd released.
  absl::StatusOr<std::vector<std::string>> Gc(const std::vector<Attachment>& valid) const;

 private:
  absl::StatusOr<Json> Call(std::string_view method, std::string_view target,
                            const Json* body) const;
  http::HttpClient http_;
};

}  // namespace loom::cni
