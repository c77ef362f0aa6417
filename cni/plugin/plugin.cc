#include "cni/plugin/plugin.h"

#include <functional>
#include <vector>

#include "cni/plugin/del_queue.h"
#include "cni/plugin/ipam_exec.h"
#include "cni/plugin/loomd_client.h"
#include "cni/plugin/plumbing.h"
#include "common/log.h"
#include "common/net/netns.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

// Undo steps run in reverse unless dismissed.
class Rollback {
 public:
  ~Rollback() {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
  }
  void Add(std::function<void()> step) { steps_.push_back(std::move(step)); }
  void Dismiss() { steps_.clear(); }

 private:
  std::vector<std::function<void()>> steps_;
};

std::string DelQueueDir(const NetConf& conf) {
  if (conf.raw.contains("delQueueDir") && conf.raw["delQueueDir"].is_string()) {
    return conf.raw["delQueueDir"].get<std::string>();
  }
  return kDefaultDelQueueDir;
}

absl::StatusOr<net::NetnsFd> OpenNetns(const std::string& path) {
  absl::StatusOr<net::NetnsFd> ns = net::NetnsFd::OpenPath(path);
  if (!ns.ok()) {
    return CniError(kErrInvalidEnvironment,
                    StrCat("CNI_NETNS ", path, ": ", ns.status().message()));
  }
  return ns;
}

// The first IPv4 address of an IPAM result, without its prefix length.
absl::StatusOr<net::Ipv4Address> FirstIp(const Result& result, std::string_view who) {
  for (const IpConfig& ip : result.ips) {
    absl::StatusOr<net::Ipv4Prefix> p = net::Ipv4Prefix::ParseHost(ip.address);
    if (p.ok()) return p->address();
  }
  return CniError(kErrInvalidConfig, StrCat(who, " returned no IPv4 address"));
}

class Plugin {
 public:
  explicit Plugin(const EnvMap& env) : env_(env) {}

  absl::StatusOr<Result> Add(const Request& req) {
    const NetConf& conf = req.conf;
    const std::string& id = req.env.container_id;
    const std::string& ifname = req.env.ifname;
    ASSIGN_OR_RETURN(net::NetnsFd netns, OpenNetns(req.env.netns));
    if (absl::Status s = EnsureNoInterface(netns, ifname); !s.ok()) {
      if (absl::IsAlreadyExists(s)) return CniError(kErrInvalidEnvironment, ToStd(s.message()));
      return s;
    }
    LoomdClient loomd(conf.socket);
    Rollback rollback;
    const std::string host_veth = HostVethName(id, ifname);
    std::string pod_ns = req.args.pod_namespace.empty() ? "default" : req.args.pod_namespace;

    std::optional<Result> ipam_result;
    if (conf.ipam) {
      ASSIGN_OR_RETURN(std::string out, ExecPlugin(conf.ipam_type, "ADD", env_, conf.raw.dump()));
      rollback.Add([&] {
        ExecPlugin(conf.ipam_type, "DEL", env_, conf.raw.dump()).status().IgnoreError();
      });
      absl::StatusOr<Json> j = ParseJson(out);
      if (!j.ok()) return CniError(kErrDecode, StrCat(conf.ipam_type, " ADD result: ", j.status().message()));
      absl::StatusOr<Result> r = DecodeResult(*j, "ipam result");
      if (!r.ok()) return CniError(kErrDecode, ToStd(r.status().message()));
      ipam_result = *std::move(r);
    }
    AddRequest add{id, ifname, req.env.netns, host_veth, pod_ns, !conf.ipam.has_value()};
    ASSIGN_OR_RETURN(AddReply reply, loomd.Add(add));
    if (add.allocate) {
      rollback.Add([&] { loomd.Del(id, ifname).IgnoreError(); });
    }
    net::Ipv4Address ip;
    if (ipam_result) {
      ASSIGN_OR_RETURN(ip, FirstIp(*ipam_result, conf.ipam_type));
    } else {
      ASSIGN_OR_RETURN(ip, net::Ipv4Address::Parse(reply.ip));
    }
    PodLinkSpec spec{host_veth, ifname, ip, conf.mtu.value_or(reply.mtu)};
    ASSIGN_OR_RETURN(PodLink link, SetUpPodLink(netns, spec));
    rollback.Add([&] { DeleteHostVeth(host_veth).IgnoreError(); });

    AttachedRequest attached;
    attached.container_id = id;
    attached.ifname = ifname;
    attached.pod_namespace = pod_ns;
    attached.pod_name = req.args.pod_name.empty() ? id : req.args.pod_name;
    attached.labels = req.args.labels.empty() ? conf.labels : req.args.labels;
    attached.ips = {ip.ToString()};
    attached.ready = req.args.ready;
    attached.host_veth = host_veth;
    RETURN_IF_ERROR(loomd.Attached(attached));

    Result result;
    result.interfaces.push_back({host_veth, link.host_mac, spec.mtu, "", "", ""});
    result.interfaces.push_back({ifname, link.pod_mac, spec.mtu, req.env.netns, "", ""});
    result.ips.push_back({StrCat(ip.ToString(), "/32"), kPodGateway, 1});
    result.routes.push_back({"0.0.0.0/0", kPodGateway, {}, {}, {}, {}, {}});
    result.dns = reply.dns;
    if (ipam_result && !ipam_result->dns.empty()) result.dns = ipam_result->dns;
    rollback.Dismiss();
    return result;
  }

