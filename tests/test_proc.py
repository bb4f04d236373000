"""Programs run as argument vectors: output, exit codes, time-outs, never a shell."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hlplay.proc import run_argv


async def test_output_and_exit_code() -> None:
    res = await run_argv(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")


async def test_arguments_are_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    res = await run_argv(["echo", f"; touch {marker}", "$(id)"])
    assert res.stdout == f"; touch {marker} $(id)\n"
    assert not marker.exists()


async def test_a_timeout_kills_the_whole_process_group() -> None:
    res = await run_argv(["sh", "-c", "sleep 30 & echo $!; sleep 30"], timeout=0.5)
    assert res.timed_out and res.rc == -9
    assert "timed out after 0.5s" in res.stderr
    # the background child went with its group
    child = int(res.stdout.split()[0])
    for _ in range(100):
        if _gone(child):
            break
        await asyncio.sleep(0.05)
    assert _gone(child)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


async def test_missing_program_and_missing_directory_say_which() -> None:
    assert (await run_argv(["no-such-program-here"])).rc == 127
    res = await run_argv(["true"], cwd="/no/such/dir")
    assert res.rc == 1 and "no such directory" in res.stderr


async def test_lines_are_passed_on_as_they_come() -> None:
    seen: list[str] = []

    async def on_line(line: str) -> None:
        seen.append(line)

    res = await run_argv(["sh", "-c", "echo one; echo two"], on_line=on_line)
    assert seen == ["one", "two"] and res.rc == 0
