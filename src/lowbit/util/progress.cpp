#include "lowbit/util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace lowbit {

namespace {
std::string fmt_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{:02}:{:02}", t / 60, t % 60);
}
}  // namespace

Progress::Progress(std::string label, int64_t total) : label_(std::move(label)), total_(total) {
  const char* env = std::getenv("LOWBIT_PROGRESS");
  enabled_ = env ? std::strcmp(env, "0") != 0 : isatty(STDERR_FILENO) != 0;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (enabled_) draw(false);
}

Progress::~Progress() {
  // Unwinding from an error: end the line as it stands, without pretending the work finished.
  if (std::uncaught_exceptions() > 0 && !finished_) {
    finished_ = true;
    if (enabled_) {
      note_ += " (stopped)";
      draw(false);
      std::fputc('\n', stderr);
    }
    return;
  }
  finish();
}

void Progress::update(int64_t done, const std::string& note) {
  done_ = done;
  if (!note.empty()) note_ = note;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (done_ < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void Progress::draw(bool final) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 0.0;
  const int width = 30;
  const int filled = static_cast<int>(frac * width + 0.5);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  const double eta = done_ > 0 ? elapsed * (1.0 - frac) / frac : -1.0;
  std::string line =
      fmt::format("\r{} [{}] {}/{} {:3.0f}% {} ETA {} {}", label_, bar, done_, total_, frac * 100.0,
                  fmt_duration(elapsed), final ? "00:00" : fmt_duration(eta), note_);
  std::fprintf(stderr, "%s\x1b[K%s", line.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace lowbit
