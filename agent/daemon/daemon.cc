#include "agent/daemon/daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <tuple>

#include "agent/containers/container_api.h"
#include "agent/daemon/instrumented_store.h"
#include "agent/daemon/underlay.h"
#include "overlay/nft_firewall.h"
#include "overlay/overlay_kernel_netlink.h"
#include "agent/services/object_api.h"
#include "common/net/ip.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/version.h"

namespace loom::agent {
namespace {

// mkdir -p with `mode`; records each directory it created, outermost first.
absl::Status MakeDirs(const std::string& path, mode_t mode, std::vector<std::string>* created) {
  std::filesystem::path p(path);
  std::vector<std::filesystem::path> missing;
  for (auto cur = p; !cur.empty() && cur != cur.root_path(); cur = cur.parent_path()) {
    struct stat st;
    if (stat(cur.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError(StrCat(cur.string(), ": not a directory"));
      }
      break;
    }
    if (errno != ENOENT) return ErrnoToStatus(errno, cur.string());
    missing.push_back(cur);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (mkdir(it->c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, StrCat("mkdir ", it->string()));
    }
    chmod(it->c_str(), mode);  // mkdir's mode is filtered by the umask
    created->push_back(it->string());
  }
  return absl::OkStatus();
}

int64_t OnlineCpus() { return sysconf(_SC_NPROCESSORS_ONLN); }
int64_t PhysicalMemory() {
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
}

cniapi::CniApiOptions CniApiOptionsFor(const LoomdConfig& c, const std::string& underlay_iface,
                                      const Daemon* daemon,
                                      const std::atomic<LbController*>* live_lb) {
  cniapi::CniApiOptions o;
  o.node = c.node_name;
  o.pod_cidr = *net::Ipv4Prefix::Create(net::Ipv4Address::FromHostOrder(c.pod_cidr.address),
                                        c.pod_cidr.prefix_len);
  o.underlay_iface = underlay_iface;
  o.dns_nameserver = c.dns_addr.host;
  o.cluster_domain = c.cluster_domain;
  o.del_queue_dir = c.cni_del_queue_dir;
  o.ready = [daemon](std::string* reason) { return daemon->Ready(reason); };
  o.on_pod_attached = [live_lb](const std::string& veth) {
    if (LbController* lb = live_lb->load(); lb != nullptr) lb->PodAttached(veth);
  };
  o.on_pod_released = [live_lb](const std::string& veth) {
    if (LbController* lb = live_lb->load(); lb != nullptr) lb->PodReleased(veth);
  };
  return o;
}

IngressControllerOptions IngressOptionsFor(const LoomdConfig& c, metrics::Registry* metrics) {
  IngressControllerOptions o;
  o.proxy.http_host = c.ingress_addr.host;
  o.proxy.http_port = c.ingress_addr.port;
  o.proxy.https_host = c.ingress_tls_addr.host;
  o.proxy.https_port = c.ingress_tls_addr.port;
  o.proxy.workers = c.ingress_workers;
  o.proxy.access_log = c.ingress_access_log;
  o.proxy.metrics = metrics;
  o.cert_dir = c.ingress_cert_dir;
  return o;
}

}  // namespace

Json AgentStatusToJson(const AgentStatus& s) {
  Json j = Json{{"node", s.node},
              {"version", s.version},
              {"store",
               {{"kind", s.store_kind}, {"healthy", s.store_healthy}, {"revision", s.revision}}},
              {"uptimeSeconds", s.uptime_seconds},
              {"ready", s.ready}};
  if (!s.store_error.empty()) j["store"]["error"] = s.store_error;
  if (!s.dns.is_null()) j["dns"] = s.dns;
  if (!s.lb.is_null()) j["lb"] = s.lb;
  if (!s.ingress.is_null()) j["ingress"] = s.ingress;
  if (!s.components.is_null()) j["components"] = s.components;
  if (!s.nodes.is_null()) j["nodes"] = s.nodes;
  return j;
}

Daemon::Daemon(LoomdConfig config) : config_(std::move(config)), start_time_(absl::Now()) {
  metrics_.AddGauge("loom_build_info", "Loom build information; always 1.", {"version"})
      .WithLabels({std::string(kVersion)})
      .Set(1);
  metrics_.AddGauge("process_start_time_seconds",
                    "Start time of the process since the Unix epoch in seconds.")
      .Get()
      .Set(absl::ToDoubleSeconds(start_time_ - absl::UnixEpoch()));
  ready_gauge_ = &metrics_.AddGauge("loom_ready", "1 when the store is open and the node "
                                                  "registered, else 0.")
                      .Get();
}

Daemon::~Daemon() { Stop(); }

bool Daemon::Ready(std::string* reason) const {
  if (open_store_.load() == nullptr) {
    *reason = "store not open";
    return false;
  }
  NodeRegistrar* registrar = live_registrar_.load();
  if (registrar == nullptr) {
    *reason = "node not registered";
    return false;
  }
  if (!registrar->healthy()) {
    *reason = StrCat("node lease: ", registrar->last_error());
    return false;
  }
  NodeDns* dns = live_dns_.load();
  if (dns == nullptr) {
    *reason = "dns not started";
    return false;
  }
  return dns->Ready(reason);
}

AgentStatus Daemon::LocalStatus() const {
  AgentStatus s;
  s.node = config_.node_name;
  s.version = std::string(kVersion);
  s.store_kind = config_.store_url == "embedded" ? "embedded" : "etcd";
  s.uptime_seconds = absl::ToInt64Seconds(absl::Now() - start_time_);
  if (store::Store* store = open_store_.load(); store != nullptr) {
    // A range read of our own key: cheap, and it returns the store revision.
    absl::StatusOr<store::RangeResult> r = store->Range(NodeKey(config_.node_name));
    s.store_healthy = r.ok();
    if (r.ok()) {
      s.revision = r->revision;
    } else {
      s.store_error = std::string(r.status().message());
    }
  } else {
    s.store_error = "not open";
  }
  std::string reason;
  s.ready = Ready(&reason);
  if (NodeDns* dns = live_dns_.load(); dns != nullptr) s.dns = dns->StatusJson();
  if (LbController* lb = live_lb_.load(); lb != nullptr) s.lb = lb->StatusJson();
  if (IngressController* ing = live_ingress_.load(); ing != nullptr) s.ingress = ing->StatusJson();
  return s;
}

AgentStatus Daemon::Status() const {
  AgentStatus s = LocalStatus();
  s.components = HealthOf(s);
  if (store::Store* store = open_store_.load(); store != nullptr) {
    absl::StatusOr<Json> nodes = ClusterHealth(store);
    if (nodes.ok()) s.nodes = *std::move(nodes);
  }
  return s;
}

Json Daemon::ComponentsHealth() const { return HealthOf(LocalStatus()); }

Json Daemon::HealthOf(const AgentStatus& s) const {
  Json c = Json::object();
  NodeRegistrar* registrar = live_registrar_.load();
  if (!s.store_healthy) {
    c["store"] = ComponentHealth("down", s.store_error);
  } else if (registrar != nullptr && !registrar->healthy()) {
    c["store"] = ComponentHealth("degraded", StrCat("lease: ", registrar->last_error()));
  } else {
    c["store"] = ComponentHealth("ok", s.store_kind);
  }
  if (!config_.overlay) {
    c["overlay"] = ComponentHealth("off");
  } else if (overlay_ == nullptr) {
    c["overlay"] = ComponentHealth("down", "not started");
  } else {
    c["overlay"] = ComponentHealth("ok", StrCat(overlay_->pod_cidr().ToString(), ", ", overlay_->peers(), " peers"));
  }
  if (s.dns.is_null()) {
    c["dns"] = ComponentHealth("down", "not started");
  } else {
    const Json& d = s.dns;
    Json fwd = d.value("forwarding", Json::object());
    std::string detail = StrCat(d.value("address", ""), ", ", d["zone"].value("services", 0), " services");
    if (!d.value("serving", false)) {
      c["dns"] = ComponentHealth("down", detail);
    } else if (fwd.value("loopDetected", false)) {
      c["dns"] = ComponentHealth("degraded", StrCat(detail, ", forwarding loop detected"));
    } else if (fwd.value("enabled", false) && fwd.value("healthy", Json::array()).empty()) {
      c["dns"] = ComponentHealth("degraded", StrCat(detail, ", no healthy upstream"));
    } else {
      c["dns"] = ComponentHealth("ok", detail);
    }
  }
  if (!config_.lb) {
    c["lb"] = ComponentHealth("off");
  } else if (s.lb.is_null()) {
    c["lb"] = ComponentHealth("down", "not started");
  } else {
    c["lb"] = ComponentHealth("ok", StrCat(s.lb.value("services", 0), " services, ", s.lb.value("backends", 0), " backends"));
  }
  if (!config_.ingress) {
    c["ingress"] = ComponentHealth("off");
  } else if (s.ingress.is_null()) {
    c["ingress"] = ComponentHealth("down", "not started");
  } else {
    std::string detail = StrCat(":", s.ingress.value("httpPort", 0), ", ", s.ingress.value("routes", 0), " routes");
    size_t problems = s.ingress.value("problems", Json::array()).size();
    c["ingress"] = problems == 0 ? ComponentHealth("ok", detail)
                                 : ComponentHealth("degraded", StrCat(detail, ", ", problems, " problems"));
  }
  if (containers::ContainerManager* m = live_containers_.load(); m != nullptr) {
    c["runtime"] = ComponentHealth("ok", StrCat(m->List(/*all=*/false).size(), " running"));
  } else {
    absl::MutexLock lock(&containers_error_mu_);
    c["runtime"] = ComponentHealth("down", containers_error_.empty() ? "not started" : containers_error_);
  }
  return c;
}

std::string Daemon::cgroup2_dir() const {
  LbController* lb = live_lb_.load();
  return lb == nullptr ? "" : lb->cgroup2_dir();
}

http::Response Daemon::HandleStatus() const {
  return http::Response::JsonBody(200, AgentStatusToJson(Status()));
}

http::Response Daemon::HandleReadyz() const {
  std::string reason;
  if (Ready(&reason)) return http::Response::Text(200, "ok\n");
  return http::Response::Text(503, StrCat("not ready: ", reason, "\n"));
}

http::Response Daemon::HandleMetrics() const {
  std::string reason;
  ready_gauge_->Set(Ready(&reason) ? 1 : 0);
  NodeDns* dns = live_dns_.load();
  if (dns != nullptr) dns->UpdateMetrics();
  return {200, std::string(metrics::kContentType),
          metrics_.Render() + (dns != nullptr ? dns->RenderLatency() : "")};
}

absl::Status Daemon::Start() {
  if (running_) return absl::FailedPreconditionError("loomd already started");
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Underlay underlay, ResolveUnderlay(config_.underlay_iface));
    underlay_ip_ = underlay.ip;
    underlay_iface_ = underlay.iface;

