"""seal the young person's reason for declining an access request

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:00:00.000000

``access_request.decline_reason`` kept the young person's own words in clear, so they
were in every copy of the database and outlived erasure's crypto-shredding (SECURITY.md).
They move to ``decline_reason_sealed``, sealed with the vault's data key exactly as
``grants.service.decline`` now seals new ones (the associated data binds vault, table,
row, field and version: the same FieldContext, written out here so this step never
changes under later code).

Sealing needs the keys, which Alembic alone does not have: ``storykeep db upgrade``
passes an opener (``app.migrate.upgrade(open_keys=...)``), and without one the key file
named by the settings is used. The keys are opened only when there are reasons to
seal, so a new database, or one nobody ever declined with a reason, needs none. Every
key is unwrapped and every reason sealed before the first change to the schema, so
missing or wrong keys stop the upgrade with an error and change nothing.

A reason whose vault was already erased cannot be sealed (its key is gone) and is not
kept: the young person asked for it to be erased, and it should have gone then. The
downgrade opens the sealed reasons back into the plain column, with the same rules.
"""

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlmodel.sql.sqltypes import AutoString

from app.settings import Settings
from vault.crypto import DataKey, FieldContext, open_sealed, read_header, seal
from vault.errors import KeyUnavailable, StorykeepError
from vault.keys import KeyProvider, LocalKeyFileProvider, WrappedKey

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

_request = sa.table(
    "access_request",
    sa.column("id", sa.Uuid()),
    sa.column("vault_id", sa.Uuid()),
    sa.column("decline_reason", sa.String()),
    sa.column("decline_reason_sealed", sa.LargeBinary()),
)
_vault = sa.table("vault", sa.column("id", sa.Uuid()), sa.column("erased_at"))
_data_key = sa.table(
    "vault_data_key",
    sa.column("id", sa.Uuid()),
    sa.column("vault_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("kek_version", sa.Integer()),
    sa.column("wrapped_key", sa.LargeBinary()),
)


def _context(vault_id: uuid.UUID, request_id: uuid.UUID) -> FieldContext:
    return FieldContext(vault_id, "access_request", request_id, "decline_reason", 1)


def _open_keys() -> KeyProvider:
    opener = context.config.attributes.get("open_keys")
    if opener is not None:
        provider: KeyProvider = opener()
        return provider
    return LocalKeyFileProvider(Settings().resolved_key_file).load_existing()


def _rows(column: Any) -> list[Any]:
    """Every request with something in ``column``, and whether its vault was erased."""
    query = (
        sa.select(
            _request.c.id,
            _request.c.vault_id,
            column.label("value"),
            _vault.c.erased_at.is_not(None).label("erased"),
        )
        .join(_vault, _vault.c.id == _request.c.vault_id)
        .where(column.is_not(None))
    )
    return list(op.get_bind().execute(query))


def _cannot(vault_id: uuid.UUID, why: str) -> KeyUnavailable:
    return KeyUnavailable(
        f"Vault {vault_id.hex}'s key {why}, so the reasons for declining requests could "
        "not be moved. Nothing was changed. Check that the key file is this database's."
    )


def _vault_keys(vault_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[uuid.UUID, DataKey]]:
    """Each live (not erased) vault's data keys, unwrapped; every one must open."""
    ids = sorted(set(vault_ids))
    if not ids:
        return {}
    provider = _open_keys()
    keys: dict[uuid.UUID, dict[uuid.UUID, DataKey]] = {}
    for row in op.get_bind().execute(sa.select(_data_key).where(_data_key.c.vault_id.in_(ids))):
        try:
            material = provider.unwrap_data_key(
                row.vault_id, row.id, WrappedKey(row.kek_version, row.wrapped_key)
            )
        except StorykeepError as exc:
            raise _cannot(row.vault_id, f"could not be opened ({exc.message})") from exc
        keys.setdefault(row.vault_id, {})[row.id] = DataKey(row.id, row.version, material)
    for vault_id in ids:
        if vault_id not in keys:
            raise _cannot(vault_id, "is missing, though the vault was not erased")
    return keys


def _drop_column(name: str) -> None:
    """``ALTER TABLE ... DROP COLUMN`` itself (SQLite 3.35 and later), never batch mode's
    copy of the table: with foreign keys on, that copy's DROP TABLE cascades to every
    grant made from a request (and the grants' tokens)."""
    op.drop_column("access_request", name)


def upgrade() -> None:
    rows = _rows(_request.c.decline_reason)
    keys = _vault_keys(r.vault_id for r in rows if not r.erased)
    changes = []
    for row in rows:
        ciphertext = None  # an erased vault's reason is not kept
        if not row.erased:  # the newest data key, as Keyring.current_key would give
            current = max(keys[row.vault_id].values(), key=lambda k: k.version)
            ciphertext = seal(current, _context(row.vault_id, row.id), row.value.encode())
        changes.append({"row_id": row.id, "sealed": ciphertext})
    # Only now, with every reason sealed, change anything.
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decline_reason_sealed", sa.LargeBinary(), nullable=True))
    if changes:
        # The plain value is emptied too: PostgreSQL's DROP COLUMN leaves the values in
        # the rows, and app.migrate.upgrade rewrites the table to clear the old versions.
        op.get_bind().execute(
            _request.update()
            .where(_request.c.id == sa.bindparam("row_id"))
            .values(decline_reason_sealed=sa.bindparam("sealed"), decline_reason=None),
            changes,
        )
        context.config.attributes.setdefault("scrub", set()).add("access_request")
    _drop_column("decline_reason")
    kept = sum(1 for change in changes if change["sealed"] is not None)
    log.info(
        "Sealed %d reasons for declining; %d of erased vaults not kept.", kept, len(rows) - kept
    )


def downgrade() -> None:
    rows = _rows(_request.c.decline_reason_sealed)
    keys = _vault_keys(r.vault_id for r in rows if not r.erased)
    opened = []
    for row in rows:
        if not row.erased:
            key = keys[row.vault_id].get(read_header(row.value).key_id)
            if key is None:
                raise _cannot(row.vault_id, "that sealed a reason is missing")
            text = open_sealed(key, _context(row.vault_id, row.id), row.value).decode()
            opened.append({"row_id": row.id, "reason": text})
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decline_reason", AutoString(length=500), nullable=True))
    if opened:
        op.get_bind().execute(
            _request.update()
            .where(_request.c.id == sa.bindparam("row_id"))
            .values(decline_reason=sa.bindparam("reason")),
            opened,
        )
    _drop_column("decline_reason_sealed")
