// The public Client: constructors, close, scheduler_info, dashboard_link, get_worker_logs, and the internal interface (internal.hpp).
#include <algorithm>
#include <stdexcept>
#include <thread>

#include <dtask/local_cluster.hpp>
#include <dtask/slurm.hpp>

#include "client/connection.hpp"
#include "client/internal.hpp"
#include "client/worker_logs.hpp"
#include "common/scheduler_file.hpp"

namespace dtask {

namespace {
// The cluster's choice of fast paths, which its connect_options() need not carry.
ConnectOptions options_of(const LocalCluster& cluster) {
  ConnectOptions o = cluster.connect_options();
  o.fast_paths = cluster.options().fast_paths;
  return o;
}

SchedulerInfo parse_info(const nlohmann::json& j, const std::string& address) {
  SchedulerInfo out;
  out.address = j.value("address", address);
  for (const auto& w : j.at("workers")) {
    WorkerInfo wi;
    wi.id = w.at("id").get<std::uint32_t>();
    wi.name = w.at("name").get<std::string>();
    wi.host = w.at("host").get<std::string>();
    wi.address = w.at("address").get<std::string>();
    wi.nthreads = w.at("nthreads").get<int>();
    wi.rank = w.at("rank").get<int>();
    wi.pid = w.value("pid", 0L);
    wi.memory_limit = w.at("memory_limit").get<std::uint64_t>();
    wi.resources = w.at("resources").get<std::map<std::string, double>>();
    wi.processing = w.at("processing").get<std::size_t>();
    wi.in_memory = w.at("in_memory").get<std::size_t>();
    // Newer fields (protocol 7): an older scheduler may not send them.
    wi.nbytes = w.value("nbytes", std::uint64_t{0});
    wi.retiring = w.value("retiring", false);
    wi.idle_ms = w.value("idle_ms", std::uint64_t{0});
    // Its last memory report (protocol 9); zeros and false from a scheduler that sends none.
    wi.memory_held = w.value("memory_held", std::uint64_t{0});
    wi.memory_spilled = w.value("memory_spilled", std::uint64_t{0});
    wi.spilled_count = w.value("spilled_count", std::uint64_t{0});
    wi.memory_process = w.value("memory_process", std::uint64_t{0});
    wi.paused = w.value("paused", false);
    out.workers.push_back(std::move(wi));
  }
  out.tasks_by_state = j.at("tasks_by_state").get<std::map<std::string, std::size_t>>();
  out.n_tasks = j.at("n_tasks").get<std::size_t>();
  // The scheduler's fast-path counters; an older scheduler may not send them.
  out.completions_reported_by_clients = j.value("completions_reported_by_clients", std::uint64_t{0});
  out.placed_where_started_early = j.value("placed_where_started_early", std::uint64_t{0});
  out.worker_pauses = j.value("worker_pauses", std::uint64_t{0});
  return out;
}
}  // namespace

Client::Client(const LocalCluster& cluster) : Client(options_of(cluster)) {}
Client::Client(const slurm::Cluster& cluster) : Client(cluster.connect_options()) {}

Client::Client(const ConnectOptions& options) : core_(std::make_shared<detail::ClientCore>(options)) {
  core_->start();
}

Client Client::from_scheduler_file(const std::string& path) {
  auto f = read_scheduler_file(path);
  if (!f.ok()) throw ConnectionError(f.error);
  return Client(f.connect);
}

Client::~Client() { close(); }
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

bool Client::wait_for_workers(std::size_t n, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) return false;
    auto info = core().info(std::max(remaining, std::chrono::milliseconds(1000)));
    if (info.at("workers").size() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool Client::retire_workers(const std::vector<std::string>& names, std::chrono::milliseconds timeout) {
  if (names.empty()) return true;
  core().retire_workers(names);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto info = core().info(std::max(remaining, std::chrono::milliseconds(1000)));
    bool present = false;
    for (const auto& w : info.at("workers")) {
      present = present || std::find(names.begin(), names.end(), w.at("name").get<std::string>()) != names.end();
    }
    if (!present) return true;
    if (remaining.count() <= 0) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

SchedulerInfo Client::scheduler_info() { return parse_info(core().info(std::chrono::seconds(30)), core().address()); }

std::map<std::string, WorkerLogs> Client::get_worker_logs(std::size_t n) {
  return detail::parse_worker_logs(core().info("logs", 0, std::chrono::seconds(30)), n);
}

void Client::shutdown_cluster(int code) { core().shutdown_cluster(code); }

void Client::close() {
  if (core_) core_->close();
}

const std::string& Client::scheduler_address() const {
  if (!core_) throw std::logic_error("dtask: Client::scheduler_address() on a moved-from Client");
  return core_->address();
}

std::string Client::dashboard_link() const {
  if (!core_) throw std::logic_error("dtask: Client::dashboard_link() on a moved-from Client");
  return core_->dashboard_link();
}

detail::ClientCore& Client::core() {
  if (!core_) throw std::logic_error("dtask: this Client was moved from");
  return *core_;
}

namespace detail {

ClientCore& ClientInternals::core(Client& c) { return c.core(); }
ClientCounters ClientInternals::counters(Client& c) { return c.core().counters(); }
void ClientInternals::set_end_handler(Client& c, std::function<void(int, const std::string&)> handler) {
  c.core().set_end_handler(std::move(handler));
}
nlohmann::json ClientInternals::info_json(Client& c, std::chrono::milliseconds timeout) { return c.core().info(timeout); }

}  // namespace detail

}  // namespace dtask
