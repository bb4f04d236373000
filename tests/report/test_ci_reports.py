"""JUnit XML and GitHub Actions annotations, from a real run through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET


def test_junit_and_github_annotations(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(
        "hosts:\n  a: {tier: test, transport: local}\n  b: {tier: test, transport: local}\n"
    )
    (tmp_path / "site.yml").write_text(
        textwrap.dedent(
            """
            - name: ci play
              hosts: all
              tasks:
                - name: check
                  command: "{{ '/bin/false' if inventory_hostname == 'b' else '/bin/true' }}"
                - name: skipped
                  debug: msg=x
                  when: false
            """
        )
    )
    env = dict(os.environ, GITHUB_ACTIONS="true", HLPLAY_NO_COLOR="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hlplay.cli.main",
            "site.yml",
            "-i",
            "inv.yml",
            "--junit-xml",
            "out/junit.xml",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert (
        "::error file=site.yml,line=5,title=check%3A b failed::non-zero return code" in proc.stdout
    )
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    assert root.get("tests") == "3" and root.get("failures") == "1"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "ci play"
    failed = [c for c in suite if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("ci play.b", "check")]
    assert root.get("skipped") == "1"
