// Outputs that never cost the user data (docs/RELIABILITY.md):
//  * an output (folder or file) may not be, contain or lie inside any input of the command (the
//    model, its tokenizer, a calibration text, a recipe): checked before any work;
//  * a model folder is written as a whole or not at all: files go into `<out>.tmp.<pid>` (created
//    and locked at construction, so an unwritable destination fails before any long work) and
//    commit() renames it to `<out>`; a destroyed, uncommitted OutputDir removes its temp folder,
//    and so does a signal (util/signals.h) unless the folder is kept for a resume;
//  * --force replaces only a folder lowbit wrote: commit() leaves a manifest (`.lowbit-output`)
//    naming every file it wrote, and a folder without one, or with files the manifest does not
//    name, is refused;
//  * temp folders of runs that died (their lock is free) are found by the next run for the same
//    output: removed with a note, or adopted by a caller that can resume from them.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace lowbit {

// The manifest file name inside every folder lowbit writes.
constexpr const char* kManifestName = ".lowbit-output";
// The lock a live run holds inside its temp folder (removed before the folder is committed).
constexpr const char* kLockName = ".lock";

// Throws Error when `out` (a folder when `folder`, else a file) equals, contains or lies inside
// one of `inputs` (existing paths; empty entries are skipped), or when a file output is an
// existing folder. Symlinks and ".." are resolved first.
void check_output_path(const std::string& out, const std::vector<std::string>& inputs, bool folder);

// Whether `inner` is `outer` or lies inside it, after resolving both as above.
bool path_within(const std::string& inner, const std::string& outer);

struct OutputDirOptions {
  bool force = false;               // replace an existing folder lowbit wrote
  std::vector<std::string> inputs;  // see check_output_path
  std::string command;              // recorded in the manifest ("quantize", "synth")
  // Offered each temp folder a dead run left for this output; returning true adopts it as this
  // run's temp folder (a resume), false has it removed. Unset: all are removed.
  std::function<bool(const std::string& stale_tmp)> adopt;
  // A note printed instead of removing the temp folder when a signal stops the process ("" =
  // remove it).
  std::string keep_on_signal;
};

class OutputDir {
 public:
  OutputDir(const std::string& out, const OutputDirOptions& opt);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& tmp() const { return tmp_; }  // write here
  const std::string& out() const { return out_; }
  std::string file(const std::string& name) const;  // tmp()/name
  bool adopted() const { return adopted_; }         // tmp() came from a dead run (resume)
  // Writes the manifest, renames the temp folder to out() (replacing an old output of lowbit's
  // with force). Files named in `drop` (resume state) are removed first.
  void commit(const std::vector<std::string>& drop = {});

 private:
  void clean_stale(const OutputDirOptions& opt);
  void check_replaceable() const;
  std::string out_, tmp_, command_;
  int lock_fd_ = -1;
  int signal_guard_ = 0;
  bool committed_ = false, adopted_ = false, force_ = false;
};

}  // namespace lowbit
