// Signals turned into clean endings (docs/RELIABILITY.md):
//  * SIGINT, SIGTERM, SIGHUP, SIGQUIT: a watcher thread (the signals are blocked everywhere else)
//    removes the temp files and folders registered here — or keeps those registered with a note,
//    such as a quantization that the same command resumes — prints one line and exits with
//    128 + the signal number;
//  * SIGPIPE, SIGXFSZ: ignored, so the write that hit them fails with EPIPE / EFBIG and is reported
//    like any other write error (with cleanup) instead of killing the process silently;
//  * SIGBUS on a memory-mapped input (the file was truncated by someone else while lowbit read it):
//    one line naming the file, cleanup, exit code 2.
// Without install() (library users, tests) nothing changes but the registry bookkeeping.
#pragma once

#include <cstddef>
#include <string>

namespace lowbit::signals {

// Call once at the start of main, before any other thread exists (threads inherit the mask).
void install();

// A temp file or folder removed when a signal stops the process. With a non-empty `keep_note`
// it is kept instead and the note printed ("lowbit: <note>"). Returns a handle for unregister.
int register_temp(const std::string& path, const std::string& keep_note = "");
void set_keep_note(int handle, const std::string& keep_note);
void unregister_temp(int handle);

// A read-only mapping of `path`, so that a SIGBUS inside it can name the file.
void register_mapping(const void* begin, size_t size, const std::string& path);
void unregister_mapping(const void* begin);

}  // namespace lowbit::signals
