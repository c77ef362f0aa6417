#include "common/http/router.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::http {
namespace {

using ::testing::HasSubstr;

Request Req(std::string method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.target = r.path;
  return r;
}

Router MakeRouter() {
  Router router;
  router.Handle("GET", "/v1/status", [](const Request&) { return Response::Text(200, "status"); });
  router.HandlePrefix("GET", "/v1/apps/", [](const Request& r) {
    return Response::Text(200, "apps:" + r.path_tail);
  });
  router.HandlePrefix("GET", "/v1/apps/special/", [](const Request& r) {
    return Response::Text(200, "special:" + r.path_tail);
  });
  router.HandlePrefix("DELETE", "/v1/apps/", [](const Request& r) {
    return Response::Text(202, "deleted:" + r.path_tail);
  });
  return router;
}

TEST(RouterTest, ExactPath) {
  Response r = MakeRouter().Dispatch(Req("GET", "/v1/status"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "status");
}

TEST(RouterTest, ExactPathDoesNotMatchLongerPath) {
  EXPECT_EQ(MakeRouter().Dispatch(Req("GET", "/v1/status/x")).status, 404);
}

TEST(RouterTest, PrefixPassesTheTail) {
  Response r = MakeRouter().Dispatch(Req("GET", "/v1/apps/default/web"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "apps:default/web");
}

TEST(RouterTest, LongestPrefixWins) {
  EXPECT_EQ(MakeRouter().Dispatch(Req("GET", "/v1/apps/special/x")).body, "special:x");
}

TEST(RouterTest, MethodSelectsHandler) {
  Response r = MakeRouter().Dispatch(Req("DELETE", "/v1/apps/default/web"));
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "deleted:default/web");
}

TEST(RouterTest, UnknownPathIs404) {
  Response r = MakeRouter().Dispatch(Req("GET", "/nope"));
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("/nope"));
}

TEST(RouterTest, WrongMethodIs405NamingAllowed) {
  Response r = MakeRouter().Dispatch(Req("POST", "/v1/status"));
  EXPECT_EQ(r.status, 405);
  EXPECT_THAT(r.body, HasSubstr("GET"));
}

TEST(RequestTest, HeaderIsCaseInsensitive) {
  Request r;
  r.headers = {{"Content-Type", "application/json"}};
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("accept"), "");
}

}  // namespace
}  // namespace loom::http
