// The shared service table: With() must always equal the table of its entries built
// from scratch, share the chunks no change falls in, keep chunks of a bounded size;
// Find and Diff must agree with a plain map.
#include "common/model/service_table.h"

#include <map>
#include <random>
#include <set>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::model {
namespace {

ServiceEntry Entry(const std::string& ns, const std::string& name, int version) {
  Service s;
  s.meta.ns = ns;
  s.meta.name = name;
  s.meta.revision = version;
  return ServiceEntry::Make(std::move(s));
}

std::vector<std::string> Keys(const ServiceTable& t) {
  std::vector<std::string> out;
  for (const ServiceEntry& e : t) out.push_back(e.key());
  return out;
}

TEST(ServiceTableTest, EmptyAndSmallTables) {
  ServiceTable empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.begin(), empty.end());
  EXPECT_EQ(empty.Find("default/web"), nullptr);

  ServiceEntry web = Entry("default", "web", 1);
  ServiceEntry api = Entry("default", "api", 1);
  std::vector<ServiceTable::Change> add = {{api.key(), api}, {web.key(), web}};
  ServiceTable two = empty.With(add);
  EXPECT_EQ(two.size(), 2u);
  EXPECT_THAT(Keys(two), ::testing::ElementsAre("default/api", "default/web"));
  ASSERT_NE(two.Find("default/web"), nullptr);
  EXPECT_EQ(*two.Find("default/web"), web);  // the same objects, not copies
  EXPECT_EQ(two.Find("default/nope"), nullptr);
  EXPECT_EQ(two.Find("a"), nullptr);
  EXPECT_EQ(two.Find("zzz"), nullptr);

  // Removing a key that is not there changes nothing; removing both empties it.
  std::vector<ServiceTable::Change> none = {{"default/nope", {}}};
  EXPECT_EQ(two.With(none).size(), 2u);
  std::vector<ServiceTable::Change> both = {{"default/api", {}}, {"default/web", {}}};
  ServiceTable gone = two.With(both);
  EXPECT_TRUE(gone.empty());
  EXPECT_EQ(gone.chunk_count(), 0u);
  EXPECT_EQ(two.size(), 2u);  // the table changes were made from still stands
}

TEST(ServiceTableTest, OfCopiesServicesAndFillsTheirEndpointSets) {
  Service web;
  web.meta.name = "web";
  Service db;
  db.meta.name = "db";
  EndpointSets eps;
  eps["default/db"].endpoints = {{"10.244.1.5", "default/db-0", "n1", "", true, {5432}}};
  ServiceTable t = ServiceTable::Of({web, db}, eps);
  ASSERT_EQ(t.size(), 2u);
  const ServiceEntry* d = t.Find("default/db");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->endpoints->service, "default/db");
  EXPECT_EQ(d->endpoints->endpoints.size(), 1u);
  EXPECT_TRUE(t.Find("default/web")->endpoints->endpoints.empty());
  EXPECT_EQ(t.Find("default/web")->endpoints->service, "default/web");
}

