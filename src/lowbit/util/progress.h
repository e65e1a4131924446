// A progress bar with ETA on stderr for long work. Draws only when stderr is a terminal or
// LOWBIT_PROGRESS=1; otherwise prints nothing (results go to stdout / JSON, never here).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lowbit {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();                                              // finishes the line
  void update(int64_t done, const std::string& note = "");  // absolute count
  void add(int64_t n = 1, const std::string& note = "") { update(done_ + n, note); }
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  int64_t total_ = 0, done_ = 0;
  std::string note_;
  bool enabled_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace lowbit
