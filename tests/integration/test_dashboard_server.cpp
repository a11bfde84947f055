// The dashboard's HTTP server (dashboard::Server) over real sockets with a fake publication: token, routes, address rules, shutdown.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "dashboard/http_server.hpp"

using nlohmann::json;
namespace dd = dtask::dashboard;

namespace {

std::shared_ptr<const dd::Publication> publication(int done) {
  json s = {{"version", 1}, {"time_ms", 1764540000000 + done}, {"started_ms", 1764539990000},
            {"workers", json::array({{{"name", "w0"}, {"host", "h"}, {"nthreads", 2}, {"processing", 1}}})},
            {"progress", json::array({{{"name", "inc"}, {"done", done}, {"erred", 0}}})},
            {"totals", {{"done", done}}}};
  return std::make_shared<const dd::Publication>(dd::Publication{s, s.dump()});
}

std::unique_ptr<dd::Server> start(const std::string& address, const std::string& token = "t0k3n",
                                  std::shared_ptr<spdlog::logger> log = nullptr) {
  return dd::Server::start({.address = address, .default_host = "127.0.0.1", .token = token, .log = std::move(log), .want_fresh = {}});
}

httplib::Result get(int port, const std::string& path, httplib::Headers headers = {}) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(10);
  cli.set_read_timeout(10);
  return cli.Get(path.c_str(), headers);
}

// A listening socket of our own on 127.0.0.1:port (SO_REUSEADDR only); -1 when the port is taken.
int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TEST_CASE("Dashboard.EveryRouteNeedsTheToken") {
  auto server = start(":0");
  REQUIRE(server);
  server->publish(publication(1));
  int port = server->port();
  CHECK(server->link() == "http://127.0.0.1:" + std::to_string(port) + "/status?token=t0k3n");
  for (const char* path : {"/", "/status", "/api/snapshot", "/metrics", "/static/dashboard.js"}) {
    auto res = get(port, path);
    REQUIRE(res);
    CHECK_MESSAGE(res->status == 403, path);
    CHECK(res->body.find("forbidden") != std::string::npos);
    CHECK(res->body.size() < 200);
    auto wrong = get(port, std::string(path) + "?token=t0k3m");
    REQUIRE(wrong);
    CHECK_MESSAGE(wrong->status == 403, path);
  }
  auto by_query = get(port, "/api/snapshot?token=t0k3n");
  auto by_cookie = get(port, "/api/snapshot", {{"Cookie", "other=1; dtask_token=t0k3n"}});
  auto by_bearer = get(port, "/api/snapshot", {{"Authorization", "Bearer t0k3n"}});
  for (auto* res : {&by_query, &by_cookie, &by_bearer}) {
    REQUIRE(*res);
    CHECK((*res)->status == 200);
  }
  CHECK(get(port, "/api/snapshot", {{"Cookie", "dtask_token=nope"}})->status == 403);
  CHECK(get(port, "/api/snapshot", {{"Authorization", "Bearer nope"}})->status == 403);
  // Nothing changes the cluster: other methods are refused, even with the token.
  httplib::Client cli("127.0.0.1", port);
  auto post = cli.Post("/api/snapshot?token=t0k3n", "{}", "application/json");
  REQUIRE(post);
  CHECK(post->status == 405);
}

TEST_CASE("Dashboard.SnapshotIsWhatWasPublished") {
  auto server = start(":0");
  REQUIRE(server);
  int port = server->port();
  auto before = get(port, "/api/snapshot?token=t0k3n");
  REQUIRE(before);
  CHECK(before->status == 503);
  CHECK(json::parse(before->body).contains("error"));
  auto metrics_before = get(port, "/metrics?token=t0k3n");
  REQUIRE(metrics_before);
  CHECK(metrics_before->status == 200);
  CHECK(metrics_before->body.find("dtask_workers 0\n") != std::string::npos);

  auto first = publication(5);
  server->publish(first);
  auto a = get(port, "/api/snapshot?token=t0k3n");
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(a->body == first->snapshot_text);
  CHECK(a->get_header_value("Content-Type").rfind("application/json", 0) == 0);
  CHECK(a->get_header_value("Cache-Control") == "no-store");

  auto second = publication(9);
  server->publish(second);
  auto b = get(port, "/api/snapshot?token=t0k3n");
  REQUIRE(b);
  CHECK(b->body == second->snapshot_text);
  CHECK(b->body != a->body);
}

