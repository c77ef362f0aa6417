#include "tests/testing/dns_client.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/net/netns.h"
#include "dns/wire.h"

namespace loom::testing {

DnsClient::DnsClient(const std::string& netns, std::string server_ip, uint16_t port)
    : server_ip_(std::move(server_ip)), port_(port) {
  auto open = [this]() -> absl::Status {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return fd_ >= 0 ? absl::OkStatus() : absl::InternalError("socket");
  };
  if (netns.empty()) {
    (void)open();
  } else {
    auto ns = net::NetnsFd::OpenNamed(netns);
    if (!ns.ok() || !net::RunInNetns(*ns, open).ok()) return;
  }
  if (fd_ < 0) return;
  timeval tv{0, 50 * 1000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

DnsClient::~DnsClient() {
  if (fd_ >= 0) close(fd_);
}

std::vector<std::string> DnsClient::A(const std::string& name) {
  std::vector<std::string> out;
  auto qname = dns::Name::FromText(name);
  if (fd_ < 0 || !qname.ok()) return out;
  uint8_t q[512];
  dns::MessageWriter w(q, sizeof q);
  dns::Header h;
  h.id = ++id_;
  h.set_rd(true);
  w.SetHeader(h);
  w.AddQuestion(*qname, dns::type::kA, dns::kClassIn);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port_);
  inet_pton(AF_INET, server_ip_.c_str(), &sa.sin_addr);
  sendto(fd_, q, w.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  uint8_t buf[65536];
  while (true) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return out;
    auto m = dns::DecodeMessage(buf, static_cast<size_t>(n));
    if (!m.ok() || m->header.id != id_) continue;  // a late answer to an earlier query
    for (const dns::ResourceRecord& rr : m->answers) {
      if (rr.rtype != dns::type::kA || rr.rdata.size() != 4) continue;
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, rr.rdata.data(), text, sizeof text);
      out.push_back(text);
    }
    return out;
  }
}

}  // namespace loom::testing
