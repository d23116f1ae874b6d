"""`make bench` writes docs/benchmarks.md only for the run the issue asks for: a look at
fewer requests, databases or connection counts, at less data, or under a profiler goes
into the run's own temporary directory, so a quick look never replaces the record. And a
profile under BENCH_PYSPY is summarised even when py-spy garbles a frame."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench import run as bench

NARROWER = [
    {"BENCH_SCENARIOS": "healthz,read"},
    {"BENCH_DATABASES": "sqlite"},
    {"BENCH_CONNECTIONS": "8"},
    {"BENCH_YOUNG_PEOPLE": "200"},
    {"BENCH_RECORDS": "10"},
    {"BENCH_PYSPY": "1"},
]
BENCH_VARIABLES = sorted({name for env in NARROWER for name in env})


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in BENCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_full_run_writes_the_record(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = bench.Config.from_env()
    assert not cfg.partial
    assert bench.doc_path(dataclasses.replace(cfg, tmp=tmp_path)) == bench.DOC


@pytest.mark.parametrize("env", NARROWER, ids=",".join)
def test_a_narrower_run_writes_beside_its_own_files(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    cfg = dataclasses.replace(bench.Config.from_env(), tmp=tmp_path)
    assert cfg.partial
    assert bench.doc_path(cfg) == tmp_path / "benchmarks.md"


def test_more_than_the_issue_asks_is_still_the_record(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("BENCH_CONNECTIONS", "8,64,256")
    clean_env.setenv("BENCH_YOUNG_PEOPLE", "2000")
    cfg = dataclasses.replace(bench.Config.from_env(), tmp=tmp_path)
    assert not cfg.partial
    assert bench.doc_path(cfg) == bench.DOC


def test_a_profile_with_a_garbled_frame_is_still_summarised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """py-spy samples a running process, so a frame name can be garbage holding a newline,
    which leaves a stack line with no sample count: the summary skips it and goes on."""
    profile = tmp_path / "profile-read-8-round1.txt"
    serve = "main (app/cli.py:10);serve (app/cli.py:20)"
    profile.write_text(
        f"{serve};authorize (grants/access.py:140) 3\n"
        f"{serve};Logger.info (logging/__init__.py:1489);\n"  # the garbled frame's newline
        " (\u7ce0:216035824) 1\n"
        f"{serve} 1\n",
        encoding="utf-8",
    )
    bench.summarise_profile(profile)
    out = capsys.readouterr().out
    assert "5 samples (threads not idle), 1 unreadable line(s) skipped" in out
    assert "80.0%  serve (app/cli.py)" in out
    assert "60.0%  authorize (grants/access.py)" in out
