// Pure logic of the runtime: mount syntax, spec validation, path cleaning, the shim's
// JSON records, OOM counters, and archive extraction that cannot escape its root.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/archive.h"
#include "runtime/cgroups.h"
#include "runtime/container.h"
#include "runtime/fs_util.h"
#include "runtime/image_store.h"
#include "runtime/shim.h"
#include "tests/testing/status_matchers.h"

namespace loom::runtime {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseMountSpecTest, BindAndVolume) {
  ASSERT_OK_AND_ASSIGN(MountSpec bind, ParseMountSpec("/srv/data:/data:ro"));
  EXPECT_EQ(bind.type, MountSpec::Type::kBind);
  EXPECT_EQ(bind.source, "/srv/data");
  EXPECT_EQ(bind.destination, "/data");
  EXPECT_TRUE(bind.read_only);
  ASSERT_OK_AND_ASSIGN(MountSpec vol, ParseMountSpec("cache:/var/cache:rw"));
  EXPECT_EQ(vol.type, MountSpec::Type::kVolume);
  EXPECT_EQ(vol.source, "cache");
  EXPECT_FALSE(vol.read_only);
}

TEST(ParseMountSpecTest, RejectsBadInput) {
  EXPECT_THAT(ParseMountSpec("/a"), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("SOURCE:DESTINATION")));
  EXPECT_THAT(ParseMountSpec("/a:/b:rx"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("'rx' is not ro or rw")));
  EXPECT_THAT(ParseMountSpec("/a:relative"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                      HasSubstr("absolute")));
  EXPECT_THAT(ParseMountSpec("/a:/b/../../etc"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'..'")));
  EXPECT_THAT(ParseMountSpec("bad name:/b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("volume name")));
}

TEST(ValidateContainerSpecTest, NamesTheBadField) {
  ContainerSpec spec;
  spec.id = "web-1";
  spec.image = "busybox";
  EXPECT_OK(ValidateContainerSpec(spec));
  ContainerSpec bad = spec;
  bad.id = "../x";
  EXPECT_THAT(ValidateContainerSpec(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("container id")));
  bad = spec;
  bad.env = {"NOVALUE"};
  EXPECT_THAT(ValidateContainerSpec(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("NAME=value")));
  bad = spec;
  bad.memory_bytes = 1000;
  EXPECT_THAT(ValidateContainerSpec(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("at least 4 MiB")));
  bad = spec;
  bad.image = "";
  EXPECT_THAT(ValidateContainerSpec(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("image")));
  bad = spec;
  bad.workdir = "tmp";
  EXPECT_THAT(ValidateContainerSpec(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("workdir")));
}

TEST(ImageNameTest, Validation) {
  EXPECT_OK(ValidateImageName("registry.local:5000/team/busybox:1.36"));
  EXPECT_THAT(ValidateImageName(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateImageName("a b"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("invalid character")));
  EXPECT_THAT(ValidateImageName("a/../b"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CleanRelativePathTest, Cleans) {
  EXPECT_THAT(CleanRelativePath("./a//b/./c/"), ::loom::testing::IsOkAndHolds("a/b/c"));
  EXPECT_THAT(CleanRelativePath("/etc/passwd"), ::loom::testing::IsOkAndHolds("etc/passwd"));
  EXPECT_THAT(CleanRelativePath("./"), ::loom::testing::IsOkAndHolds(""));
  EXPECT_THAT(CleanRelativePath("a/../../b"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ShimRecordsTest, RoundTrip) {
  ShimConfig c;
  c.id = "c1";
  c.image_digest = Sha256String("x");
  c.argv = {"sh", "-c", "true"};
  c.env = {"A=b"};
  c.mounts = {{"/srv", "data", true}};
  c.cgroup_dirs = {"/sys/fs/cgroup/memory/loom/c1"};
  c.uid = 1000;
  c.read_only_root = true;
  ASSERT_OK_AND_ASSIGN(ShimConfig back, ShimConfigFromJson(ShimConfigToJson(c)));
  EXPECT_EQ(back.argv, c.argv);
  EXPECT_EQ(back.mounts.size(), 1u);
  EXPECT_TRUE(back.mounts[0].read_only);
  EXPECT_EQ(back.uid, 1000u);
  EXPECT_TRUE(back.read_only_root);
  Json j = ShimConfigToJson(c);
  j.erase("argv");
  EXPECT_THAT(ShimConfigFromJson(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("'argv'")));
  ExitRecord e{137, 9, true, absl::FromUnixMillis(1234)};
  ASSERT_OK_AND_ASSIGN(ExitRecord eb, ExitRecordFromJson(ExitRecordToJson(e)));
  EXPECT_EQ(eb.exit_code, 137);
  EXPECT_TRUE(eb.oom_killed);
  EXPECT_EQ(eb.finished_at, e.finished_at);
}

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> n{0};
    path_ = StrCat(::testing::TempDir(), "/loom-rt-unit-", ::getpid(), "-", n++);
    EXPECT_OK(MakeDirs(path_));
  }
  ~TempDir() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(OomCountTest, ReadsV1AndV2Formats) {
  TempDir dir;
  std::string v1 = StrCat(dir.path(), "/oom_control");
  ASSERT_OK(WriteFileAtomic(v1, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"));
  EXPECT_EQ(ReadOomKillCount(v1), 2);
  std::string v2 = StrCat(dir.path(), "/events");
  ASSERT_OK(WriteFileAtomic(v2, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"));
  EXPECT_EQ(ReadOomKillCount(v2), 1);
  EXPECT_EQ(ReadOomKillCount(StrCat(dir.path(), "/missing")), 0);
}

// Writes a tar with arbitrary entry names, which `tar` itself would refuse to make.
struct Entry {
  std::string name;
  mode_t type;
  std::string data_or_target;
  bool hardlink = false;
};

void WriteTar(const std::string& path, const std::vector<Entry>& entries) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const Entry& e : entries) {
    struct archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, e.name.c_str());
    archive_entry_set_uid(en, ::getuid());
    archive_entry_set_gid(en, ::getgid());
    if (e.hardlink) {
      archive_entry_set_hardlink(en, e.data_or_target.c_str());
      archive_entry_set_filetype(en, AE_IFREG);
    } else {
      archive_entry_set_filetype(en, e.type);
      archive_entry_set_perm(en, e.type == AE_IFDIR ? 0755 : 0644);
      if (e.type == AE_IFLNK) archive_entry_set_symlink(en, e.data_or_target.c_str());
      if (e.type == AE_IFREG) archive_entry_set_size(en, static_cast<la_int64_t>(e.data_or_target.size()));
    }
    archive_write_header(a, en);
    if (e.type == AE_IFREG && !e.hardlink) {
      archive_write_data(a, e.data_or_target.data(), e.data_or_target.size());
    }
    archive_entry_free(en);
  }
  archive_write_close(a);
  archive_write_free(a);
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

TEST(ExtractArchiveTest, RejectsDotDot) {
  TempDir dir;
  ASSERT_OK(MakeDirs(StrCat(dir.path(), "/root")));
  WriteTar(StrCat(dir.path(), "/evil.tar"), {{"../escaped", AE_IFREG, "x"}});
  EXPECT_THAT(ExtractArchive(StrCat(dir.path(), "/evil.tar"), StrCat(dir.path(), "/root"), false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'..'")));
  EXPECT_FALSE(Exists(StrCat(dir.path(), "/escaped")));
}

TEST(ExtractArchiveTest, AbsoluteNamesStayInside) {
  TempDir dir;
  ASSERT_OK(MakeDirs(StrCat(dir.path(), "/root")));
  std::string outside = StrCat(dir.path(), "/outside");
  WriteTar(StrCat(dir.path(), "/abs.tar"), {{StrCat(outside, "/f"), AE_IFREG, "x"}});
  ASSERT_OK(ExtractArchive(StrCat(dir.path(), "/abs.tar"), StrCat(dir.path(), "/root"), false));
  EXPECT_FALSE(Exists(outside));
  EXPECT_TRUE(Exists(StrCat(dir.path(), "/root", outside, "/f")));
}

TEST(ExtractArchiveTest, SymlinksCannotRedirectLaterEntries) {
  TempDir dir;
  std::string root = StrCat(dir.path(), "/root");
  std::string outside = StrCat(dir.path(), "/outside");
  ASSERT_OK(MakeDirs(root));
  ASSERT_OK(MakeDirs(outside));
  WriteTar(StrCat(dir.path(), "/link.tar"),
           {{"abs", AE_IFLNK, outside},
            {"abs/pwned", AE_IFREG, "x"},
            {"rel", AE_IFLNK, "../../../../../../.."},
            {"rel/pwned2", AE_IFREG, "x"}});
  // Whether extraction completes or stops, nothing may land outside the root.
  (void)ExtractArchive(StrCat(dir.path(), "/link.tar"), root, false);
  EXPECT_FALSE(Exists(StrCat(outside, "/pwned")));
  EXPECT_FALSE(Exists(StrCat(dir.path(), "/pwned2")));
  EXPECT_FALSE(Exists("/pwned2"));
}

TEST(ExtractArchiveTest, HardLinkTargetsMustBeInside) {
  TempDir dir;
  ASSERT_OK(MakeDirs(StrCat(dir.path(), "/root")));
  WriteTar(StrCat(dir.path(), "/hl.tar"), {{"passwd", AE_IFREG, "../../../../etc/passwd", true}});
  EXPECT_THAT(ExtractArchive(StrCat(dir.path(), "/hl.tar"), StrCat(dir.path(), "/root"), false),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ExtractArchiveTest, WhiteoutsHideLowerLayersOnly) {
  TempDir dir;
  std::string root = StrCat(dir.path(), "/root");
  ASSERT_OK(MakeDirs(root));
  WriteTar(StrCat(dir.path(), "/l1.tar"), {{"d", AE_IFDIR, ""},
                                          {"d/old", AE_IFREG, "1"},
                                          {"gone", AE_IFREG, "1"},
                                          {"keep", AE_IFREG, "1"}});
  // The opaque marker comes after d/new in the stream: it must not delete d/new.
  WriteTar(StrCat(dir.path(), "/l2.tar"), {{"d/new", AE_IFREG, "2"},
                                          {"d/.wh..wh..opq", AE_IFREG, ""},
                                          {".wh.gone", AE_IFREG, ""}});
  ASSERT_OK(ExtractArchive(StrCat(dir.path(), "/l1.tar"), root, true));
  ASSERT_OK(ExtractArchive(StrCat(dir.path(), "/l2.tar"), root, true));
  EXPECT_FALSE(Exists(StrCat(root, "/d/old")));
  EXPECT_TRUE(Exists(StrCat(root, "/d/new")));
  EXPECT_FALSE(Exists(StrCat(root, "/gone")));
  EXPECT_TRUE(Exists(StrCat(root, "/keep")));
  EXPECT_FALSE(Exists(StrCat(root, "/.wh.gone")));
  EXPECT_FALSE(Exists(StrCat(root, "/d/.wh..wh..opq")));
}

}  // namespace
}  // namespace loom::runtime
