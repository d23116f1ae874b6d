"""The audit chain: tampering is found by `storykeep audit verify` and by the offline
checker shipped in every export."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from app import cli as cli_module
from app.container import Services
from app.db import unit_of_work
from tests.conftest import run_sql
from vault import audit
from vault import chain as chainlib
from vault import repository as vault_repo
from vault.actors import Actor


def verify(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify", *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def chain_of_six(client: TestClient, csrf: str, services: Services) -> str:
    """Alex's vault with six events: vault:created and five entry:created."""
    for i in range(5):
        client.post("/api/v1/me/entries", json={"title": f"t{i}"}, headers={"X-CSRF-Token": csrf})
    (chain,) = run_sql(services, "SELECT chain FROM audit_head")[0]
    return str(chain)


class TestVerify:
    def test_intact_log_passes(self, chain_of_six: str, env: dict[str, str]) -> None:
        result = verify(env)
        assert result.returncode == 0, result.stderr
        assert "OK: 1 chains intact" in result.stdout

    def test_edited_entry_is_named(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "UPDATE audit_event SET actor_label = 'someone else' WHERE seq = 3")
        result = verify(env)
        assert result.returncode == 1
        assert "seq=3" in result.stderr and "edited" in result.stderr

    def test_removed_entry_is_named(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "DELETE FROM audit_event WHERE seq = 4")
        result = verify(env)
        assert result.returncode == 1
        assert "seq=5" in result.stderr and "removed" in result.stderr

    def test_removed_and_renumbered_is_still_found(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "DELETE FROM audit_event WHERE seq = 2")
        for seq in range(3, 7):
            run_sql(
                services, "UPDATE audit_event SET seq = :new WHERE seq = :old", new=seq - 1, old=seq
            )
        result = verify(env)
        assert result.returncode == 1 and "seq=2" in result.stderr and "removed" in result.stderr

    def test_reordered_entries_are_named(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "UPDATE audit_event SET seq = -1 WHERE seq = 2")
        run_sql(services, "UPDATE audit_event SET seq = 2 WHERE seq = 3")
        run_sql(services, "UPDATE audit_event SET seq = 3 WHERE seq = -1")
        result = verify(env)
        assert result.returncode == 1
        assert "seq=2" in result.stderr and "reordered" in result.stderr

    def test_cut_off_tail_is_found(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "DELETE FROM audit_event WHERE seq = 6")
        result = verify(env)
        assert result.returncode == 1 and "seq=6" in result.stderr and "removed" in result.stderr

    def test_forged_head_is_found(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "UPDATE audit_head SET signature = :sig", sig="00" * 64)
        result = verify(env)
        assert result.returncode == 1 and "bad signature" in result.stderr


