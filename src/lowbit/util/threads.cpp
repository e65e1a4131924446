#include "lowbit/util/threads.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace lowbit {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kWindow = std::chrono::milliseconds(50);
// Another program's share of a core above which that core counts as taken: a thread parked for a
// third of the time already stalls every region of a team that waits for it.
constexpr double kTakenShare = 0.35;

struct Monitor {
  bool started = false;
  bool adaptive = true;
  int requested = 0;  // 0 = all allowed cores
  int allowed = 1;    // cores in this process's affinity mask
  std::vector<int> cpus;
  int current = 0;
  int others = -1;  // cores taken by other programs at the last look (-1: not looked yet)
  int lowered = 0;
  long hz = 100;
  Clock::time_point t_last;
  double busy_last = 0;  // busy seconds of the allowed CPUs (all processes)
  double self_last = 0;  // CPU seconds of this process
};

Monitor g;

double self_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Busy time of the allowed CPUs in seconds (user, nice, system, irq, softirq and steal: anything
// but idle and iowait); < 0 when /proc/stat cannot be read.
double busy_seconds() {
  FILE* f = std::fopen("/proc/stat", "r");
  if (f == nullptr) return -1;
  char line[512];
  unsigned long long total = 0;
  bool any = false;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "cpu", 3) != 0) break;
    int cpu = -1;
    unsigned long long v[8] = {};
    if (std::sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                    &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9) {
      continue;  // the "cpu " total line
    }
    if (std::find(g.cpus.begin(), g.cpus.end(), cpu) == g.cpus.end()) continue;
    total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    any = true;
  }
  std::fclose(f);
  return any ? static_cast<double>(total) / static_cast<double>(g.hz) : -1;
}

// Runnable tasks on the machine now (the 4th field of /proc/loadavg), or -1.
int running_now() {
  FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return -1;
  double a, b, c;
  int running = -1, total = 0;
  if (std::fscanf(f, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) != 5) running = -1;
  std::fclose(f);
  return running;
}

int wanted() { return g.requested > 0 ? g.requested : g.allowed; }

void apply(int t) {
  if (t == g.current) return;
  g.current = t;
  omp_set_num_threads(t);
  openblas_set_num_threads(t);
}

int cores_taken(double others) {
  return std::max(0, static_cast<int>(std::ceil(others - kTakenShare)));
}

// Threads for `taken` cores held by other programs.
int threads_for(int taken) {
  const int t = std::clamp(g.allowed - taken, 1, std::max(1, wanted()));
  if (t < wanted()) ++g.lowered;
  return t;
}

void start() {
  if (g.started) return;
  g.started = true;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; ++i) {
      if (CPU_ISSET(i, &set)) g.cpus.push_back(i);
    }
  }
  g.allowed = std::max(1, static_cast<int>(g.cpus.size()));
  g.hz = std::max(1L, sysconf(_SC_CLK_TCK));
  const char* env = std::getenv("LOWBIT_ADAPTIVE_THREADS");
  g.adaptive = !(env != nullptr && std::strcmp(env, "0") == 0);
  g.t_last = Clock::now();
  g.self_last = self_cpu_seconds();
  g.busy_last = busy_seconds();
  if (g.busy_last < 0) g.adaptive = false;
}

}  // namespace

void set_num_threads(int n) {
  start();
  g.requested = n > 0 ? n : 0;
  g.current = 0;
  if (!g.adaptive || wanted() == 1) {
    apply(wanted());
    return;
  }
  if (g.others < 0) {
    // No load window yet: a first guess from the tasks running right now (this thread is one of
    // them; the lowest of three looks, so that a passing process does not count).
    int running = 1 << 30;
    for (int i = 0; i < 3; ++i) {
      const int r = running_now();
      if (r < 0) {
        running = 1;
        break;
      }
      running = std::min(running, r);
      if (i < 2) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    g.others = std::max(0, running - 1);
  }
  apply(threads_for(g.others));
}

int num_threads() {
  start();
  if (g.current == 0) apply(wanted());
  return g.current;
}

void adapt_threads() {
  start();
  if (g.current == 0) apply(wanted());
  if (!g.adaptive || wanted() == 1 || omp_in_parallel()) return;
  const Clock::time_point now = Clock::now();
  const double dt = std::chrono::duration<double>(now - g.t_last).count();
  if (now - g.t_last < kWindow) return;
  const double busy = busy_seconds(), self = self_cpu_seconds();
  if (busy < 0) return;
  const double others = std::max(0.0, (busy - g.busy_last) - (self - g.self_last)) / dt;
  g.t_last = now;
  g.busy_last = busy;
  g.self_last = self;
  g.others = cores_taken(others);
  apply(threads_for(g.others));
}

int threads_lowered_count() { return g.lowered; }

int threads_for_load(int allowed, int wanted, double others) {
  return std::clamp(allowed - cores_taken(others), 1, std::max(1, wanted));
}

}  // namespace lowbit
