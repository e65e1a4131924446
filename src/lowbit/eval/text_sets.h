// Named evaluation texts and where they live.
//
// A text set is either a name or a file path:
//   wikitext2          ../shared/data/wikitext-2/wiki.test.raw in the GPTQ / Hugging Face form
//   wikitext2-valid    ../shared/data/wikitext-2/wiki.valid.raw, same transformation (calibration)
//   tinystories        ../shared/data/tinystories/tinystories-v1-valid-first500.txt (as is)
//   tinystories-calib  ../shared/data/tinystories/tinystories-v1-valid-calib.txt (as is)
//   lambada            ../shared/data/lambada/lambada_test.jsonl (a task file, see lambada.h;
//                      resolve_text_path only: load_text_set refuses it)
//   anything else      a file path, read as is
// The shared folder is found by shared_dir() (see there).
#pragma once

#include <string>

namespace lowbit {

// The shared data folder: $LOWBIT_SHARED when set; else `../shared` relative to the current
// directory when it exists (running from the repo root); else `<dir of the
// executable>/../../shared` (the binary is <repo>/build/lowbit). Returns "" when none exists.
std::string shared_dir();

// The file a text-set name refers to (names above; any other string is returned unchanged as a
// path). Throws Error when a name is used and the shared folder cannot be found.
std::string resolve_text_path(const std::string& name_or_path);

// True when `name` is one of the known set names.
bool is_text_set_name(const std::string& name);

// Hugging Face `wikitext-2-raw-v1` rows joined the way GPTQ / AWQ evaluate them:
// rows = the lines of the raw file, each keeping its trailing "\n" (a last line without "\n" is
// kept as is); a row equal to " \n" (WikiText's blank line) becomes ""; text = "\n\n".join(rows).
// For wiki.test.raw that gives 1,296,370 bytes (sha256 696cca6b...fae83).
std::string wikitext_hf_join(const std::string& raw);

// Loads the text of a set or file. Throws Error("<file>: empty text file") for an empty file,
// Error("<name>: unknown text set or missing file ...") for a name that is neither.
std::string load_text_set(const std::string& name_or_path);

}  // namespace lowbit
