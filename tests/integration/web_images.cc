#include "tests/integration/web_images.h"

#include <filesystem>
#include <fstream>

#include "common/status.h"
#include "common/strings.h"
#include "tests/unit/runtime/busybox_image.h"

namespace loom::testing {

namespace fs = std::filesystem;

absl::Status ImportWebImages(const std::string& dir, Cluster& cluster) {
  for (std::string version : {"v1", "v2", "bad"}) {
    std::string rootfs = StrCat(dir, "/", version, "-rootfs");
    RETURN_IF_ERROR(runtime::testing::MakeBusyboxRootfs(rootfs));
    if (version != "bad") {
      fs::create_directories(rootfs + "/www/cgi-bin");
      std::ofstream(rootfs + "/www/index.html") << version << "\n";
      std::string id = rootfs + "/www/cgi-bin/id";
      std::ofstream(id) << "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nhostname\n";
      fs::permissions(id, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    }
    std::string oci = StrCat(dir, "/", version, "-oci");
    RETURN_IF_ERROR(runtime::testing::MakeOciLayout(rootfs, oci, StrCat("web:", version)));
    for (int i = 0; i < cluster.size(); ++i) {
      CommandResult r = cluster.Ctl(i, {"image", "import", oci, StrCat("web:", version)});
      if (r.exit_code != 0) {
        return absl::InternalError(StrCat(cluster.node(i).name, ": image import web:", version, ": ", r.err));
      }
    }
  }
  return absl::OkStatus();
}

std::string WebAppYaml(const std::string& image, int replicas) {
  return StrCat(R"(kind: App
metadata: {name: web, labels: {app: web}}
spec:
  replicas: )", replicas, R"(
  image: )", image, R"(
  command: [/bin/sh, -c, "trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"]
  ports: [{name: http, containerPort: 8080}]
  readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  drainSeconds: 2
)");
}

}  // namespace loom::testing