    // The metrics address first: binding it creates nothing on disk.
    http::Router metrics_router;
    metrics_router.Handle("GET", "/healthz",
                          [](const http::Request&) { return http::Response::Text(200, "ok\n"); });
    metrics_router.Handle("GET", "/readyz", [this](const http::Request&) { return HandleReadyz(); });
    metrics_router.Handle("GET", "/metrics",
                          [this](const http::Request&) { return HandleMetrics(); });
    metrics_server_ = std::make_unique<http::HttpServer>(
        [router = std::move(metrics_router)](const http::Request& r) { return router.Dispatch(r); });
    absl::StatusOr<uint16_t> port =
        metrics_server_->ListenTcp(config_.metrics_addr.host, config_.metrics_addr.port);
    if (!port.ok()) return Annotate(port.status(), "metrics address");

    if (absl::Status s = MakeDirs(config_.run_dir, 0755, &created_dirs_); !s.ok()) {
      return Annotate(s, "run dir");
    }
    http::Router api_router;
    api_router.Handle("GET", "/v1/status", [this](const http::Request&) { return HandleStatus(); });
    cni_api_ = std::make_unique<cniapi::CniApi>(CniApiOptionsFor(config_, underlay.iface, this, &live_lb_));
    cni_api_->Register(api_router);
    RegisterObjectRoutes(api_router,
                         {[this] { return live_services_.load(); },
                          [this]() -> std::shared_ptr<const ServiceState> {
                            ServiceController* c = live_controller_.load();
                            return c == nullptr ? nullptr : c->Current();
                          },
                          [this](const Json& manifest) {
                            return ApplyAppManifest(live_apps_.load(), manifest);
                          },
                          [this](const Json& m) { return ApplyIngress(live_ingresses_.load(), m); }});
    RegisterIngressRoutes(api_router, {[this] { return live_ingresses_.load(); },
                                       [this] { return live_ingress_.load(); }});
    RegisterAppRoutes(api_router, {[this] { return live_apps_.load(); },
                                   [this] { return live_events_.load(); },
                                   [this] { return open_store_.load(); }});
    containers::RegisterContainerRoutes(
        api_router, [this] { return live_containers_.load(); },
        [this] {
          absl::MutexLock lock(&containers_error_mu_);
          return containers_error_;
        });
    http::ServerOptions api_options;
    // Container calls may wait on CNI plugins that call back into this API.
    api_options.threads = 4;
    api_server_ = std::make_unique<http::HttpServer>(
        [router = std::move(api_router)](const http::Request& r) { return router.Dispatch(r); },
        api_options);
    if (absl::Status s = api_server_->ListenUnix(config_.api_socket); !s.ok()) {
      std::string_view msg = ToStd(s.message());
      if (msg.substr(0, config_.api_socket.size()) == config_.api_socket) {
        return absl::Status(s.code(), StrCat("api socket ", msg));
      }
      return absl::Status(s.code(), StrCat("api socket ", config_.api_socket, ": ", msg));
    }
    RETURN_IF_ERROR(metrics_server_->Start());
    RETURN_IF_ERROR(api_server_->Start());

