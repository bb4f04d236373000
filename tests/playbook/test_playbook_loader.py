"""Loading playbooks: every mistake is one line naming file:line:col, before anything runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hlplay.errors import PlaybookError
from hlplay.playbook.loader import load_playbook
from hlplay.playbook.model import Block, Task


def load(tmp_path: Path, text: str, name: str = "pb.yml") -> object:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_playbook(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(PlaybookError) as info:
        load(tmp_path, text)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """
            - hosts: all
              taks: []
            """,
            "pb.yml:2:3: unknown play keyword 'taks' (did you mean 'tasks'",
        ),
        (
            """
            - hosts: all
              tasks:
                - command: ls
                  wehn: x
            """,
            "pb.yml:4:7: unknown task keyword 'wehn' (did you mean 'when'?)",
        ),
        (
            """
            - hosts: all
              tasks:
                - comand: ls
            """,
            "pb.yml:3:7: unknown module 'comand' (did you mean 'command'?)",
        ),
        (
            """
            - hosts: all
              tasks:
                - name: nothing to do
            """,
            "pb.yml:3:7: task has no action",
        ),
        (
            """
            - hosts: all
              tasks:
                - wait_for:
                    port: 22
                    stat: started
            """,
            "pb.yml:5:9: unknown argument 'stat' for module 'wait_for' (did you mean 'state'?)",
        ),
        (
            """
            - hosts: all
              tasks:
                - wait_for: {port: twenty}
            """,
            "pb.yml:3:18: argument 'port' must be of type int, got 'twenty'",
        ),
        (
            """
            - hosts: all
              tasks:
                - wait_for: {port: 22, state: gone}
            """,
            "argument 'state' must be one of started, stopped, present, absent, got 'gone'",
        ),
        (
            """
            - hosts: all
              tasks:
                - assert: {}
            """,
            "pb.yml:3:7: module 'assert' requires argument 'that'",
        ),
        (
            """
            - hosts: all
              tasks:
                - debug:
                    msg: "{{ x }"
            """,
            "pb.yml:4:9: template syntax error in '{{ x }'",
        ),
        (
            """
            - hosts: all
              tasks:
                - debug: {msg: x}
                  when: "a ==="
            """,
            "pb.yml:4:7: syntax error in when condition 'a ==='",
        ),
        (
            """
            - hosts: all
              tasks:
                - command: ls
                  notify: restart nginx
              handlers:
                - name: restart ngnix
                  command: ls
            """,
            "pb.yml:3:7: notify: no handler named 'restart nginx' in this play "
            "(did you mean 'restart ngnix'?)",
        ),
        (
            """
            - hosts: all
              serial: lots
            """,
            "pb.yml:2:3: serial must be a number",
        ),
        (
            """
            - hosts: all
              strategy: lineer
            """,
            "pb.yml:2:3: unknown strategy 'lineer' (did you mean 'linear'?)",
        ),
        (
            """
            - tasks: []
            """,
            "pb.yml:1:3: a play needs 'hosts:'",
        ),
        (
            """
            - hosts: all
              roles: [web]
            """,
            "pb.yml:2:3: roles are not supported",
        ),
        (
            """
            - hosts: all
              tasks:
                - block:
                    - debug: {msg: x}
                  loop: [1]
            """,
            "pb.yml:5:7: 'loop' cannot be used on a block",
        ),
        (
            """
            - hosts: all
              tasks:
                - command: ls
                  debug: {msg: x}
            """,
            "a task can have only one action, found 'command' and 'debug'",
        ),
        (
            """
            - hosts: all
              tasks:
                - debug: {msg: x}
                  loop_control: {label: x}
            """,
            "'loop_control' without a loop",
        ),
        (
            """
            hosts: all
            """,
            "pb.yml:1:1: a playbook must be a list of plays",
        ),
        (
            """
            - hosts: all
              tasks:
                - debug: msg=x
                  retries: many
            """,
            "'retries' must be a non-negative number",
        ),
        (
            """
            - hosts: all
              tasks:
                - wait_for: {port: 99999}
            """,
            "pb.yml:3:7: argument 'port' must be a port number (1-65535), got 99999",
        ),
        (
            """
            - hosts: all
              tasks:
                - wait_for: {port: 22, path: /run/x}
            """,
            "pb.yml:3:7: 'port' and 'path' are mutually exclusive",
        ),
        (
            """
            - hosts: all
              tasks:
                - wait_for: {path: /run/x, search_regex: "("}
            """,
            "search_regex '(' is not a valid regex",
        ),
        (
            """
            - hosts: all
              tasks:
                - command: [ls, -l]
            """,
            "arguments of 'command' must be a string or a mapping, got a list",
        ),
        (
            """
            - hosts: all
              tags: {a: 1}
            """,
            "'tags' must be a string or a list of strings, got a mapping",
        ),
    ],
)
def test_load_errors_name_the_place(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error(tmp_path, text)


@pytest.mark.parametrize("text", ["", "[]\n", "# nothing yet\n"])
def test_a_playbook_without_plays_is_an_error(tmp_path: Path, text: str) -> None:
    # ansible-playbook refuses an empty playbook too: "success" would hide a mistake
    assert error(tmp_path, text) == f"{tmp_path / 'pb.yml'}: the playbook has no plays"


def test_bad_yaml_is_located(tmp_path: Path) -> None:
    msg = error(tmp_path, "- hosts: all\n  tasks: [\n")
    assert msg.startswith(f"{tmp_path / 'pb.yml'}:") and "invalid YAML" in msg


def test_free_form_and_key_value_arguments(tmp_path: Path) -> None:
    pb = load(
        tmp_path,
        """
        - hosts: all
          tasks:
            - command: ls -l "/tmp/a b" chdir=/srv
            - shell: echo $HOME | tr a-z A-Z
            - debug: msg="hello world" verbosity=1
            - debug: msg=still going on
            - debug: var=hostvars['h3'].tier
            - debug: msg="say \\"hi\\"" verbosity=2
            - ansible.builtin.command:
                argv: [echo, hi]
            - command: make
              args: {chdir: /src}
        """,
    )
    tasks = pb.plays[0].tasks  # type: ignore[attr-defined]
    assert tasks[0].args == {"cmd": 'ls -l "/tmp/a b"', "chdir": "/srv"}
    assert tasks[1].args == {"cmd": "echo $HOME | tr a-z A-Z"}
    assert tasks[2].args == {"msg": "hello world", "verbosity": "1"}
    assert tasks[3].args == {"msg": "still going on"}
    assert tasks[4].args == {"var": "hostvars['h3'].tier"}
    assert tasks[5].args == {"msg": 'say "hi"', "verbosity": "2"}
    assert tasks[6].action == "command" and tasks[6].args == {"argv": ["echo", "hi"]}
    assert tasks[7].args == {"cmd": "make", "chdir": "/src"}


def test_block_keywords_pass_down(tmp_path: Path) -> None:
    pb = load(
        tmp_path,
        """
        - hosts: all
          tags: [play]
          tasks:
            - block:
                - name: inner
                  debug: {msg: x}
                  when: b
                  tags: inner
              when: a
              tags: [blk]
              ignore_errors: true
              vars: {v: 1}
              delegate_to: localhost
        """,
    )
    block = pb.plays[0].tasks[0]  # type: ignore[attr-defined]
    assert isinstance(block, Block)
    inner = block.block[0]
    assert isinstance(inner, Task)
    assert inner.when == ("a", "b")
    assert inner.tags == {"play", "blk", "inner"}
    assert inner.ignore_errors is True
    assert inner.delegate_to == "localhost"
    assert inner.vars_layers[0][0] == {"v": 1}


def test_import_playbook_and_import_tasks(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tasks.yml").write_text("- name: imported\n  debug: {msg: x}\n")
    (tmp_path / "other.yml").write_text(
        "- hosts: all\n  tasks:\n    - import_tasks: sub/tasks.yml\n      tags: [t]\n"
    )
    pb = load(tmp_path, "- import_playbook: other.yml\n- hosts: h1\n  tasks: []\n")
    plays = pb.plays  # type: ignore[attr-defined]
    assert [p.hosts for p in plays] == ["all", "h1"]
    imported = plays[0].tasks[0].block[0]
    assert imported.name == "imported" and imported.tags == {"t"}


def test_import_loops_and_missing_files_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("- import_playbook: b.yml\n")
    (tmp_path / "b.yml").write_text("- import_playbook: a.yml\n")
    with pytest.raises(PlaybookError, match="import_playbook loop"):
        load_playbook(tmp_path / "a.yml")
    assert "imported playbook not found: nope.yml" in error(tmp_path, "- import_playbook: nope.yml")


def test_handlers_listen_and_ansible_prefixes(tmp_path: Path) -> None:
    pb = load(
        tmp_path,
        """
        - hosts: all
          handlers:
            - name: restart web
              listen: [web changed]
              ansible.builtin.debug: {msg: x}
          tasks:
            - command: ls
              notify: web changed
        """,
    )
    play = pb.plays[0]  # type: ignore[attr-defined]
    assert [h.name for h in play.handlers_for("web changed")] == ["restart web"]
