"""Generated sections of the docs: text between <!-- NAME:begin --> and <!-- NAME:end -->.

A report script builds its section and calls write_section(); the rest of the file stays as it is.
Scripts that regenerate a whole page keep the sections other scripts own with kept_sections().
Writes go to a temporary file that is renamed over the page, so an interrupted run never leaves a
half-written doc.
"""
import os
import re


def markers(name):
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(text, name, body):
    """text with section `name` replaced by body (a section() result), or body appended."""
    begin, end = markers(name)
    if begin in text and end in text:
        return text[:text.index(begin)] + body + text[text.index(end) + len(end):]
    return text.rstrip("\n") + "\n\n" + body + "\n"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_section(path, name, body):
    """Replaces (or appends) section `name` of the file at path; "-" prints the section."""
    if path == "-":
        print(body)
        return
    prev = open(path).read() if os.path.exists(path) else ""
    write_atomic(path, replace_section(prev, name, body))
    print(f"wrote {path} ({name})")


def kept_sections(path, pattern):
    """Whole sections (markers included) of the file whose names match the regex `pattern`, in
    the order they appear; [] when the file does not exist."""
    if not os.path.exists(path):
        return []
    prev = open(path).read()
    rx = r"<!-- (" + pattern + r"):begin -->.*?<!-- \1:end -->"
    return [m.group(0) for m in re.finditer(rx, prev, re.S)]
