#include "agent/cni_api/cni_api.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/model/objects.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cniapi {
namespace {

http::Response StatusResponse(const absl::Status& s) {
  int code = 500;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: code = 400; break;
    case absl::StatusCode::kNotFound: code = 404; break;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable: code = 503; break;
    default: break;
  }
  return http::Response::Error(code, ToStd(s.message()));
}

absl::StatusOr<Json> Body(const http::Request& r) {
  ASSIGN_OR_RETURN(Json j, ParseJson(r.body));
  if (!j.is_object()) return absl::InvalidArgumentError("request body: want a JSON object");
  return j;
}

absl::StatusOr<ipam::AttachmentKey> KeyFrom(const Json& j) {
  ipam::AttachmentKey key;
  ASSIGN_OR_RETURN(key.container_id, GetString(j, "containerID", ""));
  ASSIGN_OR_RETURN(key.ifname, GetString(j, "ifname", ""));
  if (key.container_id.empty() || key.ifname.empty()) {
    return absl::InvalidArgumentError("containerID and ifname must not be empty");
  }
  return key;
}

}  // namespace

bool LinkExists(const std::string& name) { return if_nametoindex(name.c_str()) != 0; }

bool PathExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::StatusOr<int> LinkMtu(const std::string& name) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  int rc = ioctl(fd, SIOCGIFMTU, &req);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoToStatus(err, StrCat("MTU of ", name));
  return req.ifr_mtu;
}

absl::Status EnableIpForwarding() {
  std::ofstream out("/proc/sys/net/ipv4/ip_forward");
  out << "1\n";
  out.flush();
  if (!out) return absl::PermissionDeniedError("cannot write /proc/sys/net/ipv4/ip_forward");
  return absl::OkStatus();
}

CniApi::CniApi(CniApiOptions options) : options_(std::move(options)) {
  if (!options_.link_exists) options_.link_exists = LinkExists;
  if (!options_.netns_exists) options_.netns_exists = PathExists;
}

CniApi::~CniApi() { Stop(); }

void CniApi::Register(http::Router& router) {
  router.Handle("POST", "/v1/cni/add", [this](const http::Request& r) { return Add(r); });
  router.Handle("POST", "/v1/cni/attached", [this](const http::Request& r) { return Attached(r); });
  router.Handle("POST", "/v1/cni/del", [this](const http::Request& r) { return Del(r); });
  router.HandlePrefix("GET", "/v1/cni/attachments/",
                      [this](const http::Request& r) { return Get(r); });
  router.Handle("GET", "/v1/cni/status", [this](const http::Request&) { return Status(); });
  router.Handle("POST", "/v1/cni/gc", [this](const http::Request& r) { return Gc(r); });
}

absl::Status CniApi::Start(store::Store* store, std::optional<net::Ipv4Prefix> pod_cidr) {
  store_ = store;
  // Handlers read options_ only once started_ is set below.
  if (pod_cidr) options_.pod_cidr = *pod_cidr;
  ipam_ = std::make_unique<ipam::PodIpam>(store, options_.node, options_.pod_cidr);
  if (absl::StatusOr<int> mtu = LinkMtu(options_.underlay_iface); mtu.ok()) {
    mtu_ = *mtu - kVxlanOverhead;
  } else {
    LOG_WARNING("pod MTU: underlay MTU unknown, using 1450", {"error", mtu.status().message()});
  }
  if (absl::Status s = EnableIpForwarding(); !s.ok()) {
    LOG_WARNING("pods will not be routed", {"error", s.message()});
  }
  // Start-up reconcile: an allocation whose host veth is gone (its netns died with it)
  // or whose netns path vanished will never see its DEL.
  ASSIGN_OR_RETURN(std::vector<ipam::Allocation> stale, ipam_->ReleaseIf([&](const ipam::Allocation& a) {
    if (!a.host_veth.empty() && !options_.link_exists(a.host_veth)) return false;
    if (!a.netns.empty() && !options_.netns_exists(a.netns)) return false;
    return true;
  }));
  for (const ipam::Allocation& a : stale) {
    RETURN_IF_ERROR(Deregister({a.container_id, a.ifname}));
    LOG_INFO("released a stale pod address", {"ip", a.ip.ToString()},
             {"container", a.container_id}, {"ifname", a.ifname});
  }
  started_.store(true);
  absl::StatusOr<int> replayed = ReplayDelQueue();
  if (!replayed.ok()) {
    LOG_WARNING("CNI DEL queue not replayed", {"error", replayed.status().message()});
  }
  LOG_INFO("pod IPAM ready", {"pod_cidr", options_.pod_cidr.ToString()}, {"mtu", mtu_},
           {"released_stale", stale.size()}, {"replayed_dels", replayed.value_or(0)});
  return absl::OkStatus();
}

void CniApi::Stop() { started_.store(false); }