class TestMissingChains:
    """Every vault gets its chain (``vault:created`` and a signed head) in the transaction
    that makes it, and keeps it after erasure, so a vault without one lost it."""

    def test_fresh_database_passes(self, services: Services, env: dict[str, str]) -> None:
        result = verify(env)
        assert result.returncode == 0, result.stderr
        assert "OK: 0 chains intact" in result.stdout

    def test_whole_chain_deleted_is_named(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "DELETE FROM audit_event WHERE chain = :c", c=chain_of_six)
        run_sql(services, "DELETE FROM audit_head WHERE chain = :c", c=chain_of_six)
        result = verify(env)
        assert result.returncode == 1
        assert f"chain {chain_of_six} (vault {uuid.UUID(chain_of_six)})" in result.stderr
        assert "whole chain: missing" in result.stderr
        assert "FAILED: 1 of 1 chains" in result.stderr

    def test_only_the_damaged_vault_is_named(
        self, chain_of_six: str, client: TestClient, services: Services, env: dict[str, str]
    ) -> None:
        client.cookies.clear()
        client.post("/api/v1/accounts", json={"username": "sam", "password": "x" * 12})
        chains = {str(row[0]) for row in run_sql(services, "SELECT chain FROM audit_head")}
        (sams,) = chains - {chain_of_six}
        run_sql(services, "DELETE FROM audit_event WHERE chain = :c", c=sams)
        run_sql(services, "DELETE FROM audit_head WHERE chain = :c", c=sams)
        result = verify(env)
        assert result.returncode == 1
        assert f"chain {sams} " in result.stderr and chain_of_six not in result.stderr
        assert "FAILED: 1 of 2 chains" in result.stderr

    def test_head_deleted_is_found(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "DELETE FROM audit_head WHERE chain = :c", c=chain_of_six)
        result = verify(env)
        assert result.returncode == 1
        assert "chain head: missing: the chain has entries but no signed head" in result.stderr

    def test_every_entry_deleted_is_found(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        run_sql(services, "DELETE FROM audit_event WHERE chain = :c", c=chain_of_six)
        result = verify(env)
        assert result.returncode == 1
        assert "seq=1: removed" in result.stderr and "the log has 0" in result.stderr

    def test_head_put_back_to_the_start_with_no_entries_is_found(
        self, chain_of_six: str, services: Services, env: dict[str, str]
    ) -> None:
        """A head at seq 0 is only ever seen inside the transaction that adds the first
        entry. Signed here with the real key, as a head saved from that moment would be."""
        genesis = chainlib.genesis_hash(chain_of_six)
        signature = services.keys.sign(chainlib.head_message(chain_of_six, 0, genesis)).hex()
        run_sql(services, "DELETE FROM audit_event WHERE chain = :c", c=chain_of_six)
        run_sql(
            services,
            "UPDATE audit_head SET seq = 0, entry_hash = :h, signature = :s WHERE chain = :c",
            h=genesis, s=signature, c=chain_of_six,
        )  # fmt: skip
        result = verify(env)
        assert result.returncode == 1
        assert "missing: the chain has a signed head but no entries" in result.stderr

    def test_erased_vault_keeps_its_chain_and_losing_it_is_found(
        self, client: TestClient, csrf: str, services: Services, env: dict[str, str]
    ) -> None:
        assert client.delete("/api/v1/me", headers={"X-CSRF-Token": csrf}).status_code == 204
        passed = verify(env)
        assert passed.returncode == 0, passed.stderr
        assert "OK: 1 chains intact" in passed.stdout
        run_sql(services, "DELETE FROM audit_event")
        run_sql(services, "DELETE FROM audit_head")
        failed = verify(env)
        assert failed.returncode == 1 and "whole chain: missing" in failed.stderr


class TestOfflineExport:
    def test_export_verifies_offline_and_tampering_shows(
        self, client: TestClient, csrf: str, tmp_path: Path, env: dict[str, str]
    ) -> None:
        client.post("/api/v1/me/entries", json={"title": "one"}, headers={"X-CSRF-Token": csrf})
        archive = client.get("/api/v1/me/export").content
        zipfile.ZipFile(io.BytesIO(archive)).extractall(tmp_path / "export")
        folder = tmp_path / "export" / "audit"
        # The shipped checker runs with nothing from Storykeep on the path.
        ok = subprocess.run(
            [sys.executable, "-I", "verify.py", "audit.json", "public_key.pem"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "Intact: 3 entries" in ok.stdout
        (tmp_path / "export.zip").write_bytes(archive)
        assert verify(env, "--export", str(tmp_path / "export.zip")).returncode == 0

        doc = (folder / "audit.json").read_text().replace('"entry:created"', '"entry:deleted"')
        (folder / "audit.json").write_text(doc)
        bad = subprocess.run(
            [sys.executable, "-I", "verify.py", "audit.json", "public_key.pem"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        assert bad.returncode == 1 and "seq=2" in bad.stdout and "edited" in bad.stdout

    def test_export_re_signed_with_another_key_is_refused(
        self, client: TestClient, csrf: str, services: Services, tmp_path: Path,
        env: dict[str, str],
    ) -> None:  # fmt: skip
        """Edit the log, re-hash the chain, sign the head with a key of one's own and put
        that key in the zip: the checker alone then says intact, so the server must check
        against its own key, not the one in the zip."""
        client.post("/api/v1/me/entries", json={"title": "one"}, headers={"X-CSRF-Token": csrf})
        genuine = tmp_path / "genuine.zip"
        genuine.write_bytes(client.get("/api/v1/me/export").content)
        passed = verify(env, "--export", str(genuine))
        assert passed.returncode == 0, passed.stderr
        assert "signed head verified with this server's key" in passed.stdout

        forger = Ed25519PrivateKey.generate()
        forged_pem = forger.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with zipfile.ZipFile(genuine) as zf:
            files = {name: zf.read(name) for name in zf.namelist()}
        doc = json.loads(files["audit/audit.json"])
        prev = chainlib.genesis_hash(doc["chain"])
        for event in doc["events"]:
            event["actor_label"] = "nobody"  # who really did it is gone
            event["prev_hash"], event["entry_hash"] = prev, chainlib.entry_hash(prev, event)
            prev = event["entry_hash"]
        doc["head"]["entry_hash"] = prev
        message = chainlib.head_message(doc["chain"], doc["head"]["seq"], prev)
        doc["head"]["signature"] = forger.sign(message).hex()
        files["audit/audit.json"] = json.dumps(doc).encode()
        files["audit/public_key.pem"] = forged_pem
        forged = tmp_path / "forged.zip"
        with zipfile.ZipFile(forged, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)

        # The forgery is self-consistent: the shipped checker with the zip's key passes.
        folder = tmp_path / "forged"
        zipfile.ZipFile(forged).extractall(folder)
        selfcheck = subprocess.run(
            [sys.executable, "-I", "verify.py", "audit.json", "public_key.pem"],
            cwd=folder / "audit", capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert selfcheck.returncode == 0, selfcheck.stdout
        # Offline with the server's real key (as a third party would get it), it fails.
        (tmp_path / "server.pem").write_bytes(services.keys.public_key_pem())
        offline = subprocess.run(
            [sys.executable, "-I", "verify.py", "audit.json", str(tmp_path / "server.pem")],
            cwd=folder / "audit", capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert offline.returncode == 1 and "bad signature" in offline.stdout

        refused = verify(env, "--export", str(forged))
        assert refused.returncode == 1
        assert "NOT signed by this server" in refused.stderr
        assert "not this server's audit key" in refused.stderr
        assert "OK" not in refused.stdout

    def test_not_an_export(self, tmp_path: Path, env: dict[str, str]) -> None:
        fake = tmp_path / "fake.zip"
        fake.write_bytes(b"not a zip")
        result = verify(env, "--export", str(fake))
        assert result.returncode == 1 and "not a Storykeep export" in result.stderr

    @pytest.mark.parametrize(
        "damage",
        ["events not a list", "an entry not an object", "seq as text", "head as a list",
         "chain as a number", "nested too deeply"],
    )  # fmt: skip
    def test_a_malformed_log_is_reported_not_a_crash(
        self, client: TestClient, csrf: str, tmp_path: Path, env: dict[str, str], damage: str
    ) -> None:
        """A log edited by hand: the CLI and the shipped verify.py both say what is wrong
        and fail, without a traceback."""
        client.post("/api/v1/me/entries", json={"title": "one"}, headers={"X-CSRF-Token": csrf})
        with zipfile.ZipFile(io.BytesIO(client.get("/api/v1/me/export").content)) as zf:
            files = {name: zf.read(name) for name in zf.namelist()}
        doc = json.loads(files["audit/audit.json"])
        if damage == "events not a list":
            doc["events"] = {"1": doc["events"][0]}
        elif damage == "an entry not an object":
            doc["events"][1] = 7
        elif damage == "seq as text":
            doc["events"][0]["seq"] = "1"
        elif damage == "head as a list":
            doc["head"] = [doc["head"]]
        elif damage == "chain as a number":
            doc["chain"] = 7
        text = json.dumps(doc) if damage != "nested too deeply" else "[" * 5000
        files["audit/audit.json"] = text.encode()
        damaged = tmp_path / "damaged.zip"
        with zipfile.ZipFile(damaged, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        result = verify(env, "--export", str(damaged))
        assert result.returncode == 1 and "OK" not in result.stdout
        assert "Traceback" not in result.stderr
        assert "malformed" in result.stderr or "not a Storykeep export" in result.stderr
        zipfile.ZipFile(damaged).extractall(tmp_path / "damaged")
        offline = subprocess.run(
            [sys.executable, "-I", "verify.py", "audit.json", "public_key.pem"],
            cwd=tmp_path / "damaged" / "audit", capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert offline.returncode in (1, 2) and "Traceback" not in offline.stderr
        assert "Intact" not in offline.stdout


class TestConcurrentAppends:
    def test_parallel_appends_form_one_chain(self, services: Services, env: dict[str, str]) -> None:
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                for i in range(10):
                    for session in unit_of_work(services.engine):
                        audit.append(
                            session,
                            services.keys,
                            "shared-chain",
                            Actor.operator(),
                            "test:append",
                            object_id=f"{n}-{i}",
                        )
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        seqs = sorted(
            row[0]
            for row in run_sql(services, "SELECT seq FROM audit_event WHERE chain = 'shared-chain'")
        )
        assert seqs == list(range(1, 41))
        assert verify(env).returncode == 0


class TestVerifyWhileTheAppAppends:
    def test_verify_sees_one_moment_and_holds_up_no_writer(
        self, services: Services, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`storykeep audit verify` (run in-process, so the moment can be chosen) reads a
        chain's entries, then its head. Another transaction appends to that chain and
        commits right between the two reads. Verify must still pass: it sees the log as
        it was when it started. Read committed, the new head would not match the entries
        read (PostgreSQL); BEGIN IMMEDIATE would make the append wait for the whole
        check (SQLite), and here fail once the busy timeout ran out."""
        for i in range(3):
            for session in unit_of_work(services.engine):
                audit.append(session, services.keys, "busy-chain", Actor.operator(), "t:x",
                             object_id=str(i))  # fmt: skip
        real_head = vault_repo.get_audit_head
        appended: list[int] = []

        def append_then_read_head(session: Session, chain: str) -> object:
            if chain == "busy-chain" and not appended:
                for other in unit_of_work(services.engine):
                    appended.append(
                        audit.append(other, services.keys, chain, Actor.operator(), "t:x")
                    )
            return real_head(session, chain)

        monkeypatch.setattr(vault_repo, "get_audit_head", append_then_read_head)
        # The test's own services (engine, keys): the command's would outlive it unclosed.
        monkeypatch.setattr(cli_module, "_services", lambda: services)
        result = CliRunner().invoke(cli_module.cli, ["audit", "verify"])
        assert appended == [4]  # the append landed while verify was reading
        assert result.exit_code == 0, result.output
        assert "OK: 1 chains intact" in result.output
        monkeypatch.undo()
        assert verify(env).returncode == 0  # and with the new entry, afterwards


class TestKnownHeads:
    """An append first tries the head this process last wrote (a compare-and-swap). When
    that guess is wrong, it must append after the real head, and change nothing else."""

    def _append(self, services: Services, chain: str, label: str) -> int:
        for session in unit_of_work(services.engine):
            seq = audit.append(
                session, services.keys, chain, Actor.operator(), "test:append", object_id=label
            )
        return seq

    def _seqs(self, services: Services, chain: str) -> list[int]:
        rows = run_sql(services, "SELECT seq FROM audit_event WHERE chain = :c", c=chain)
        return sorted(row[0] for row in rows)

    def test_after_a_rolled_back_append(self, services: Services, env: dict[str, str]) -> None:
        self._append(services, "cas-rollback", "first")
        with services.engine.connect() as conn, Session(bind=conn) as session:
            audit.append(session, services.keys, "cas-rollback", Actor.operator(), "x:y")
            session.rollback()  # the transaction fails after its append
        # This process now believes seq 2 is the head; the database still says 1.
        assert audit._known_heads["cas-rollback"][0] == 2
        assert self._append(services, "cas-rollback", "second") == 2
        assert self._seqs(services, "cas-rollback") == [1, 2]
        assert verify(env).returncode == 0

    def test_after_another_process_appended(self, services: Services, env: dict[str, str]) -> None:
        self._append(services, "cas-other", "ours")
        stale = audit._known_heads["cas-other"]
        self._append(services, "cas-other", "theirs")
        audit._known_heads["cas-other"] = stale  # as if another process wrote "theirs"
        assert self._append(services, "cas-other", "ours again") == 3
        assert self._seqs(services, "cas-other") == [1, 2, 3]
        assert verify(env).returncode == 0

    def test_after_the_head_was_tampered_with(
        self, services: Services, env: dict[str, str]
    ) -> None:
        """A head changed behind our back is not overwritten by a guess: the append
        follows what the database holds, and verification still sees the tampering."""
        self._append(services, "cas-tamper", "one")
        run_sql(services, "UPDATE audit_head SET entry_hash = :h WHERE chain = 'cas-tamper'",
                h="0" * 64)  # fmt: skip
        self._append(services, "cas-tamper", "two")
        (prev,) = run_sql(
            services, "SELECT prev_hash FROM audit_event WHERE chain = 'cas-tamper' AND seq = 2"
        )[0]
        assert prev == "0" * 64
        assert verify(env).returncode == 1
