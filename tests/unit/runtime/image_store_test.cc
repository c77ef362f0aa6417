// The image store against real busybox images: a rootfs folder, a tarball, an OCI layout
// (folder and tarball) with whiteouts, concurrent imports, list and remove.
#include "runtime/image_store.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/fs_util.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/runtime/busybox_image.h"

namespace loom::runtime {
namespace {

using ::loom::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(::access(testing::kHostBusybox, X_OK) == 0, "/bin/busybox (busybox-static)");
    static std::atomic<int> n{0};
    base_ = StrCat("/tmp/loom-img-test-", ::getpid(), "-", n++);
    ASSERT_OK(MakeDirs(base_));
    rootfs_ = StrCat(base_, "/busybox-rootfs");
    ASSERT_OK(testing::MakeBusyboxRootfs(rootfs_));
    ASSERT_OK_AND_ASSIGN(store_, ImageStore::Open(StrCat(base_, "/store")));
  }
  void TearDown() override {
    store_.reset();
    if (!base_.empty()) {
      EXPECT_OK(RemoveTree(base_));
    }
  }

  std::string base_;
  std::string rootfs_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageStoreTest, ImportsARootfsFolderOnce) {
  ASSERT_OK_AND_ASSIGN(Image a, store_->Import(rootfs_, {.name = "busybox"}));
  EXPECT_TRUE(Exists(StrCat(a.rootfs, "/bin/busybox")));
  EXPECT_TRUE(Exists(StrCat(a.rootfs, "/bin/sh")));
  EXPECT_THAT(a.names, ElementsAre("busybox"));
  // Same content, another name: same digest, one copy.
  ASSERT_OK_AND_ASSIGN(Image b, store_->Import(rootfs_, {.name = "busybox:again"}));
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_THAT(b.names, UnorderedElementsAre("busybox", "busybox:again"));
  ASSERT_OK_AND_ASSIGN(std::vector<Image> all, store_->List());
  EXPECT_EQ(all.size(), 1u);
}