  absl::Status Del(const Request& req) {
    const NetConf& conf = req.conf;
    const std::string& id = req.env.container_id;
    const std::string& ifname = req.env.ifname;
    if (conf.ipam) {
      RETURN_IF_ERROR(ExecPlugin(conf.ipam_type, "DEL", env_, conf.raw.dump()).status());
    }
    RETURN_IF_ERROR(DeleteHostVeth(HostVethName(id, ifname)));
    absl::Status s = LoomdClient(conf.socket).Del(id, ifname);
    if (absl::IsUnavailable(s)) {
      // loomd replays the queue when it starts again.
      RETURN_IF_ERROR(QueueDel(DelQueueDir(conf), id, ifname));
      LOG_WARNING("loomd unreachable; DEL queued", {"container", id}, {"error", s.message()});
      return absl::OkStatus();
    }
    return s;
  }

  absl::Status Check(const Request& req) {
    const NetConf& conf = req.conf;
    const std::string& id = req.env.container_id;
    const std::string& ifname = req.env.ifname;
    if (conf.ipam) {
      RETURN_IF_ERROR(ExecPlugin(conf.ipam_type, "CHECK", env_, conf.raw.dump()).status());
    }
    net::Ipv4Address ip;
    if (conf.ipam) {
      if (!conf.prev_result) return CniError(kErrInvalidConfig, "CHECK needs prevResult");
      ASSIGN_OR_RETURN(ip, FirstIp(*conf.prev_result, "prevResult"));
    } else {
      absl::StatusOr<AttachmentRecord> rec = LoomdClient(conf.socket).Get(id, ifname);
      if (absl::IsNotFound(rec.status())) {
        return CniError(kErrUnknownContainer, ToStd(rec.status().message()));
      }
      RETURN_IF_ERROR(rec.status());
      ASSIGN_OR_RETURN(ip, net::Ipv4Address::Parse(rec->ip));
      if (conf.prev_result) {
        ASSIGN_OR_RETURN(net::Ipv4Address prev, FirstIp(*conf.prev_result, "prevResult"));
        if (prev != ip) {
          return CniError(kErrPluginBase, StrCat("CHECK: prevResult has ", prev.ToString(),
                                                 ", loomd allocated ", ip.ToString()));
        }
      }
    }
    ASSIGN_OR_RETURN(net::NetnsFd netns, OpenNetns(req.env.netns));
    absl::Status s = CheckPodLink(netns, {HostVethName(id, ifname), ifname, ip, 0});
    if (absl::IsFailedPrecondition(s)) return CniError(kErrPluginBase, ToStd(s.message()));
    return s;
  }

  absl::Status Status(const Request& req) {
    absl::Status s = LoomdClient(req.conf.socket).Status();
    if (!s.ok()) return CniError(kErrNotAvailable, ToStd(s.message()));
    if (req.conf.ipam) {
      RETURN_IF_ERROR(ExecPlugin(req.conf.ipam_type, "STATUS", env_, req.conf.raw.dump()).status());
    }
    return absl::OkStatus();
  }

  absl::Status Gc(const Request& req) {
    const NetConf& conf = req.conf;
    if (conf.ipam) {
      RETURN_IF_ERROR(ExecPlugin(conf.ipam_type, "GC", env_, conf.raw.dump()).status());
    }
    // Without the list nothing is known to be stale, so nothing is released.
    if (!conf.valid_attachments) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::vector<std::string> veths,
                     LoomdClient(conf.socket).Gc(*conf.valid_attachments));
    for (const std::string& v : veths) RETURN_IF_ERROR(DeleteHostVeth(v));
    return absl::OkStatus();
  }

 private:
  const EnvMap& env_;
};

}  // namespace

Handlers LoomHandlers(const EnvMap& env) {
  auto plugin = std::make_shared<Plugin>(env);
  Handlers h;
  h.add = [plugin](const Request& r) { return plugin->Add(r); };
  h.del = [plugin](const Request& r) { return plugin->Del(r); };
  h.check = [plugin](const Request& r) { return plugin->Check(r); };
  h.status = [plugin](const Request& r) { return plugin->Status(r); };
  h.gc = [plugin](const Request& r) { return plugin->Gc(r); };
  return h;
}

}  // namespace loom::cni
