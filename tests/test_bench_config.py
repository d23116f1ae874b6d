"""`make bench` writes docs/benchmarks.md only for the run the issue asks for: a look at
fewer requests, databases or connection counts, at less data, or under a profiler goes
into the run's own temporary directory, so a quick look never replaces the record."""

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
