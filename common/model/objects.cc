#include "common/model/objects.h"

#include <arpa/inet.h>

#include <set>

#include "common/model/manifest.h"
#include "common/model/validation.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::model {
namespace {

bool IsIpv4(const std::string& text) {
  in_addr a;
  return inet_pton(AF_INET, text.c_str(), &a) == 1;
}

}  // namespace

std::string ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp: return "TCP";
    case Protocol::kUdp: return "UDP";
    case Protocol::kSctp: return "SCTP";
  }
  return "TCP";
}

absl::StatusOr<Protocol> ParseProtocol(std::string_view text, std::string_view field) {
  if (text == "TCP") return Protocol::kTcp;
  if (text == "UDP") return Protocol::kUdp;
  if (text == "SCTP") return Protocol::kSctp;
  return absl::InvalidArgumentError(
      StrCat(field, ": \"", text, "\" must be TCP, UDP or SCTP"));
}

std::string ServiceTypeName(ServiceType t) {
  switch (t) {
    case ServiceType::kClusterIP: return "ClusterIP";
    case ServiceType::kHeadless: return "Headless";
    case ServiceType::kExternalName: return "ExternalName";
    case ServiceType::kNodePort: return "NodePort";
  }
  return "ClusterIP";
}

absl::StatusOr<Service> ServiceFromManifest(const Json& manifest) {
  RETURN_IF_ERROR(CheckManifestKind(manifest, "Service"));
  Service svc;
  ASSIGN_OR_RETURN(svc.meta, ParseMeta(manifest));
  RETURN_IF_ERROR(ValidateDns1035Label(svc.meta.name, "metadata.name"));

  auto spec_it = manifest.find("spec");
  if (spec_it == manifest.end()) return absl::InvalidArgumentError("spec: required");
  const Json& spec = *spec_it;
  RETURN_IF_ERROR(OnlyKnownKeys(spec, "spec",
                                {"type", "selector", "ports", "externalName", "clusterIP",
                                 "sessionAffinity", "sessionAffinityConfig"}));
  ASSIGN_OR_RETURN(std::string type, GetStringOr(spec, "type", "spec", "ClusterIP"));
  ASSIGN_OR_RETURN(std::string cluster_ip, GetStringOr(spec, "clusterIP", "spec", ""));
  if (type == "ClusterIP") {
    svc.type = cluster_ip == "None" ? ServiceType::kHeadless : ServiceType::kClusterIP;
  } else if (type == "Headless") {
    svc.type = ServiceType::kHeadless;
  } else if (type == "ExternalName") {
    svc.type = ServiceType::kExternalName;
  } else if (type == "NodePort") {
    svc.type = ServiceType::kNodePort;
  } else {
    return absl::InvalidArgumentError(StrCat(
        "spec.type: \"", type, "\" must be ClusterIP, Headless, ExternalName or NodePort"));
  }
  if (!cluster_ip.empty() && cluster_ip != "None") {
    if (svc.type == ServiceType::kHeadless || svc.type == ServiceType::kExternalName ||
        !IsIpv4(cluster_ip)) {
      return absl::InvalidArgumentError(
          StrCat("spec.clusterIP: \"", cluster_ip, "\" must be an IPv4 address, or None"));
    }
    svc.cluster_ip = cluster_ip;
  }
  if (cluster_ip == "None" && svc.type != ServiceType::kHeadless) {
    return absl::InvalidArgumentError(
        StrCat("spec.clusterIP: None is only for headless services, not ", type));
  }
  ASSIGN_OR_RETURN(svc.selector, ParseStringMap(spec, "selector", "spec"));

  if (svc.type == ServiceType::kExternalName) {
    ASSIGN_OR_RETURN(svc.external_name, GetString(spec, "externalName", "spec"));
    std::string name = svc.external_name;
    if (!name.empty() && name.back() == '.') name.pop_back();
    RETURN_IF_ERROR(ValidateDns1123Subdomain(name, "spec.externalName"));
    if (!svc.selector.empty()) {
      return absl::InvalidArgumentError("spec.selector: an ExternalName service has no selector");
    }
  } else if (spec.contains("externalName")) {
    return absl::InvalidArgumentError(
        StrCat("spec.externalName: only for type ExternalName, not ", ServiceTypeName(svc.type)));
  }

  auto ports_it = spec.find("ports");
  if (ports_it != spec.end() && !ports_it->is_null()) {
    if (!ports_it->is_array()) return absl::InvalidArgumentError("spec.ports: must be a list");
    std::set<std::string> names;
    std::set<std::pair<uint16_t, Protocol>> numbers;
    for (size_t i = 0; i < ports_it->size(); ++i) {
      const Json& p = (*ports_it)[i];
      std::string path = StrCat("spec.ports[", i, "]");
      RETURN_IF_ERROR(OnlyKnownKeys(p, path, {"name", "port", "targetPort", "protocol", "nodePort"}));
      ServicePort sp;
      ASSIGN_OR_RETURN(sp.name, GetStringOr(p, "name", path, ""));
      if (!sp.name.empty()) RETURN_IF_ERROR(ValidatePortName(sp.name, FieldPath(path, "name")));
      if (ports_it->size() > 1 && sp.name.empty()) {
        return absl::InvalidArgumentError(
            StrCat(path, ".name: required when a service has more than one port"));
      }
      if (!sp.name.empty() && !names.insert(sp.name).second) {
        return absl::InvalidArgumentError(StrCat(path, ".name: \"", sp.name, "\" is used twice"));
      }
      ASSIGN_OR_RETURN(sp.port, ParsePortNumber(p, "port", path, true));
      ASSIGN_OR_RETURN(std::string proto, GetStringOr(p, "protocol", path, "TCP"));
      ASSIGN_OR_RETURN(sp.protocol, ParseProtocol(proto, FieldPath(path, "protocol")));
      if (!numbers.insert({sp.port, sp.protocol}).second) {
        return absl::InvalidArgumentError(
            StrCat(path, ".port: ", sp.port, "/", proto, " is used twice"));
      }
      auto tp = p.find("targetPort");
      if (tp != p.end() && tp->is_string()) {
        sp.target_port_name = tp->get<std::string>();
        RETURN_IF_ERROR(ValidatePortName(sp.target_port_name, FieldPath(path, "targetPort")));
      } else {
        ASSIGN_OR_RETURN(sp.target_port, ParsePortNumber(p, "targetPort", path, false));
        if (sp.target_port == 0) sp.target_port = sp.port;
      }
      ASSIGN_OR_RETURN(sp.node_port, ParsePortNumber(p, "nodePort", path, false));
      if (sp.node_port != 0 && svc.type != ServiceType::kNodePort) {
        return absl::InvalidArgumentError(
            StrCat(path, ".nodePort: only for type NodePort, not ", ServiceTypeName(svc.type)));
      }
      svc.ports.push_back(std::move(sp));
    }
  }
  if (svc.ports.empty() && svc.type != ServiceType::kExternalName &&
      svc.type != ServiceType::kHeadless) {
    return absl::InvalidArgumentError(
        StrCat("spec.ports: a ", ServiceTypeName(svc.type), " service needs at least one port"));
  }

  ASSIGN_OR_RETURN(std::string affinity, GetStringOr(spec, "sessionAffinity", "spec", "None"));
  if (affinity == "ClientIP") {
    svc.client_ip_affinity = true;
  } else if (affinity != "None") {
    return absl::InvalidArgumentError(
        StrCat("spec.sessionAffinity: \"", affinity, "\" must be None or ClientIP"));
  }
  auto sac = spec.find("sessionAffinityConfig");
  if (sac != spec.end() && !sac->is_null()) {
    RETURN_IF_ERROR(OnlyKnownKeys(*sac, "spec.sessionAffinityConfig", {"clientIP"}));
    auto cip = sac->find("clientIP");
    if (cip != sac->end()) {
      RETURN_IF_ERROR(OnlyKnownKeys(*cip, "spec.sessionAffinityConfig.clientIP", {"timeoutSeconds"}));
      ASSIGN_OR_RETURN(int64_t t, GetIntOr(*cip, "timeoutSeconds",
                                           "spec.sessionAffinityConfig.clientIP", 10800));
      if (t < 1 || t > 86400) {
        return absl::InvalidArgumentError(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be 1..86400");
      }
      svc.affinity_timeout_seconds = static_cast<uint32_t>(t);
    }
  }
  return svc;
}

Json ServiceToManifest(const Service& svc) {
  Json spec = {{"type", ServiceTypeName(svc.type)}};
  if (!svc.selector.empty()) spec["selector"] = svc.selector;
  if (!svc.cluster_ip.empty()) spec["clusterIP"] = svc.cluster_ip;
  if (svc.type == ServiceType::kHeadless) spec["clusterIP"] = "None";
  if (!svc.external_name.empty()) spec["externalName"] = svc.external_name;
  if (!svc.ports.empty()) {
    Json ports = Json::array();
    for (const ServicePort& p : svc.ports) {
      Json j = {{"port", p.port}, {"protocol", ProtocolName(p.protocol)}};
      if (!p.name.empty()) j["name"] = p.name;
      if (!p.target_port_name.empty()) {
        j["targetPort"] = p.target_port_name;
      } else {
        j["targetPort"] = p.target_port;
      }
      if (p.node_port != 0) j["nodePort"] = p.node_port;
      ports.push_back(std::move(j));
    }
    spec["ports"] = std::move(ports);
  }
  if (svc.client_ip_affinity) {
    spec["sessionAffinity"] = "ClientIP";
    spec["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", svc.affinity_timeout_seconds}}}};
  }
  return {{"apiVersion", "loom/v1"}, {"kind", "Service"}, {"metadata", MetaToJson(svc.meta)},
          {"spec", std::move(spec)}};
}

