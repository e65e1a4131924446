// A model folder written as a whole or not at all: files go into `<out>.tmp.<pid>` (created at
// construction, so an unwritable destination fails before any long work), commit() renames it to
// `<out>` (replacing an existing folder only with force), and a destroyed, uncommitted OutputDir
// removes its temp folder: a failure never leaves a half-written model.
#pragma once

#include <string>

namespace lowbit {

class OutputDir {
 public:
  // Throws Error("<out>: already exists (remove it or pass --force)") unless force, and
  // Error("<tmp>: cannot create folder: ...") when the parent is not writable.
  OutputDir(const std::string& out, bool force);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& tmp() const { return tmp_; }  // write here
  const std::string& out() const { return out_; }
  std::string file(const std::string& name) const;  // tmp()/name
  void commit();

 private:
  std::string out_, tmp_;
  bool committed_ = false;
};

}  // namespace lowbit