    // The state dir holds the node lease file whatever the store; the embedded store
    // keeps its files there too.
    if (absl::Status s = MakeDirs(config_.state_dir, 0700, &created_dirs_); !s.ok()) {
      return Annotate(s, "state dir");
    }
    absl::StatusOr<std::unique_ptr<store::Store>> opened =
        store::OpenStore(config_.store_url, config_.state_dir);
    if (!opened.ok()) return Annotate(opened.status(), StrCat("store ", config_.store_url));
    store_ = std::make_unique<InstrumentedStore>(*std::move(opened), metrics_);
    open_store_.store(store_.get());

    NodeInfo node{config_.node_name, underlay.ip, "", "", OnlineCpus(), PhysicalMemory(),
                  std::string(kVersion)};
    if (config_.overlay) {
      RETURN_IF_ERROR(Annotate(StartOverlay(underlay, &node), "overlay"));
    }
    RegistrarOptions options;
    options.ttl = config_.node_lease_ttl;
    options.lease_file = StrCat(config_.state_dir, "/node-lease");
    options.store_name = config_.store_url;
    options.metrics = &metrics_;
    registrar_ = std::make_unique<NodeRegistrar>(store_.get(), node, options);
    RETURN_IF_ERROR(registrar_->Register());
    registrar_->Start();
    live_registrar_.store(registrar_.get());
    if (overlay_) RETURN_IF_ERROR(Annotate(overlay_->Start(), "overlay watch"));
    // With the overlay, pod addresses come from the leased subnet.
    RETURN_IF_ERROR(cni_api_->Start(
        store_.get(), overlay_ ? std::optional<net::Ipv4Prefix>(overlay_->pod_cidr())
                               : std::nullopt));
    RETURN_IF_ERROR(StartServicesAndDns());
    // Networking and DNS do not depend on the runtime: without it (no cgroups, say)
    // loomd serves on and the container API says why it cannot.
    if (absl::Status s = StartContainers(); !s.ok()) {
      LOG_ERROR("containers unavailable", {"error", s});
      absl::MutexLock lock(&containers_error_mu_);
      containers_error_ = std::string(s.message());
    }

