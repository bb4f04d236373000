"""Bad input to every command, through the real ``hlplay`` process: a one-line error.

Each case runs ``python -m hlplay.cli.main …`` as a user would and checks the
exit code (ansible-playbook's: 1 error, 5 bad options), that stderr is exactly
one ``ERROR: …`` line — or click's usage message for a malformed option — and
that no traceback, and no "internal error", ever reaches the user, within
30 s: hostile input (a billion laughs, a FIFO, ``/dev/zero``, a task file
importing itself) must not hang the controller either.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from hlplay import __version__

INVENTORY = """\
hosts:
  web1: {tier: test, roles: [web], transport: local}
  db1: {tier: prod, roles: [db]}
"""

FILES: dict[str, str | bytes] = {
    "inv.yml": INVENTORY,
    "badinv.yml": "hosts: [web1\n",
    "binary.yml": b"\x00\xff\xfe\x00",
    "emptydir/.keep": "",
    "ok.yml": "- hosts: all\n  tasks:\n    - debug: msg=hi\n",
    "broken.yml": "- hosts: all\n  tasks: [\n",
    "unknown_keyword.yml": "- hosts: all\n  taks: []\n",
    "unknown_module.yml": "- hosts: all\n  tasks:\n    - comand: ls\n",
    "bad_jinja.yml": '- hosts: all\n  tasks:\n    - debug: msg="{{ x }"\n',
    "bad_args.yml": "- hosts: all\n  tasks:\n    - wait_for: {port: 99999}\n",
    "empty.yml": "# nothing here yet\n",
    "vars_missing.yml": "- hosts: all\n  vars_files: [nope.yml]\n  tasks: []\n",
    "badvars.yml": "x: [1\n",
    "notaseed.seed": "hello\n",
    "keys/exists.seed": "SUAAAA\n",
    # ---- hostile YAML: each a few lines that would take forever, or all memory
    "laughs.yml": "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    ),
    "cycle.yml": "a: &a [1, *a]\n",
    "deep.yml": "x: " + "[" * 300 + "]" * 300 + "\n",
    "fifoinv/hosts.yml": INVENTORY,
    "fifohv/hosts.yml": INVENTORY,
    "vars_fifo.yml": "- hosts: all\n  vars_files: [fifo.yml]\n  tasks: []\n",
    "import_fifo.yml": "- hosts: all\n  tasks:\n    - import_tasks: fifo.yml\n",
    "import_loop.yml": "- hosts: all\n  tasks:\n    - import_tasks: tasks_a.yml\n",
    "tasks_a.yml": "- debug: msg=a\n- import_tasks: tasks_b.yml\n",
    "tasks_b.yml": "- import_tasks: tasks_a.yml\n",
    "import_itself.yml": "- hosts: all\n  tasks:\n    - import_tasks: itself.yml\n",
    "itself.yml": "- import_tasks: itself.yml\n",
    "deep_blocks.yml": "- hosts: all\n  tasks:\n"
    + "".join("    " * (i + 1) + "- block:\n" for i in range(400))
    + "    " * 401
    + "- debug: msg=deep\n",
    "deep_vars.yml": "- hosts: all\n  vars:\n    x: " + "[" * 300 + "]" * 300 + "\n  tasks: []\n",
}
# Not regular files: made by the fixture (FIFOs block whoever opens them to read)
FIFOS = ("fifo.yml", "fifoinv/group_vars/all.yml", "fifohv/host_vars/web1.yml")
HUGE = "huge.yml"  # 16 MiB and one byte: one more than a YAML file may hold
HANG = 30  # seconds: a case still running by then would have hung

INV = ("-i", "inv.yml")
USAGE = 5  # click's own usage errors: exit 5 (bad options), click's message


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int
    message: str  # a regex the ERROR line must match ("" for usage errors)


def c(id: str, *argv: str, code: int = 1, message: str = "") -> Case:
    return Case(id, argv, code, message)


CASES = [
    # ---- inventory ----------------------------------------------------------------------
    c("inv-missing", "inventory", "list", "-i", "nope", message="nope: no such inventory"),
    c("inv-bad-yaml", "inventory", "list", "-i", "badinv.yml", message=r"badinv.yml:2:1: invalid"),
    c("inv-binary", "inventory", "list", "-i", "binary.yml", message="binary.yml: cannot read"),
    c("inv-empty-dir", "inventory", "list", "-i", "emptydir", message="no inventory files"),
    c("inv-nomatch", "inventory", "hosts", *INV, "wbe1", message="did you mean 'web1'"),
    c("inv-bracket", "inventory", "hosts", *INV, "web1[", message="unbalanced"),
    c("inv-regex", "inventory", "hosts", *INV, "~(", message="invalid regular"),
    c("inv-empty-limit", "inventory", "targets", *INV, "-l", ",", message="empty host"),
    c("inv-limit-file", "inventory", "list", *INV, "-l", "@nope", message="nope: cannot"),
    c("inv-e-yaml", "inventory", "list", *INV, "-e", "{bad", code=5, message="-e '{bad'"),
    c("inv-e-list", "inventory", "list", *INV, "-e", "[1]", code=5, message="key=value"),
    c("inv-e-file", "inventory", "list", *INV, "-e", "@nope", message="nope: no such"),
    c("inv-e-badfile", "inventory", "list", *INV, "-e", "@badvars.yml", message="badvars"),
    c("inv-graph", "inventory", "graph", *INV, "nosuch", message="no group named"),
    c("inv-host", "inventory", "host", *INV, "nosuch", message="unknown host 'nosuch'"),
    c("inv-subcommand", "inventory", "bogus", code=USAGE),
    c("inv-option", "inventory", "list", "--bogus", code=USAGE),
    c("inv-laughs", "inventory", "list", "-i", "laughs.yml", message=r"laughs.yml:\d+:\d+: alias"),
    c("inv-huge", "inventory", "list", "-i", HUGE, message=rf"{HUGE}: too large \(16.0 MiB"),
    c("inv-fifo", "inventory", "list", "-i", "fifo.yml", message="fifo.yml: is a FIFO, not a"),
    c("inv-dev-zero", "inventory", "list", "-i", "/dev/zero", message="is a character device"),
    c(
        "inv-group-vars-fifo",
        *("inventory", "list", "-i", "fifoinv"),
        message="fifoinv/group_vars/all.yml: is a FIFO",
    ),
    c(
        "inv-host-vars-fifo",
        *("inventory", "list", "-i", "fifohv"),
        message="fifohv/host_vars/web1.yml: is a FIFO",
    ),
    c("inv-e-laughs", "inventory", "list", *INV, "-e", "@laughs.yml", message="aliases expand"),
    c("inv-e-fifo", "inventory", "list", *INV, "-e", "@fifo.yml", message="fifo.yml: is a FIFO"),
    # ---- playbook -----------------------------------------------------------------------
    c("pb-yaml", "broken.yml", *INV, message=r"broken.yml:3:1: invalid YAML"),
    c("pb-keyword", "unknown_keyword.yml", *INV, message=r":2:3: unknown play keyword"),
    c("pb-module", "unknown_module.yml", *INV, message=r":3:7: unknown module 'comand'"),
    c("pb-jinja", "bad_jinja.yml", *INV, message=r":3:7: template syntax error"),
    c("pb-args", "bad_args.yml", *INV, message=r"port number \(1-65535\)"),
    c("pb-missing", "missing.yml", *INV, message="missing.yml"),
    c("pb-empty", "empty.yml", *INV, message="the playbook has no plays"),
    c("pb-dir", "emptydir", *INV, message="emptydir"),
    c("pb-binary", "binary.yml", *INV, message="binary.yml: cannot read"),
    c("pb-vars-file", "vars_missing.yml", *INV, message=r":2:16: vars file not found"),
    c("pb-e", "ok.yml", *INV, "-e", "{bad", code=5, message="-e '{bad'"),
    c("pb-e-file", "ok.yml", *INV, "-e", "@nope", message="nope: no such"),
    c("pb-limit", "ok.yml", *INV, "-l", "wbe1", message="did you mean 'web1'"),
    c("pb-limit-empty", "ok.yml", *INV, "-l", ",", message="empty host pattern"),
    c("pb-limit-bracket", "ok.yml", *INV, "-l", "[[", message="unbalanced"),
    c("pb-inventory", "ok.yml", "-i", "badinv.yml", message="badinv.yml:2:1: invalid YAML"),
    c("pb-forks-zero", "ok.yml", *INV, "--forks", "0", code=USAGE),
    c("pb-forks-word", "ok.yml", *INV, "-f", "many", code=USAGE),
    c("pb-option", "ok.yml", *INV, "--bogus", code=USAGE),
    c(
        "pb-laughs",
        *("laughs.yml", *INV),
        message=r"laughs.yml:\d+:\d+: aliases expand to more than 1000000 nodes",
    ),
    c("pb-e-laughs", "ok.yml", *INV, "-e", "@laughs.yml", message="laughs.yml:.*aliases expand"),
    c("pb-e-cycle", "ok.yml", *INV, "-e", "@cycle.yml", message="refers to a node that contains"),
    c("pb-e-deep", "ok.yml", *INV, "-e", "@deep.yml", message="deep.yml:1:.*deeper than 200"),
    c("pb-e-huge", "ok.yml", *INV, "-e", f"@{HUGE}", message=rf"{HUGE}: too large"),
    c("pb-e-fifo", "ok.yml", *INV, "-e", "@fifo.yml", message="fifo.yml: is a FIFO"),
    c("pb-e-dev-zero", "ok.yml", *INV, "-e", "@/dev/zero", message="/dev/zero: is a character"),
    c("pb-fifo", "fifo.yml", *INV, message="fifo.yml: is a FIFO"),
    c("pb-limit-fifo", "ok.yml", *INV, "-l", "@fifo.yml", message="limit file: is a FIFO"),
    c("pb-huge", HUGE, *INV, message=rf"{HUGE}: too large"),
    c("pb-vars-file-fifo", "vars_fifo.yml", *INV, message=r":2:16: vars file is not a regular"),
    c("pb-import-fifo", "import_fifo.yml", *INV, message="fifo.yml: is a FIFO"),
    c(
        "pb-import-loop",
        *("import_loop.yml", *INV),
        message=r"tasks_b.yml:1:3: import_tasks: tasks_a.yml imports itself"
        r" \(via tasks_a.yml -> tasks_b.yml -> tasks_a.yml\)",
    ),
    c(
        "pb-import-itself",
        *("import_itself.yml", *INV),
        message=r"itself.yml:1:3: import_tasks: itself.yml imports itself",
    ),
    c(
        "pb-deep-blocks",
        *("deep_blocks.yml", *INV),
        message=r"deep_blocks.yml:\d+:\d+: blocks nested deeper than 100",
    ),
    c("pb-deep-vars", "deep_vars.yml", *INV, message=r"deep_vars.yml:3:\d+: nested deeper"),
    # ---- listen -------------------------------------------------------------------------
    c(
        "listen-nkey",
        *("listen", "--tier", "test", "--hostname", "h1", "--nkey-file", "nope.seed"),
        *("--nats-url", "nats://127.0.0.1:9"),
        message="--nkey-file nope.seed: No such file",
    ),
    c(
        "listen-not-a-seed",
        *("listen", "--tier", "test", "--hostname", "h1", "--nkey-file", "notaseed.seed"),
        *("--nats-url", "nats://127.0.0.1:9"),
        message="not an NKey user seed",
    ),
    c("listen-url", "listen", "--tier", "test", "--nats-url", "bogus://x", message="invalid NATS"),
    c("listen-port", "listen", "--tier", "t", "--nats-url", "nats://a:b", message="invalid NATS"),
    c("listen-tier", "listen", "--tier", "prod.eu", message="--tier 'prod.eu' is not a valid"),
    c("listen-host", "listen", "--tier", "test", "--hostname", "a b", message="--hostname 'a b'"),
    c("listen-role", "listen", "--tier", "test", "--role", "a.b", message="--role 'a.b'"),
    c(
        "listen-subject",
        *("listen", "--tier", "test", "--subject-host", "deploy.<tier>"),
        message="must contain <hostname>",
    ),
    c("listen-timeout", "listen", "--tier", "test", "--timeout", "0", message="--timeout must"),
    c(
        "listen-state-dir",
        *("listen", "--tier", "test", "--state-dir", "inv.yml/state"),
        message="--state-dir inv.yml/state: cannot create: Not a directory",
    ),
    c("listen-timeout-word", "listen", "--tier", "test", "--timeout", "long", code=USAGE),
    c("listen-no-tier", "listen", "--hostname", "h1", code=USAGE),
    c("listen-executor", "listen", "--tier", "test", "--executor", "bash", code=USAGE),
    # ---- keys ---------------------------------------------------------------------------
    c("keys-name", "keys", "new", "../escape", message="invalid key name '../escape'"),
    c("keys-empty", "keys", "new", "", message="invalid key name ''"),
    c("keys-exists", "keys", "new", "exists", "--dir", "keys", message="refusing to overwrite"),
    c("keys-dir", "keys", "new", "k1", "--dir", "inv.yml/sub", message="Not a directory"),
    c("keys-no-name", "keys", "new", code=USAGE),
    # ---- nats config --------------------------------------------------------------------
    c("nats-inv", "nats", "config", "-i", "badinv.yml", message="badinv.yml:2:1: invalid YAML"),
    c("nats-inv-missing", "nats", "config", "-i", "nope", message="no such inventory"),
    c("nats-no-keys", "nats", "config", *INV, message="no NKey for listener host"),
    c("nats-keys-dir", "nats", "config", *INV, "--keys-dir", "nope", message="nope: no"),
    c("nats-new-keys", "nats", "config", *INV, "--new-keys", code=5, message="needs"),
    c("nats-route", "nats", "config", *INV, "--route", "x", code=5, message="NATS URL"),
    c(
        "nats-out-dir",
        *("nats", "config", *INV, "--keys-dir", "keys2", "--new-keys"),
        *("--out", "emptydir"),
        message="emptydir: cannot write: is a directory",
    ),
    c(
        "nats-out",
        *("nats", "config", *INV, "--keys-dir", "newkeys", "--new-keys"),
        *("--out", "inv.yml/auth.conf"),
        message="inv.yml/auth.conf: cannot write: no such directory",
    ),
    # ---- the group ----------------------------------------------------------------------
    c("unknown-option", "--bogus", code=USAGE),
]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    elapsed: float = 0.0


def _run(cwd: Path, argv: tuple[str, ...]) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLPLAY_")}
    env["HLPLAY_NO_COLOR"] = "1"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ran]]:
    """Every case run once, side by side (each is a process start-up, mostly)."""
    root = tmp_path_factory.mktemp("bad-input")
    for name, content in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for name in FIFOS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / name)
    with (root / HUGE).open("wb") as fh:
        fh.truncate(16 * 1024 * 1024 + 1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case.id: pool.submit(_run, root, case.argv) for case in CASES}
        yield {name: f.result() for name, f in futures.items()}


def test_case_ids_are_unique() -> None:
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_never_a_traceback(case: Case, results: dict[str, Ran]) -> None:
    got = results[case.id]
    where = f"hlplay {' '.join(case.argv)}\nstdout: {got.out!r}\nstderr: {got.err!r}"
    assert got.elapsed < HANG, where
    assert "Traceback" not in got.err + got.out, where
    assert "internal error" not in got.err, where
    assert got.code == case.code, where
    if case.code == USAGE and not case.message:
        # click's usage error: the usage line, a hint, and one "Error:" line
        assert got.err.startswith("Usage: hlplay"), where
        assert got.err.rstrip("\n").splitlines()[-1].startswith("Error: "), where
        return
    lines = got.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), where
    assert re.search(case.message, lines[0]), where
    assert got.out == "", where


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("confirm_timeout=1e309", "confirm_timeout must be a number of seconds from 0 to 3600"),
        ('{"confirm_timeout": 1e309}', "confirm_timeout must be a number of seconds"),
        ("confirm_timeout=nan", "confirm_timeout must be a number of seconds"),
        ("confirm_timeout=3601", "confirm_timeout must be a number of seconds"),
        ('{"report_dir": ["x"]}', r'report_dir must be a directory path, got \[\\"x\\"\]'),
        ('{"report_dir": ""}', "report_dir must be a directory path"),
    ],
    ids=["inf", "inf-json", "nan", "too-long", "report-dir-list", "report-dir-empty"],
)
def test_deploy_all_refuses_bad_extra_vars_first(tmp_path: Path, extra: str, message: str) -> None:
    """The prerequisites refuse them before any git command or host: one ``fatal`` line."""
    (tmp_path / "inv.yml").write_text(INVENTORY)
    got = _run(tmp_path, ("deploy-all.yml", *INV, "-e", extra))
    where = f"stdout: {got.out!r}\nstderr: {got.err!r}"
    assert got.elapsed < HANG, where
    assert got.code == 2, where
    assert "Traceback" not in got.err + got.out, where
    fatal = [ln for ln in got.out.splitlines() if ln.startswith("fatal: ")]
    assert len(fatal) == 1 and re.search(message, fatal[0]), where
    assert json.loads(fatal[0].split(" => ", 1)[1])["assertion"], where
    assert "TASK [The configuration repository is committed]" not in got.out, where
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inv.yml"], "nothing is written"


def test_version() -> None:
    got = _run(Path.cwd(), ("--version",))
    assert (got.code, got.out, got.err) == (0, f"hlplay, version {__version__}\n", "")