// Random changes against a std::map: contents, order, lookups, chunk bounds, what is
// shared, and what Diff reports.
TEST(ServiceTableTest, WithMatchesAMapAndSharesUntouchedChunks) {
  std::mt19937 rng(5);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  std::map<std::string, ServiceEntry> model;
  ServiceTable table;
  int version = 0;
  for (int step = 0; step < 300; ++step) {
    // Growth, then mostly a few changes with a large burst now and then, then
    // removals only (chunks shrink and merge).
    const bool shrinking = step >= 200;
    int n = step < 20   ? 400
            : shrinking ? 1 + pick(200)
                        : (pick(10) == 0 ? 1 + pick(800) : 1 + pick(5));
    std::map<std::string, ServiceEntry> changes;  // key -> entry (null: remove)
    for (int i = 0; i < n; ++i) {
      std::string ns = pick(3) == 0 ? "other" : "default";
      std::string name = StrCat("s", pick(6000));
      std::string key = StrCat(ns, "/", name);
      if (shrinking || pick(4) == 0) {
        changes[key] = {};
      } else {
        changes[key] = Entry(ns, name, ++version);
      }
    }
    std::vector<ServiceTable::Change> list;
    for (const auto& [k, e] : changes) list.push_back({k, e});
    ServiceTable next = table.With(list);
    std::map<std::string, ServiceEntry> next_model = model;
    for (const auto& [k, e] : changes) {
      if (e.service) {
        next_model[k] = e;
      } else {
        next_model.erase(k);
      }
    }

    ASSERT_EQ(next.size(), next_model.size()) << "step " << step;
    auto it = next.begin();
    for (const auto& [k, e] : next_model) {
      ASSERT_NE(it, next.end());
      ASSERT_EQ(it->key(), k) << "step " << step;
      ASSERT_EQ(*it, e) << "step " << step;
      ++it;
    }
    EXPECT_EQ(it, next.end());
    for (int i = 0; i < 20; ++i) {
      std::string key = StrCat(pick(2) ? "default" : "other", "/s", pick(6000));
      const ServiceEntry* found = next.Find(key);
      auto m = next_model.find(key);
      ASSERT_EQ(found != nullptr, m != next_model.end()) << key;
      if (found != nullptr) {
        EXPECT_EQ(*found, m->second);
      }
    }
    // Chunks hold at most 2 * kChunkSize entries, and all but the first a quarter
    // of kChunkSize at least.
    EXPECT_GE(next.chunk_count(),
              (next.size() + 2 * ServiceTable::kChunkSize - 1) / (2 * ServiceTable::kChunkSize))
        << "step " << step;
    EXPECT_LE(next.chunk_count(), 4 * next.size() / ServiceTable::kChunkSize + 1)
        << "step " << step;
    // Untouched chunks are shared: each change made three new chunks at most (its
    // chunk, maybe with the one before it, split in up to three).
    EXPECT_GE(ServiceTable::SharedChunks(table, next) + 3 * changes.size(), next.chunk_count())
        << "step " << step;

    // Diff reports exactly the keys whose entries differ.
    std::set<std::string> want, got;
    for (const auto& [k, e] : model) {
      auto m = next_model.find(k);
      if (m == next_model.end() || !(m->second == e)) want.insert(k);
    }
    for (const auto& [k, e] : next_model) {
      if (!model.contains(k)) want.insert(k);
    }
    ServiceTable::Diff(table, next, [&](const ServiceEntry* before, const ServiceEntry* after) {
      ASSERT_TRUE(before != nullptr || after != nullptr);
      if (before && after) {
        EXPECT_EQ(before->key(), after->key());
      }
      got.insert(before ? before->key() : after->key());
    });
    EXPECT_EQ(got, want) << "step " << step;

    table = std::move(next);
    model = std::move(next_model);
  }
}

TEST(ServiceTableTest, AFewChangesShareEveryOtherChunk) {
  std::vector<ServiceEntry> entries;
  for (int i = 0; i < 100000; ++i) entries.push_back(Entry("default", StrCat("svc", i), 1));
  ServiceTable table = ServiceTable::From(entries);
  ASSERT_EQ(table.size(), 100000u);
  EXPECT_LE(table.chunk_count(), 100000 / ServiceTable::kChunkSize + 1);

  // A new version of one service, and a new one that sorts right after it: one
  // chunk is rewritten, every other one shared.
  ServiceEntry changed = Entry("default", "svc500", 2);
  ServiceEntry fresh = Entry("default", "svc500-b", 1);
  std::vector<ServiceTable::Change> changes = {{changed.key(), changed}, {fresh.key(), fresh}};
  ServiceTable next = table.With(changes);
  EXPECT_EQ(next.size(), 100001u);
  EXPECT_EQ(*next.Find("default/svc500"), changed);
  EXPECT_EQ(*next.Find("default/svc500-b"), fresh);
  EXPECT_EQ(*next.Find("default/svc99999"), *table.Find("default/svc99999"));
  EXPECT_EQ(next.chunk_count(), table.chunk_count());
  EXPECT_EQ(ServiceTable::SharedChunks(table, next), table.chunk_count() - 1);
  size_t differ = 0;
  ServiceTable::Diff(table, next, [&](const ServiceEntry*, const ServiceEntry*) { ++differ; });
  EXPECT_EQ(differ, 2u);
}

}  // namespace
}  // namespace loom::model