std::string CniApi::PodKey(std::string_view container_id) const {
  return StrCat("/loom/pods/", options_.node, "/", container_id);
}

Json CniApi::DnsJson(std::string_view ns) const {
  const std::string& d = options_.cluster_domain;
  return Json{{"nameservers", Json::array({options_.dns_nameserver})},
              {"search", Json::array({StrCat(ns, ".svc.", d), StrCat("svc.", d), d})},
              {"options", Json::array({"ndots:5"})}};
}

absl::Status CniApi::Deregister(const ipam::AttachmentKey& key) {
  ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(PodKey(key.container_id)));
  if (!kv) return absl::OkStatus();
  // The pod key is per container; only its own interface's DEL removes it.
  absl::StatusOr<Json> j = ParseJson(kv->value);
  if (j.ok() && j->is_object() && j->value("ifname", key.ifname) != key.ifname) {
    return absl::OkStatus();
  }
  store::Txn txn;
  txn.compare.push_back(store::Compare::ModRevisionIs(kv->key, kv->mod_revision));
  txn.success.push_back(store::Op::Delete(kv->key));
  return store_->Commit(txn).status();
}

absl::StatusOr<std::optional<ipam::Allocation>> CniApi::Release(const ipam::AttachmentKey& key) {
  ASSIGN_OR_RETURN(std::optional<ipam::Allocation> released, ipam_->Release(key));
  RETURN_IF_ERROR(Deregister(key));
  if (released && !released->host_veth.empty() && options_.on_pod_released) {
    options_.on_pod_released(released->host_veth);
  }
  return released;
}

http::Response CniApi::Add(const http::Request& r) {
  if (!started_.load()) return http::Response::Error(503, "loomd is starting");
  absl::StatusOr<Json> body = Body(r);
  if (!body.ok()) return StatusResponse(body.status());
  absl::StatusOr<ipam::AttachmentKey> key = KeyFrom(*body);
  if (!key.ok()) return StatusResponse(key.status());
  std::string pod_ns = body->value("podNamespace", std::string());
  if (pod_ns.empty()) pod_ns = "default";
  Json out = {{"podCidr", options_.pod_cidr.ToString()},
              {"gateway", kGateway},
              {"mtu", mtu_},
              {"dns", DnsJson(pod_ns)}};
  if (body->value("allocate", true)) {
    ipam::Allocation request;
    request.container_id = key->container_id;
    request.ifname = key->ifname;
    request.netns = body->value("netns", std::string());
    request.host_veth = body->value("hostVeth", std::string());
    absl::StatusOr<ipam::Allocation> a = ipam_->Allocate(request);
    if (!a.ok()) return StatusResponse(a.status());
    out["ip"] = a->ip.ToString();
  }
  return http::Response::JsonBody(200, out);
}

http::Response CniApi::Attached(const http::Request& r) {
  if (!started_.load()) return http::Response::Error(503, "loomd is starting");
  absl::StatusOr<Json> body = Body(r);
  if (!body.ok()) return StatusResponse(body.status());
  absl::StatusOr<ipam::AttachmentKey> key = KeyFrom(*body);
  if (!key.ok()) return StatusResponse(key.status());
  model::Pod pod;
  pod.id = key->container_id;
  pod.ifname = key->ifname;
  pod.node = options_.node;
  pod.meta.ns = body->value("namespace", std::string());
  if (pod.meta.ns.empty()) pod.meta.ns = "default";
  pod.meta.name = body->value("name", std::string());
  if (pod.meta.name.empty()) pod.meta.name = key->container_id;
  try {
    if (body->contains("labels")) pod.meta.labels = body->at("labels").get<model::Labels>();
    if (body->contains("ips")) pod.ips = body->at("ips").get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    return http::Response::Error(400, StrCat("labels or ips: ", e.what()));
  }
  pod.ready = body->value("ready", true);
  absl::StatusOr<store::Revision> rev =
      store_->Put(PodKey(pod.id), model::PodToJson(pod).dump());
  if (!rev.ok()) return StatusResponse(rev.status());
  if (std::string veth = body->value("hostVeth", std::string());
      !veth.empty() && options_.on_pod_attached) {
    options_.on_pod_attached(veth);
  }
  return http::Response::JsonBody(200, Json{{"key", PodKey(pod.id)}});
}

http::Response CniApi::Del(const http::Request& r) {
  if (!started_.load()) return http::Response::Error(503, "loomd is starting");
  absl::StatusOr<Json> body = Body(r);
  if (!body.ok()) return StatusResponse(body.status());
  absl::StatusOr<ipam::AttachmentKey> key = KeyFrom(*body);
  if (!key.ok()) return StatusResponse(key.status());
  absl::StatusOr<std::optional<ipam::Allocation>> released = Release(*key);
  if (!released.ok()) return StatusResponse(released.status());
  Json out = {{"released", nullptr}};
  if (*released) out["released"] = ipam::AllocationToJson(**released);
  return http::Response::JsonBody(200, out);
}

