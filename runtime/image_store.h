// A content-addressed image store: every image is unpacked once into
// <root>/images/<hex>/rootfs, keyed by a digest (the OCI manifest's, a docker save
// archive's config's, a plain tarball's bytes', or a rootfs directory's content hash),
// with a name -> digest index in <root>/index.json. Imports of the same image from
// several threads or processes are safe: each digest has a lock file, and the index is
// rewritten atomically under its own lock.
//
// Sources (auto-detected): a rootfs directory; an OCI image layout directory (oci-layout,
// index.json, blobs/); a tarball (.tar, .tar.gz, .tar.zst) that is either a plain rootfs
// or holds an OCI layout or a `docker save` archive (manifest.json). Layers apply in
// order with whiteouts; blob digests are verified.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loom::runtime {

// What an image's config says about running it (OCI image config "config").
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // NAME=value
  std::string working_dir;
  std::string user;
};

struct Image {
  std::string digest;               // sha256:<hex>
  std::vector<std::string> names;   // every name in the index pointing at it
  std::string rootfs;               // absolute path of the unpacked root filesystem
  ImageConfig config;
};

enum class ImageSourceKind { kAuto, kRootfsDir, kRootfsTar, kOciLayout, kDockerArchive };

struct ImportOptions {
  std::string name;     // required: "busybox", "busybox:1.36", "registry/x:tag"
  // In an OCI index with several manifests, the one annotated with this
  // org.opencontainers.image.ref.name; empty: the only one, else linux/amd64, else the first.
  std::string oci_ref;
  ImageSourceKind kind = ImageSourceKind::kAuto;
};

class ImageStore {
 public:
  // Creates <root> and its subfolders if needed.
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(std::string root);

  // Unpacks `source` (unless an image with its digest is already stored) and points
  // `options.name` at it.
  absl::StatusOr<Image> Import(const std::string& source, const ImportOptions& options);
  // By name or by digest ("sha256:..."). NotFound if unknown.
  absl::StatusOr<Image> Get(std::string_view name_or_digest) const;
  absl::StatusOr<std::vector<Image>> List() const;
  // A name drops that name (and the image once no name points at it); a digest drops the
  // image and all its names. Containers running on it keep their mounts: the caller checks
  // that none uses it.
  absl::Status Remove(std::string_view name_or_digest);

  const std::string& root() const { return root_; }

 private:
  explicit ImageStore(std::string root) : root_(std::move(root)) {}
  std::string ImageDir(std::string_view digest) const;
  // Runs `unpack(tmp_dir)` unless the digest is stored, then renames tmp_dir into place.
  absl::Status Store(const std::string& digest, const ImageConfig& config,
                     const std::function<absl::Status(const std::string& rootfs)>& unpack);
  absl::StatusOr<Image> ImportLayout(const std::string& dir, const ImportOptions& options);
  absl::StatusOr<Image> Finish(const std::string& digest, const std::string& name);
  std::string MakeTempDir() const;

  std::string root_;
};

// Image names: 1-255 characters of [A-Za-z0-9._:/@-], starting with a letter or digit.
absl::Status ValidateImageName(std::string_view name);

}  // namespace loom::runtime