TEST_F(ImageStoreTest, ImportsTarballsByTheirDigest) {
  std::string tar = StrCat(base_, "/busybox.tar");
  std::string tgz = StrCat(base_, "/busybox.tar.gz");
  ASSERT_OK(testing::PackTar(rootfs_, tar, false));
  ASSERT_OK(testing::PackTar(rootfs_, tgz, true));
  ASSERT_OK_AND_ASSIGN(Image plain, store_->Import(tar, {.name = "bb-tar"}));
  ASSERT_OK_AND_ASSIGN(Image gz, store_->Import(tgz, {.name = "bb-tgz"}));
  EXPECT_NE(plain.digest, gz.digest);  // digests of the tarball bytes
  for (const Image& i : {plain, gz}) {
    struct stat st;
    ASSERT_EQ(::stat(StrCat(i.rootfs, "/bin/busybox").c_str(), &st), 0);
    EXPECT_TRUE(st.st_mode & S_IXUSR);
    char target[64] = {};
    ASSERT_GT(::readlink(StrCat(i.rootfs, "/bin/sh").c_str(), target, sizeof(target) - 1), 0);
    EXPECT_STREQ(target, "busybox");
    EXPECT_EQ(::stat(StrCat(i.rootfs, "/tmp").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 01777);
  }
}

TEST_F(ImageStoreTest, AppliesOciLayersWithWhiteouts) {
  std::string layout = StrCat(base_, "/oci");
  ASSERT_OK(testing::MakeOciLayout(rootfs_, layout, "busybox:oci"));
  ASSERT_OK_AND_ASSIGN(Image image, store_->Import(layout, {.name = "bb-oci"}));
  EXPECT_TRUE(Exists(StrCat(image.rootfs, "/bin/busybox")));
  EXPECT_FALSE(Exists(StrCat(image.rootfs, "/etc/removed-by-layer2")));
  EXPECT_FALSE(Exists(StrCat(image.rootfs, "/etc/.wh.removed-by-layer2")));
  EXPECT_TRUE(Exists(StrCat(image.rootfs, "/etc/added-by-layer2")));
  EXPECT_FALSE(Exists(StrCat(image.rootfs, "/opaque/lower-file")));
  EXPECT_TRUE(Exists(StrCat(image.rootfs, "/opaque/upper-file")));
  EXPECT_FALSE(Exists(StrCat(image.rootfs, "/opaque/.wh..wh..opq")));
  EXPECT_THAT(image.config.env, ElementsAre("PATH=/bin", "FROM_IMAGE=oci"));
  EXPECT_THAT(image.config.cmd, ElementsAre("sh", "-c", "echo from-image-cmd"));
  EXPECT_EQ(image.config.working_dir, "/tmp");

  // The same layout packed as a tarball is the same image (the manifest's digest).
  std::string tar = StrCat(base_, "/oci.tar");
  ASSERT_OK(testing::PackTar(layout, tar, false));
  ASSERT_OK_AND_ASSIGN(Image again, store_->Import(tar, {.name = "bb-oci-tar"}));
  EXPECT_EQ(again.digest, image.digest);
  // A ref the index does not have.
  EXPECT_THAT(store_->Import(layout, {.name = "x", .oci_ref = "nope"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'nope'")));
}

TEST_F(ImageStoreTest, ImportsADockerSaveArchive) {
  std::string archive = StrCat(base_, "/docker.tar");
  ASSERT_OK(testing::MakeDockerArchive(rootfs_, archive, "busybox:docker"));
  ASSERT_OK_AND_ASSIGN(Image image, store_->Import(archive, {.name = "busybox:docker"}));
  EXPECT_TRUE(Exists(StrCat(image.rootfs, "/bin/busybox")));
  EXPECT_FALSE(Exists(StrCat(image.rootfs, "/etc/removed-by-layer2")));
  EXPECT_TRUE(Exists(StrCat(image.rootfs, "/opaque/upper-file")));
  EXPECT_FALSE(Exists(StrCat(image.rootfs, "/opaque/lower-file")));
  EXPECT_THAT(image.config.cmd, ElementsAre("sh", "-c", "echo from-image-cmd"));
}

TEST_F(ImageStoreTest, RejectsACorruptBlob) {
  std::string layout = StrCat(base_, "/oci");
  ASSERT_OK(testing::MakeOciLayout(rootfs_, layout, "busybox:oci"));
  // Append a byte to the big layer blob.
  std::string blobs = StrCat(layout, "/blobs/sha256");
  bool corrupted = false;
  DIR* dir = ::opendir(blobs.c_str());
  ASSERT_NE(dir, nullptr);
  while (struct dirent* e = ::readdir(dir)) {
    std::string p = StrCat(blobs, "/", e->d_name);
    struct stat st;
    if (e->d_name[0] != '.' && ::stat(p.c_str(), &st) == 0 && st.st_size > 100000 && !corrupted) {
      FILE* f = std::fopen(p.c_str(), "a");
      std::fputc('x', f);
      std::fclose(f);
      corrupted = true;
    }
  }
  ::closedir(dir);
  ASSERT_TRUE(corrupted);
  EXPECT_THAT(store_->Import(layout, {.name = "bad"}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("has digest")));
  ASSERT_OK_AND_ASSIGN(std::vector<Image> all, store_->List());
  EXPECT_TRUE(all.empty());
}

TEST_F(ImageStoreTest, ConcurrentImportsOfOneImage) {
  std::string tgz = StrCat(base_, "/busybox.tar.gz");
  ASSERT_OK(testing::PackTar(rootfs_, tgz, true));
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<Image>> results(4, absl::UnknownError("not run"));
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = store_->Import(tgz, {.name = StrCat("bb", i)}); });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_OK(r.status());
    EXPECT_EQ(r->digest, results[0]->digest);
  }
  ASSERT_OK_AND_ASSIGN(Image image, store_->Get(results[0]->digest));
  EXPECT_EQ(image.names.size(), 4u);
  ASSERT_OK_AND_ASSIGN(std::vector<Image> all, store_->List());
  EXPECT_EQ(all.size(), 1u);
}

TEST_F(ImageStoreTest, RemoveByNameThenByDigest) {
  ASSERT_OK_AND_ASSIGN(Image a, store_->Import(rootfs_, {.name = "one"}));
  ASSERT_OK(store_->Import(rootfs_, {.name = "two"}).status());
  ASSERT_OK(store_->Remove("one"));
  EXPECT_THAT(store_->Get("one"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(Image b, store_->Get("two"));
  EXPECT_TRUE(Exists(b.rootfs));
  ASSERT_OK(store_->Remove(a.digest));
  EXPECT_THAT(store_->Get("two"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(Exists(a.rootfs));
  EXPECT_THAT(store_->Remove("two"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Import(rootfs_, {.name = "bad name"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Import(StrCat(base_, "/missing"), {.name = "x"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

}  // namespace
}  // namespace loom::runtime
