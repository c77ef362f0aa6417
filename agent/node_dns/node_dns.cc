#include "agent/node_dns/node_dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>

#include "common/log.h"
#include "common/net/ip.h"
#include "common/net/netlink.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

// Whether `ip` is a local address of this network namespace: bind() says so.
absl::StatusOr<bool> IsLocalAddress(const std::string& ip) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(StrCat("\"", ip, "\" is not an IPv4 address"));
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  int r = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int err = errno;
  close(fd);
  if (r == 0) return true;
  if (err == EADDRNOTAVAIL) return false;
  return ErrnoToStatus(err, StrCat("bind ", ip));
}

std::string RcodeName(int rcode) {
  static const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                 "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                 "NXRRSET", "NOTAUTH", "NOTZONE"};
  if (rcode >= 0 && rcode < 11) return kNames[rcode];
  return StrCat("RCODE", rcode);
}

// Brings a counter up to an absolute value read from the DNS module's atomics.
void SyncCounter(metrics::Counter& counter, uint64_t value) {
  counter.Increment(static_cast<double>(value) - counter.Value());
}

std::string AddressKey(const std::string& ip) { return StrCat(ip, "/32 dev lo"); }

}  // namespace

NodeDns::NodeDns(NodeDnsOptions options, metrics::Registry* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

NodeDns::~NodeDns() { Stop(); }

absl::Status NodeDns::EnsureAddress() {
  if (!options_.manage_address) return absl::OkStatus();
  ASSIGN_OR_RETURN(bool local, IsLocalAddress(options_.ip));
  if (local) {
    // Still ours if a previous loomd added it and died before removing it.
    std::ifstream in(options_.address_file);
    std::string recorded;
    if (!options_.address_file.empty() && in && std::getline(in, recorded) &&
        recorded == AddressKey(options_.ip)) {
      address_added_ = true;
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(net::Ipv4Address addr, net::Ipv4Address::Parse(options_.ip));
  ASSIGN_OR_RETURN(net::Netlink nl, net::Netlink::Create());
  net::InterfaceAddress ia{net::Ipv4Prefix::Host(addr), std::nullopt, net::Scope::kUniverse};
  if (absl::Status s = nl.AddAddress("lo", ia); !s.ok()) {
    return Annotate(s, StrCat("make the DNS address ", options_.ip, " local (add it to lo)"));
  }
  address_added_ = true;
  if (!options_.address_file.empty()) {
    std::ofstream out(options_.address_file, std::ios::trunc);
    out << AddressKey(options_.ip) << "\n";
  }
  LOG_INFO("added the node-local DNS address", {"address", AddressKey(options_.ip)});
  return absl::OkStatus();
}

void NodeDns::ReleaseAddress() {
  if (!address_added_) return;
  address_added_ = false;
  absl::StatusOr<net::Ipv4Address> addr = net::Ipv4Address::Parse(options_.ip);
  absl::StatusOr<net::Netlink> nl = net::Netlink::Create();
  absl::Status s = nl.ok() && addr.ok()
                       ? nl->DeleteAddress("lo", {net::Ipv4Prefix::Host(*addr), std::nullopt,
                                                  net::Scope::kUniverse})
                       : (nl.ok() ? addr.status() : nl.status());
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
    LOG_WARNING("could not remove the node-local DNS address",
                {"address", AddressKey(options_.ip)}, {"error", s.message()});
    return;
  }
  if (!options_.address_file.empty()) unlink(options_.address_file.c_str());
  LOG_INFO("removed the node-local DNS address", {"address", AddressKey(options_.ip)});
}

absl::Status NodeDns::Start() {
  absl::Status st = [&]() -> absl::Status {
    RETURN_IF_ERROR(EnsureAddress());
    // An empty zone until the store's state arrives: forwarding works from the start.
    dns::ZoneOptions zo{options_.domain, options_.ttl};
    ASSIGN_OR_RETURN(std::shared_ptr<const dns::ClusterZone> empty,
                     dns::ClusterZone::Build(zo, {}));
    zones_.Set(std::move(empty));
    if (!options_.upstreams.empty()) {
      dns::ForwarderOptions fo;
      fo.upstreams = options_.upstreams;
      forwarder_ = std::make_unique<dns::Forwarder>(fo);
      RETURN_IF_ERROR(Annotate(forwarder_->Start(), "dns forwarder"));
    }
    dns::ServerOptions so;
    so.listen = StrCat(options_.ip, ":", options_.port);
    so.udp_workers = options_.workers;
    so.udp_coalesce = options_.udp_coalesce;
    so.max_udp_size = options_.max_udp_size;
    server_ = std::make_unique<dns::DnsServer>(so, &zones_, forwarder_.get());
    RETURN_IF_ERROR(server_->Start());
    serving_.store(true);
    return absl::OkStatus();
  }();
  if (!st.ok()) Stop();
  return st;
}

void NodeDns::Stop() {
  serving_.store(false);
  if (server_) server_->Stop();
  if (forwarder_) forwarder_->Stop();
  ReleaseAddress();
}

void NodeDns::OnState(std::shared_ptr<const ServiceState> state) {
  auto t0 = std::chrono::steady_clock::now();
  dns::ZoneOptions zo{options_.domain, options_.ttl};
  // Only the shards of what changed are rebuilt, from the zone of the previous
  // state; after a failed build (or a resync) everything is.
  absl::StatusOr<std::shared_ptr<const dns::ClusterZone>> zone =
      dns::ClusterZone::Update(state->full ? nullptr : last_zone_, zo, state->services,
                               state->changed);
  if (!zone.ok()) {
    last_zone_.reset();
    zone_errors_.fetch_add(1);
    LOG_ERROR("cannot build the cluster zone; serving the previous one",
              {"error", zone.status().message()}, {"revision", state->revision});
    std::lock_guard<std::mutex> lock(mu_);
    last_zone_error_ = std::string(zone.status().message());
    return;
  }
  size_t names = (*zone)->name_count();
  uint32_t serial = (*zone)->serial();
  int rebuilt = (*zone)->rebuilt_shards();
  last_zone_ = *zone;
  zones_.Set(*std::move(zone));
  zone_updates_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_generation_ = state->generation;
    zone_services_ = state->services.size();
    zone_names_ = names;
    zone_serial_ = serial;
    last_zone_error_.clear();
  }
  LOG_DEBUG("cluster zone updated", {"services", state->services.size()}, {"names", names},
            {"revision", state->revision}, {"rebuilt_shards", rebuilt},
            {"build_us", std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now() - t0)
                             .count()});
}

