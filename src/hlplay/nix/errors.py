"""Nix's error messages, whole: the ``error:`` lines and their trace, without noise.

Nix prints the cause first (``error: syntax error, unexpected '}'``) and the
context after it, so the last lines of its output often lose the cause. Store
paths of the flake's source are mapped back to the checkout, so positions read
as the user's files (``hosts/web1.nix:12:5``).
"""

from __future__ import annotations

import os
import re

SOURCE_PATH_RE = re.compile(r"/nix/store/[0-9a-z]{32}-source/([^\s:'\"`]+)")
FRAME_RE = re.compile(r"^\s*… (while|from call site|in )")
AT_RE = re.compile(r"^\s*at .+:\d+:\d+:?\s*$")
NOISE_RE = re.compile(
    r"^(warning: Git tree .* is dirty|building '[^']*'|copying path |"
    r"these \d+ (derivations|paths) will be|\[\d+/\d+ built|\s*/nix/store/\S+\.drv$)"
)
KEEP_FRAMES = 2  # at each end of a long trace: where it started and what it reached
FALLBACK_LINES = 5
SUMMARY_LEN = 300


def _clean(text: str) -> list[str]:
    lines = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", "\n").splitlines()
    return [ln.rstrip() for ln in lines if ln.strip() and not NOISE_RE.match(ln.strip())]


def _trim_frames(block: list[str]) -> list[str]:
    """A long trace keeps its first and last frames; the count says what went."""
    frames: list[list[str]] = []
    head: list[str] = []
    for ln in block:
        if FRAME_RE.match(ln):
            frames.append([ln])
        elif frames:
            frames[-1].append(ln)
        else:
            head.append(ln)
    if len(frames) <= 2 * KEEP_FRAMES + 1:
        return block
    skipped = len(frames) - 2 * KEEP_FRAMES
    out = head + [ln for f in frames[:KEEP_FRAMES] for ln in f]
    out.append(f"       … {skipped} more frames skipped …")
    return out + [ln for f in frames[-KEEP_FRAMES:] for ln in f]


def nix_error(text: str) -> str:
    """Every ``error:`` line of Nix's output and its trace; else the last lines."""
    lines = _clean(text)
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("error:")), None)
    if start is None:
        return "\n".join(ln.strip() for ln in lines[-FALLBACK_LINES:])
    kept = [ln for ln in lines[start:] if "use '--show-trace'" not in ln]
    return "\n".join(_trim_frames(kept))


def map_source_paths(text: str, flake_dir: str | None) -> str:
    """``/nix/store/<hash>-source/x.nix`` becomes ``x.nix`` where the checkout has it."""
    if not flake_dir:
        return text

    def repl(m: re.Match[str]) -> str:
        rel = m.group(1)
        return rel if os.path.exists(os.path.join(flake_dir, rel)) else m.group(0)

    return SOURCE_PATH_RE.sub(repl, text)


def detail(text: str, flake_dir: str | None = None) -> str:
    """Nix's whole error, trimmed of noise, with positions in the checkout's files."""
    return map_source_paths(nix_error(text), flake_dir)


def summary(detail: str) -> str:
    """The first error line and its position, short enough for a recap line."""
    lines = [ln.strip() for ln in detail.splitlines() if ln.strip()]
    first = next((ln for ln in lines if ln.startswith("error:")), None)
    if first is None:
        return " | ".join(lines)[:SUMMARY_LEN]
    at = next((ln for ln in lines[lines.index(first) :] if AT_RE.match(ln)), None)
    text = first.removeprefix("error:").strip()
    if at is not None:
        text += " (" + at.removeprefix("at").strip().rstrip(":") + ")"
    return text[:SUMMARY_LEN]