TEST_CASE("Dashboard.MetricsAndPageAndAssets") {
  auto server = start(":0");
  REQUIRE(server);
  server->publish(publication(7));
  int port = server->port();
  auto m = get(port, "/metrics?token=t0k3n");
  REQUIRE(m);
  CHECK(m->status == 200);
  CHECK(m->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(m->body.find("dtask_tasks_done_total{name=\"inc\"} 7\n") != std::string::npos);

  auto page = get(port, "/status?token=t0k3n");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").rfind("text/html", 0) == 0);
  CHECK(page->get_header_value("Set-Cookie").rfind("dtask_token=t0k3n;", 0) == 0);
  CHECK(page->body.find("id=\"page-errors\"") != std::string::npos);
  CHECK(page->body.find("/*@") == std::string::npos);  // every asset inlined
  CHECK(page->body.find("@UPLOT_LICENSE@") == std::string::npos);
  CHECK(page->body.find("Copyright (c) 2022 Leon Sorokin") != std::string::npos);
  CHECK(page->body.find(" src=") == std::string::npos);  // loads nothing from anywhere

  auto root = get(port, "/?token=t0k3n");
  REQUIRE(root);
  CHECK(root->status == 302);
  CHECK(root->get_header_value("Location") == "/status?token=t0k3n");

  auto licence = get(port, "/static/vendor/uplot/LICENSE?token=t0k3n");
  REQUIRE(licence);
  CHECK(licence->status == 200);
  CHECK(licence->body.find("MIT License") != std::string::npos);
  auto missing = get(port, "/static/../etc/passwd?token=t0k3n");
  REQUIRE(missing);
  CHECK(missing->status != 200);
}

TEST_CASE("Dashboard.NoneMeansNothingListens") {
  for (const char* off : {"none", "false", "off", " none "}) CHECK_MESSAGE(start(off) == nullptr, off);
}

TEST_CASE("Dashboard.BadAddressesAreErrors") {
  for (const char* bad : {"abc", ":99999", ":-1", "host:", ":80x", "::1:80"}) {
    try {
      start(bad);
      FAIL("no error for " << bad);
    } catch (const std::runtime_error& e) {
      CHECK_MESSAGE(std::string(e.what()).find(bad) != std::string::npos, e.what());
    }
  }
  CHECK_THROWS_AS(start("no-such-host.invalid:0"), std::runtime_error);
}

TEST_CASE("Dashboard.ExplicitTakenPortIsAnError") {
  auto first = start(":0");
  REQUIRE(first);
  std::string port = std::to_string(first->port());
  for (const std::string& address : {"127.0.0.1:" + port, port}) {
    try {
      start(address);
      FAIL("a second server on the taken port " << address);
    } catch (const std::runtime_error& e) {
      CHECK_MESSAGE(std::string(e.what()).find(port) != std::string::npos, e.what());
    }
  }
}

TEST_CASE("Dashboard.DefaultPortTakenMovesOnAndSaysSo") {
  // Take 8787 ourselves; when something else holds it already, it is just as taken.
  int fd = listen_on(8787);
  for (const char* address : {"", ":8787"}) {
    std::ostringstream out;
    auto log = std::make_shared<spdlog::logger>("dashboard-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    log->set_pattern("%l %v");
    auto server = start(address, "t0k3n", log);
    REQUIRE(server);
    CHECK(server->port() > 8787);
    CHECK(server->port() <= 8887);
    std::string text = out.str();
    CHECK_MESSAGE(std::count(text.begin(), text.end(), '\n') == 1, text);
    CHECK(text.rfind("warning ", 0) == 0);
    CHECK(text.find("8787") != std::string::npos);
    CHECK(text.find(std::to_string(server->port())) != std::string::npos);
    auto res = get(server->port(), "/metrics?token=t0k3n");
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  if (fd >= 0) close(fd);
}

TEST_CASE("Dashboard.DestructorStopsWithClientsConnected") {
  auto server = start(":0");
  REQUIRE(server);
  server->publish(publication(1));
  int port = server->port();
  // A keep-alive client that stays connected, and a raw connection that never sends a request.
  httplib::Client keep("127.0.0.1", port);
  keep.set_keep_alive(true);
  REQUIRE(keep.Get("/api/snapshot?token=t0k3n"));
  int idle = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(idle, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  server.reset();  // a hang here fails the test by its timeout
  CHECK_FALSE(get(port, "/metrics?token=t0k3n"));  // nothing listens any more
  close(idle);
}