bool NodeDns::Ready(std::string* reason) const {
  if (!serving_.load()) {
    *reason = "dns not serving";
    return false;
  }
  if (zone_updates_.load() == 0) {
    *reason = "dns zone not built from the store yet";
    return false;
  }
  return true;
}

uint16_t NodeDns::port() const { return server_ ? server_->port() : 0; }

Json NodeDns::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  Json j = {{"address", StrCat(options_.ip, ":", port())},
            {"serving", serving_.load()},
            {"addressAdded", address_added_},
            {"zone",
             {{"domain", options_.domain},
              {"services", zone_services_},
              {"names", zone_names_},
              {"serial", zone_serial_},
              {"updates", zone_updates_.load()}}}};
  if (!last_zone_error_.empty()) j["zone"]["error"] = last_zone_error_;
  Json fwd = {{"enabled", forwarder_ != nullptr}, {"upstreams", options_.upstreams}};
  if (forwarder_) {
    fwd["healthy"] = forwarder_->HealthyUpstreams();
    fwd["loopDetected"] = forwarder_->loop_detected();
    fwd["cacheEntries"] = forwarder_->cache_size();
  }
  j["forwarding"] = std::move(fwd);
  return j;
}

void NodeDns::UpdateMetrics() {
  if (metrics_ == nullptr || !server_) return;
  const dns::ServerStats s = server_->stats();
  auto& requests = metrics_->AddCounter("loom_dns_requests_total",
                                        "DNS queries received, by transport.", {"proto"});
  SyncCounter(requests.WithLabels({"udp"}), s.queries_udp);
  SyncCounter(requests.WithLabels({"tcp"}), s.queries_tcp);
  auto& by_type = metrics_->AddCounter("loom_dns_queries_by_type_total",
                                       "Decoded DNS queries, by QTYPE.", {"type"});
  static const char* kTypeNames[] = {"A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "SOA", "NS",
                                     "ANY", "other"};
  static_assert(sizeof(kTypeNames) / sizeof(kTypeNames[0]) == dns::ServerStats::kQtypeSlots);
  for (size_t i = 0; i < dns::ServerStats::kQtypeSlots; ++i) {
    SyncCounter(by_type.WithLabels({kTypeNames[i]}), s.qtype[i]);
  }
  auto& responses =
      metrics_->AddCounter("loom_dns_responses_total", "DNS responses, by rcode.", {"rcode"});
  for (int i = 0; i < 16; ++i) {
    uint64_t v = s.rcode[i];
    if (v != 0 || i == 0 || i == 3) SyncCounter(responses.WithLabels({RcodeName(i)}), v);
  }
  auto counter = [&](std::string_view name, std::string_view help, uint64_t v) {
    SyncCounter(metrics_->AddCounter(name, help).Get(), v);
  };
  counter("loom_dns_dropped_total", "DNS packets dropped (malformed beyond a reply).",
          s.dropped);
  counter("loom_dns_forwarded_total", "DNS queries handed to the forwarder.", s.forwarded);
  counter("loom_dns_truncated_total", "DNS answers sent with TC set (too big for UDP).",
          s.truncated);
  counter("loom_dns_udp_coalesce_waits_total",
          "Waits of DNS UDP workers on their timer under load (--dns-udp-coalesce).",
          s.udp_waits);
  counter("loom_dns_zone_updates_total", "Cluster zones built from the store's state.",
          zone_updates_.load());
  counter("loom_dns_zone_errors_total", "Cluster zone builds that failed.", zone_errors_.load());
  if (forwarder_) {
    const dns::ForwarderStats& f = forwarder_->stats();
    counter("loom_dns_cache_hits_total", "Forwarded names answered from the cache.",
            f.cache_hits.load());
    counter("loom_dns_cache_misses_total", "Forwarded names not in the cache.",
            f.cache_misses.load());
    counter("loom_dns_stale_served_total", "Stale cached answers served while upstreams failed.",
            f.stale_served.load());
    counter("loom_dns_upstream_queries_total", "Queries sent upstream.", f.upstream_queries.load());
    counter("loom_dns_upstream_failures_total", "Upstream queries that failed.",
            f.upstream_failures.load());
    metrics_->AddGauge("loom_dns_upstreams_healthy", "Upstream servers now healthy.")
        .Get()
        .Set(static_cast<double>(forwarder_->HealthyUpstreams().size()));
    metrics_->AddGauge("loom_dns_cache_entries", "Entries in the forwarder's cache.")
        .Get()
        .Set(static_cast<double>(forwarder_->cache_size()));
    metrics_->AddGauge("loom_dns_loop_detected", "1 when a forwarding loop was detected.")
        .Get()
        .Set(forwarder_->loop_detected() ? 1 : 0);
  }
  std::lock_guard<std::mutex> lock(mu_);
  metrics_->AddGauge("loom_dns_zone_names", "Names in the current cluster zone.")
      .Get()
      .Set(static_cast<double>(zone_names_));
}

std::string NodeDns::RenderLatency() const {
  if (!server_) return "";
  const dns::ServerStats s = server_->stats();
  constexpr std::string_view kName = "loom_dns_request_duration_seconds";
  std::string out = StrCat("# HELP ", kName,
                           " Time from receiving a DNS query to answering it.\n# TYPE ", kName,
                           " histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < dns::ServerStats::kLatencyBuckets; ++i) {
    cumulative += s.latency[i];
    std::string le = i + 1 < dns::ServerStats::kLatencyBuckets
                         ? metrics::FormatValue(
                               static_cast<double>(dns::ServerStats::kLatencyBoundsUs[i]) / 1e6)
                         : "+Inf";
    out += StrCat(kName, "_bucket{le=\"", le, "\"} ", cumulative, "\n");
  }
  out += StrCat(kName, "_sum ",
                metrics::FormatValue(static_cast<double>(s.latency_sum_ns) / 1e9), "\n");
  out += StrCat(kName, "_count ", cumulative, "\n");
  return out;
}

}  // namespace loom::agent