absl::StatusOr<Pod> PodFromJson(const Json& json) {
  RETURN_IF_ERROR(OnlyKnownKeys(json, "", {"apiVersion", "kind", "metadata", "id", "ifname", "node",
                                           "ips", "ports", "hostname", "ready", "nodeLost"}));
  Pod pod;
  ASSIGN_OR_RETURN(pod.meta, ParseMeta(json));
  if (pod.meta.name.empty()) return absl::InvalidArgumentError("metadata.name: required");
  ASSIGN_OR_RETURN(pod.id, GetString(json, "id", ""));
  ASSIGN_OR_RETURN(pod.ifname, GetStringOr(json, "ifname", "", "eth0"));
  ASSIGN_OR_RETURN(pod.node, GetString(json, "node", ""));
  ASSIGN_OR_RETURN(pod.hostname, GetStringOr(json, "hostname", "", ""));
  if (!pod.hostname.empty()) RETURN_IF_ERROR(ValidateDns1123Label(pod.hostname, "hostname"));
  ASSIGN_OR_RETURN(pod.ready, GetBoolOr(json, "ready", "", false));
  ASSIGN_OR_RETURN(pod.node_lost, GetBoolOr(json, "nodeLost", "", false));
  auto ips = json.find("ips");
  if (ips != json.end() && !ips->is_null()) {
    if (!ips->is_array()) return absl::InvalidArgumentError("ips: must be a list");
    for (size_t i = 0; i < ips->size(); ++i) {
      const Json& ip = (*ips)[i];
      if (!ip.is_string() || !IsIpv4(ip.get<std::string>())) {
        return absl::InvalidArgumentError(StrCat("ips[", i, "]: must be an IPv4 address"));
      }
      pod.ips.push_back(ip.get<std::string>());
    }
  }
  auto ports = json.find("ports");
  if (ports != json.end() && !ports->is_null()) {
    if (!ports->is_array()) return absl::InvalidArgumentError("ports: must be a list");
    for (size_t i = 0; i < ports->size(); ++i) {
      const Json& p = (*ports)[i];
      std::string path = StrCat("ports[", i, "]");
      RETURN_IF_ERROR(OnlyKnownKeys(p, path, {"name", "containerPort", "protocol"}));
      ContainerPort cp;
      ASSIGN_OR_RETURN(cp.name, GetStringOr(p, "name", path, ""));
      if (!cp.name.empty()) RETURN_IF_ERROR(ValidatePortName(cp.name, FieldPath(path, "name")));
      ASSIGN_OR_RETURN(cp.port, ParsePortNumber(p, "containerPort", path, true));
      ASSIGN_OR_RETURN(std::string proto, GetStringOr(p, "protocol", path, "TCP"));
      ASSIGN_OR_RETURN(cp.protocol, ParseProtocol(proto, FieldPath(path, "protocol")));
      pod.ports.push_back(std::move(cp));
    }
  }
  return pod;
}

Json PodToJson(const Pod& pod) {
  Json j = {{"apiVersion", "loom/v1"}, {"kind", "Pod"}, {"metadata", MetaToJson(pod.meta)},
            {"id", pod.id}, {"ifname", pod.ifname}, {"node", pod.node}, {"ips", pod.ips},
            {"ready", pod.ready}};
  if (!pod.hostname.empty()) j["hostname"] = pod.hostname;
  if (pod.node_lost) j["nodeLost"] = true;
  if (!pod.ports.empty()) {
    Json ports = Json::array();
    for (const ContainerPort& p : pod.ports) {
      Json pj = {{"containerPort", p.port}, {"protocol", ProtocolName(p.protocol)}};
      if (!p.name.empty()) pj["name"] = p.name;
      ports.push_back(std::move(pj));
    }
    j["ports"] = std::move(ports);
  }
  return j;
}

}  // namespace loom::model