    health_ = std::make_unique<NodeHealthPublisher>(
        store_.get(), config_.node_name, [this] { return ComponentsHealth(); },
        [this] { return registrar_->lease(); });
    health_->Start();

    LOG_INFO("loomd started", {"node", config_.node_name}, {"version", kVersion},
             {"store", config_.store_url}, {"underlay", StrCat(underlay.iface, "/", underlay.ip)},
             {"api", config_.api_socket}, {"metrics", config_.metrics_addr.ToString()},
             {"lease", registrar_->lease()});
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    Undo();
    return status;
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status Daemon::StartOverlay(const Underlay& underlay, NodeInfo* node) {
  OverlayControllerOptions o;
  o.node_name = config_.node_name;
  o.cluster_cidr =
      net::Ipv4Prefix::Create(net::Ipv4Address::FromHostOrder(config_.cluster_cidr.address),
                              config_.cluster_cidr.prefix_len)
          .value();
  o.node_cidr_size = config_.node_cidr_size;
  o.vni = config_.vxlan_vni;
  o.port = config_.vxlan_port;
  o.underlay_iface = underlay.iface;
  ASSIGN_OR_RETURN(o.underlay_ip, net::Ipv4Address::Parse(underlay.ip));
  o.direct_routing = config_.direct_routing;
  if (absl::StatusOr<net::Ipv4Address> dns = net::Ipv4Address::Parse(config_.dns_addr.host); dns.ok()) {
    o.dns_ip = *dns;
    o.dns_port = config_.dns_addr.port;
  }
  o.subnet_grace = config_.subnet_grace;
  o.metrics = &metrics_;
  ASSIGN_OR_RETURN(std::unique_ptr<overlay::OverlayKernel> kernel,
                   overlay::NewNetlinkOverlayKernel());
  overlay_ = std::make_unique<OverlayController>(store_.get(), std::move(kernel),
                                                 overlay::NewNftFirewall(), o);
  RETURN_IF_ERROR(overlay_->Setup());
  node->pod_cidr = overlay_->pod_cidr().ToString();
  node->vtep_mac = overlay_->vtep_mac().ToString();
  return absl::OkStatus();
}

absl::Status Daemon::StartServicesAndDns() {
  ServiceRegistryOptions ro;
  ro.cidr = {config_.service_cidr.address, config_.service_cidr.prefix_len};
  if (absl::StatusOr<net::Ipv4Address> dns_ip = net::Ipv4Address::Parse(config_.dns_addr.host);
      dns_ip.ok()) {
    ro.reserved.push_back(dns_ip->ToHostOrder());
  }
  service_registry_ = std::make_unique<ServiceRegistry>(store_.get(), ro);
  live_services_.store(service_registry_.get());
  app_registry_ = std::make_unique<AppRegistry>(store_.get());
  event_log_ = std::make_unique<EventLog>(store_.get());
  live_apps_.store(app_registry_.get());
  live_events_.store(event_log_.get());

  NodeDnsOptions dno;
  dno.ip = config_.dns_addr.host;
  dno.port = config_.dns_addr.port;
  dno.domain = config_.cluster_domain;
  dno.ttl = config_.dns_ttl_seconds;
  dno.workers = config_.dns_workers;
  dno.udp_coalesce = config_.dns_udp_coalesce;
  dno.max_udp_size = config_.dns_max_udp_size;
  if (config_.dns_forwarding && !config_.dns_upstream.empty()) {
    for (const HostPort& hp : config_.dns_upstream) dno.upstreams.push_back(hp.ToString());
  } else if (config_.dns_forwarding) {
    absl::StatusOr<std::vector<std::string>> servers = dns::ReadResolvConf(config_.resolv_conf);
    if (servers.ok()) {
      for (const std::string& ip : *servers) dno.upstreams.push_back(StrCat(ip, ":53"));
    } else {
      LOG_WARNING("dns forwarding disabled: no upstream in the host's resolv.conf",
                  {"error", servers.status().message()});
    }
  } else {
    LOG_INFO("dns forwarding disabled (--dns-upstream=none): other names are REFUSED");
  }
  dno.address_file = StrCat(config_.run_dir, "/dns-address");
  node_dns_ = std::make_unique<NodeDns>(dno, &metrics_);
  RETURN_IF_ERROR(Annotate(node_dns_->Start(), "dns"));
  live_dns_.store(node_dns_.get());

  service_controller_ = std::make_unique<ServiceController>(store_.get());
  NodeDns* dns = node_dns_.get();
  service_controller_->Subscribe(
      [dns](std::shared_ptr<const ServiceState> state) { dns->OnState(std::move(state)); });
  if (config_.lb) {
    LbControllerOptions lo;
    lo.bpffs_dir = config_.bpffs_dir;
    lo.cgroup2_dir = config_.cgroup2_dir;
    lo.run_dir = config_.run_dir;
    if (auto ip = net::Ipv4Address::Parse(underlay_ip_); ip.ok()) lo.node_ip = *ip;
    if (overlay_) {  // NodePort from outside: replies come back through the overlay
      lo.underlay_iface = underlay_iface_;
      lo.overlay_device = overlay_->device();
      lo.snat_ip = overlay_->pod_cidr().network().address();
    }
    lo.metrics = &metrics_;
    absl::StatusOr<std::unique_ptr<LbController>> lb_started = LbController::Start(lo);
    if (!lb_started.ok()) return Annotate(lb_started.status(), "lb");
    lb_ = *std::move(lb_started);
    live_lb_.store(lb_.get());
    LbController* lb = lb_.get();
    service_controller_->Subscribe(
        [lb](std::shared_ptr<const ServiceState> state) { lb->OnState(std::move(state)); });
  }
  ingress_registry_ = std::make_unique<IngressRegistry>(store_.get());
  live_ingresses_.store(ingress_registry_.get());
  if (config_.ingress) {
    ingress_ = std::make_unique<IngressController>(store_.get(), IngressOptionsFor(config_, &metrics_));
    RETURN_IF_ERROR(ingress_->Start());
    live_ingress_.store(ingress_.get());
    IngressController* ing = ingress_.get();
    service_controller_->Subscribe(
        [ing](std::shared_ptr<const ServiceState> state) { ing->OnState(std::move(state)); });
  }
  RETURN_IF_ERROR(service_controller_->Start());
  live_controller_.store(service_controller_.get());
  lost_nodes_ = std::make_unique<LostNodes>(store_.get(), config_.node_name);
  return Annotate(lost_nodes_->Start(), "lost nodes");
}

absl::Status Daemon::StartContainers() {
  containers::ContainerManagerOptions o;
  o.state_dir = StrCat(config_.state_dir, "/runtime");
  o.run_dir = StrCat(config_.run_dir, "/runtime");
  o.cni_conf_dir = config_.cni_conf_dir;
  o.cni_bin_dirs = {config_.cni_bin_dir};
  ASSIGN_OR_RETURN(std::tie(o.cgroup_root, o.cgroup_parent),
                   containers::SplitCgroupRoot(config_.cgroup_root));
  o.dns_nameserver = config_.dns_addr.host;
  o.cluster_domain = config_.cluster_domain;
  o.cgroup2_dir = cgroup2_dir();  // the socket load balancer's cgroup (--lb), else none
  ASSIGN_OR_RETURN(containers_, containers::ContainerManager::Open(o));
  live_containers_.store(containers_.get());

  // The App reconciler runs this node's replicas as containers.
  replicas_ = std::make_unique<ContainerReplicas>(containers_.get(), store_.get(), config_.node_name,
                                                  StrCat(config_.state_dir, "/apps"));
  AppControllerOptions ao;
  ao.reconciler.node = config_.node_name;
  app_controller_ = std::make_unique<AppController>(store_.get(), replicas_.get(), event_log_.get(), ao);
  return app_controller_->Start();
}

void Daemon::StopServicesAndDns() {
  if (health_) health_->Stop();
  live_apps_.store(nullptr);
  live_events_.store(nullptr);
  if (app_controller_) app_controller_->Stop();
  live_ingress_.store(nullptr);
  live_ingresses_.store(nullptr);
  live_controller_.store(nullptr);
  live_dns_.store(nullptr);
  live_services_.store(nullptr);
  if (lost_nodes_) lost_nodes_->Stop();
  // The controller first: it feeds DNS.
  if (service_controller_) service_controller_->Stop();
  if (node_dns_) node_dns_->Stop();
  // The maps, programs and attachments stay: traffic flows while loomd restarts.
  live_lb_.store(nullptr);
  if (lb_) lb_->Stop();
  if (ingress_) ingress_->Stop();
}

void Daemon::Undo() {
  live_containers_.store(nullptr);
  StopServicesAndDns();
  live_registrar_.store(nullptr);
  if (overlay_) overlay_->Stop();
  if (registrar_) registrar_->Stop();
  if (api_server_) api_server_->Stop();
  cni_api_.reset();
  if (metrics_server_) metrics_server_->Stop();
  open_store_.store(nullptr);
  ReleaseComponents();
  // Innermost first; rmdir only removes what is still empty.
  for (auto it = created_dirs_.rbegin(); it != created_dirs_.rend(); ++it) rmdir(it->c_str());
  created_dirs_.clear();
}

void Daemon::ReleaseComponents() {
  // Consumers of the store before the store, servers last. Containers keep running.
  app_controller_.reset();
  replicas_.reset();
  containers_.reset();
  event_log_.reset();
  app_registry_.reset();
  health_.reset();
  lost_nodes_.reset();
  service_controller_.reset();
  lb_.reset();
  ingress_.reset();
  ingress_registry_.reset();
  node_dns_.reset();
  service_registry_.reset();
  registrar_.reset();
  overlay_.reset();
  store_.reset();
  api_server_.reset();
  metrics_server_.reset();
}

void Daemon::Stop() {
  if (!running_) return;
  running_ = false;
  api_server_->Stop();
  live_containers_.store(nullptr);
  StopServicesAndDns();
  live_registrar_.store(nullptr);
  registrar_->Stop();
  // The overlay's kernel state stays: pods keep talking while loomd restarts.
  if (overlay_) overlay_->Stop();
  metrics_server_->Stop();
  cni_api_.reset();
  open_store_.store(nullptr);
  LOG_INFO("loomd stopped; node lease kept for a restart", {"node", config_.node_name},
           {"lease", registrar_->lease()},
           {"expires_in", absl::FormatDuration(config_.node_lease_ttl)});
  ReleaseComponents();
  created_dirs_.clear();
}

}  // namespace loom::agent
