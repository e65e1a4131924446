#include "lowbit/util/signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace lowbit::signals {

namespace {

struct Temp {
  int id = 0;
  std::string path, keep_note;
};

std::mutex g_mu;
std::vector<Temp> g_temps;
int g_next_id = 1;

// Mappings are read by the SIGBUS handler: fixed slots, lock-free.
constexpr int kMaxMappings = 512;
struct Mapping {
  std::atomic<uintptr_t> begin{0}, end{0};
  char path[480] = {};
};
Mapping g_maps[kMaxMappings];
std::atomic<int> g_bus_slot{-1};
std::atomic<bool> g_installed{false};
pthread_t g_watcher;

// The signals that stop lowbit; SIGUSR2 is the SIGBUS handler's message to the watcher.
sigset_t watched_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2}) sigaddset(&set, s);
  return set;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    default:
      return "a signal";
  }
}

// Removes (or keeps) the registered temps, prints one line and ends the process.
[[noreturn]] void clean_up_and_exit(int code, std::string message) {
  std::vector<Temp> temps;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    temps = g_temps;
  }
  for (const Temp& t : temps) {
    if (!t.keep_note.empty()) {
      message += "; " + t.keep_note;
      continue;
    }
    // Renamed first, so that writers still running cannot create files under the old name.
    std::error_code ec;
    const std::string trash = t.path + ".del";
    std::filesystem::rename(t.path, trash, ec);
    std::filesystem::remove_all(ec ? t.path : trash, ec);
  }
  std::fflush(stdout);
  std::fprintf(stderr, "lowbit: %s\n", message.c_str());
  std::fflush(stderr);
  _exit(code);
}

void watch() {
  const sigset_t set = watched_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR2) {
      const int slot = g_bus_slot.load();
      if (slot < 0) continue;  // a stray SIGUSR2
      clean_up_and_exit(2, std::string(g_maps[slot].path) +
                               ": the file changed while lowbit was reading it (truncated by "
                               "another program?)");
    }
    clean_up_and_exit(128 + sig, std::string("interrupted by ") + signal_name(sig));
  }
}

void on_sigbus(int sig, siginfo_t* info, void*) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  int found = -1;
  for (int i = 0; i < kMaxMappings && found < 0; ++i) {
    const uintptr_t b = g_maps[i].begin.load(std::memory_order_relaxed);
    if (b != 0 && a >= b && a < g_maps[i].end.load(std::memory_order_relaxed)) found = i;
  }
  if (found < 0 || !g_installed.load()) {  // not one of ours: the default action (core dump)
    signal(sig, SIG_DFL);
    return;  // the faulting access repeats and kills the process
  }
  int expected = -1;
  g_bus_slot.compare_exchange_strong(expected, found);
  pthread_kill(g_watcher, SIGUSR2);
  for (;;) pause();  // the watcher cleans up and exits
}

}  // namespace

void install() {
  if (g_installed.exchange(true)) return;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  const sigset_t set = watched_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread t(watch);
  g_watcher = t.native_handle();
  t.detach();
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
}

int register_temp(const std::string& path, const std::string& keep_note) {
  std::lock_guard<std::mutex> lock(g_mu);
  const int id = g_next_id++;
  g_temps.push_back({id, path, keep_note});
  return id;
}

void set_keep_note(int handle, const std::string& keep_note) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (Temp& t : g_temps) {
    if (t.id == handle) t.keep_note = keep_note;
  }
}

void unregister_temp(int handle) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (size_t i = 0; i < g_temps.size(); ++i) {
    if (g_temps[i].id == handle) {
      g_temps.erase(g_temps.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

void register_mapping(const void* begin, size_t size, const std::string& path) {
  if (begin == nullptr || size == 0) return;
  for (Mapping& m : g_maps) {
    uintptr_t expected = 0;
    // Claim a free slot: end first (non-zero marks it taken), then the path, then begin.
    if (!m.end.compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(begin) + size)) {
      continue;
    }
    std::snprintf(m.path, sizeof m.path, "%s", path.c_str());
    m.begin.store(reinterpret_cast<uintptr_t>(begin));
    return;
  }
  // More than kMaxMappings files open at once: a SIGBUS in the others is an ordinary crash.
}

void unregister_mapping(const void* begin) {
  for (Mapping& m : g_maps) {
    if (m.begin.load() == reinterpret_cast<uintptr_t>(begin)) {
      m.begin.store(0);
      m.end.store(0);
      return;
    }
  }
}

}  // namespace lowbit::signals
