#!/usr/bin/env python3
"""Reference token ids from Python's sentencepiece (Debian python3-sentencepiece) for lowbit's
SentencePiece test (tests/sentencepiece_test.cpp).

usage: python3 encode.py MODEL TEXT_FILE MODE
  MODE whole: the file is one text; lines: each '\\n'-separated line is a text;
  hex: each non-empty line is the hex of a text (for texts holding newlines, NUL, invalid UTF-8;
  a line "-" is the empty text).
Texts are passed to the library as bytes, so invalid UTF-8 reaches it as it reaches lowbit.
Output (stdout): one line of space-separated ids per text (no BOS/EOS: the library's encode).
Exit status 3 when sentencepiece cannot be imported.
"""
import sys

try:
    import sentencepiece as spm
except ImportError:
    sys.stderr.write("encode.py: python3 module sentencepiece missing (apt-get install python3-sentencepiece)\n")
    sys.exit(3)


def texts_of(raw, mode):
    if mode == "whole":
        return [raw]
    if mode == "lines":
        return raw.split(b"\n")
    if mode == "hex":
        out = []
        for line in raw.split(b"\n"):
            line = line.strip()
            if not line:
                continue
            out.append(b"" if line == b"-" else bytes.fromhex(line.decode("ascii")))
        return out
    raise SystemExit("encode.py: unknown mode " + mode)


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: python3 encode.py MODEL TEXT_FILE whole|lines|hex\n")
        return 2
    model, text_path, mode = sys.argv[1:]
    sp = spm.SentencePieceProcessor(model_file=model)
    with open(text_path, "rb") as f:
        raw = f.read()
    out = []
    for t in texts_of(raw, mode):
        out.append(" ".join(str(i) for i in sp.encode(t)))
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