http::Response CniApi::Get(const http::Request& r) {
  if (!started_.load()) return http::Response::Error(503, "loomd is starting");
  std::string_view tail = r.path_tail;
  size_t slash = tail.find('/');
  if (slash == std::string_view::npos) {
    return http::Response::Error(400, "want /v1/cni/attachments/<containerID>/<ifname>");
  }
  ipam::AttachmentKey key{std::string(tail.substr(0, slash)), std::string(tail.substr(slash + 1))};
  absl::StatusOr<std::optional<ipam::Allocation>> a = ipam_->Find(key);
  if (!a.ok()) return StatusResponse(a.status());
  if (!*a) {
    return http::Response::Error(
        404, StrCat("no attachment for container ", key.container_id, " ifname ", key.ifname));
  }
  Json out = ipam::AllocationToJson(**a);
  out["gateway"] = kGateway;
  out["mtu"] = mtu_;
  return http::Response::JsonBody(200, out);
}

http::Response CniApi::Status() {
  std::string reason;
  if (!started_.load()) return http::Response::Error(503, "not ready: pod IPAM not started");
  if (options_.ready && !options_.ready(&reason)) {
    return http::Response::Error(503, StrCat("not ready: ", reason));
  }
  return http::Response::JsonBody(200, Json{{"ready", true},
                                            {"podCidr", options_.pod_cidr.ToString()},
                                            {"mtu", mtu_}});
}

http::Response CniApi::Gc(const http::Request& r) {
  if (!started_.load()) return http::Response::Error(503, "loomd is starting");
  absl::StatusOr<Json> body = Body(r);
  if (!body.ok()) return StatusResponse(body.status());
  if (!body->contains("validAttachments") || !body->at("validAttachments").is_array()) {
    return http::Response::Error(400, "validAttachments: want an array");
  }
  std::set<std::pair<std::string, std::string>> valid;
  for (const Json& v : body->at("validAttachments")) {
    absl::StatusOr<ipam::AttachmentKey> key = KeyFrom(v);
    if (!key.ok()) return StatusResponse(Annotate(key.status(), "validAttachments"));
    valid.emplace(key->container_id, key->ifname);
  }
  absl::StatusOr<std::vector<ipam::Allocation>> released =
      ipam_->ReleaseIf([&](const ipam::Allocation& a) {
        return valid.contains({a.container_id, a.ifname});
      });
  if (!released.ok()) return StatusResponse(released.status());
  Json out = {{"released", Json::array()}};
  for (const ipam::Allocation& a : *released) {
    if (absl::Status s = Deregister({a.container_id, a.ifname}); !s.ok()) return StatusResponse(s);
    out["released"].push_back(ipam::AllocationToJson(a));
  }
  // Pods registered without a Loom address (delegated IPAM) and not listed.
  absl::StatusOr<store::RangeResult> pods = store_->Range(PodKey(""));
  if (!pods.ok()) return StatusResponse(pods.status());
  for (const store::KeyValue& kv : pods->kvs) {
    absl::StatusOr<Json> j = ParseJson(kv.value);
    if (!j.ok() || !j->is_object()) continue;
    std::string id = j->value("id", std::string()), ifname = j->value("ifname", std::string());
    if (valid.contains({id, ifname})) continue;
    if (absl::Status s = Deregister({id, ifname}); !s.ok()) return StatusResponse(s);
  }
  return http::Response::JsonBody(200, out);
}

absl::StatusOr<int> CniApi::ReplayDelQueue() {
  namespace fs = std::filesystem;
  if (options_.del_queue_dir.empty() || !PathExists(options_.del_queue_dir)) return 0;
  std::string lock_path = StrCat(options_.del_queue_dir, "/lock");
  int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return ErrnoToStatus(errno, lock_path);
  flock(lock, LOCK_EX);
  int replayed = 0;
  absl::Status status;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(options_.del_queue_dir, ec)) {
    if (e.path().extension() != ".json") continue;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<Json> j = ParseJson(text.str());
    absl::StatusOr<ipam::AttachmentKey> key =
        j.ok() ? KeyFrom(*j) : absl::StatusOr<ipam::AttachmentKey>(j.status());
    if (!key.ok()) {
      LOG_WARNING("dropping a bad CNI DEL queue entry", {"file", e.path().string()},
                  {"error", key.status().message()});
      fs::remove(e.path(), ec);
      continue;
    }
    absl::StatusOr<std::optional<ipam::Allocation>> released = Release(*key);
    if (!released.ok()) {
      status = released.status();
      break;
    }
    fs::remove(e.path(), ec);
    ++replayed;
  }
  flock(lock, LOCK_UN);
  close(lock);
  if (!status.ok()) return status;
  return replayed;
}

}  // namespace loom::cniapi
