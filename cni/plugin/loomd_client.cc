#include "cni/plugin/loomd_client.h"

#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {

LoomdClient::LoomdClient(std::string socket_path)
    : http_(http::HttpClient::ForUnixSocket(std::move(socket_path), absl::Seconds(10))) {}

absl::StatusOr<Json> LoomdClient::Call(std::string_view method, std::string_view target,
                                       const Json* body) const {
  absl::StatusOr<http::Response> r =
      http_.Send(method, target, body == nullptr ? "" : body->dump());
  if (!r.ok()) {
    return absl::UnavailableError(StrCat("loomd at ", http_.endpoint(), ": ", r.status().message()));
  }
  absl::StatusOr<Json> json = ParseJson(r->body);
  std::string message = r->body;
  if (json.ok() && json->is_object() && json->contains("error") && (*json)["error"].is_string()) {
    message = (*json)["error"].get<std::string>();
  }
  if (r->status == 200) {
    if (!json.ok()) return Annotate(json.status(), StrCat("loomd ", target));
    return *std::move(json);
  }
  std::string msg = StrCat("loomd ", method, " ", target, ": ", message);
  switch (r->status) {
    case 503: return absl::UnavailableError(msg);
    case 404: return absl::NotFoundError(msg);
    case 400: return absl::InvalidArgumentError(msg);
    default: return absl::InternalError(msg);
  }
}

absl::StatusOr<AddReply> LoomdClient::Add(const AddRequest& req) const {
  Json body = {{"containerID", req.container_id}, {"ifname", req.ifname},
               {"netns", req.netns},              {"hostVeth", req.host_veth},
               {"podNamespace", req.pod_namespace}, {"allocate", req.allocate}};
  ASSIGN_OR_RETURN(Json j, Call("POST", "/v1/cni/add", &body));
  AddReply reply;
  reply.ip = j.value("ip", std::string());
  reply.gateway = j.value("gateway", std::string());
  reply.mtu = j.value("mtu", 1450);
  if (j.contains("dns")) {
    ASSIGN_OR_RETURN(reply.dns, DecodeDns(j["dns"], "loomd add reply dns"));
  }
  if (req.allocate && reply.ip.empty()) {
    return absl::InternalError("loomd add reply carries no ip");
  }
  return reply;
}

absl::Status LoomdClient::Attached(const AttachedRequest& req) const {
  Json body = {{"containerID", req.container_id}, {"ifname", req.ifname},
               {"namespace", req.pod_namespace},  {"name", req.pod_name},
               {"labels", req.labels},            {"ips", req.ips},
               {"ready", req.ready},
               {"hostVeth", req.host_veth}};
  return Call("POST", "/v1/cni/attached", &body).status();
}

absl::Status LoomdClient::Del(const std::string& container_id, const std::string& ifname) const {
  Json body = {{"containerID", container_id}, {"ifname", ifname}};
  return Call("POST", "/v1/cni/del", &body).status();
}

absl::StatusOr<AttachmentRecord> LoomdClient::Get(const std::string& container_id,
                                                  const std::string& ifname) const {
  ASSIGN_OR_RETURN(Json j,
                   Call("GET", StrCat("/v1/cni/attachments/", container_id, "/", ifname), nullptr));
  return AttachmentRecord{j.value("ip", std::string()), j.value("hostVeth", std::string()),
                          j.value("netns", std::string())};
}

absl::Status LoomdClient::Status() const { return Call("GET", "/v1/cni/status", nullptr).status(); }

absl::StatusOr<std::vector<std::string>> LoomdClient::Gc(const std::vector<Attachment>& valid) const {
  Json list = Json::array();
  for (const Attachment& a : valid) list.push_back({{"containerID", a.container_id}, {"ifname", a.ifname}});
  Json body = {{"validAttachments", list}};
  ASSIGN_OR_RETURN(Json j, Call("POST", "/v1/cni/gc", &body));
  std::vector<std::string> veths;
  if (j.contains("released") && j["released"].is_array()) {
    for (const Json& a : j["released"]) {
      std::string v = a.value("hostVeth", std::string());
      if (!v.empty()) veths.push_back(v);
    }
  }
  return veths;
}

}  // namespace loom::cni
