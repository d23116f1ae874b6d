"""Download everything (UK GDPR Art. 15 and 20): one zip a young person can keep.

Contents::

    data.json            everything, machine-readable
    index.html           the same, readable in any browser, offline, no scripts
    photos/<id>.<ext>    story photos
    audit/audit.json     this vault's audit log and its signed head
    audit/public_key.pem the Ed25519 key that signed the head
    audit/verify.py      the checker: python verify.py audit.json public_key.pem
    README.txt           what all this is, in plain words
"""

from __future__ import annotations

import inspect
import io
import json
import zipfile
from typing import Any

from jinja2 import Environment, select_autoescape
from sqlmodel import Session

from vault import audit, chain, service
from vault import repository as repo
from vault.actors import Actor
from vault.db_types import utcnow
from vault.models import Vault, YoungPerson
from vault.repository import VaultScope
from vault.vocabulary import CATEGORY_LABELS

PHOTO_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}

README = """\
Your Storykeep download
=======================

This folder has everything Storykeep keeps about you.

- index.html: open this in a web browser to read it all.
- data.json: the same things, in a form other apps can read.
- photos/: the photos from your story.
- audit/: the list of everyone who has done something with your vault.
  It is locked with a digital signature, so nobody can change it without it showing.
  To check it, someone with Python can run:
      python audit/verify.py audit/audit.json audit/public_key.pem
"""

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Storykeep: everything for {{ username }}</title></head>
<body>
<h1>Everything Storykeep keeps for {{ username }}</h1>
<p>Downloaded {{ exported_at }}.</p>
<h2>My story</h2>
{% for e in story %}<article><h3>{{ e.title }}</h3>
<p>{{ "Shared when I say yes" if e.shareable else "Private: only me" }} ·
written {{ e.created_at }}</p>
{% if e.photo %}
<p><img src="{{ e.photo }}" alt="Photo for {{ e.title }}" width="320"></p>
{% endif %}
<p>{{ e.body }}</p></article>
{% else %}<p>No story entries.</p>{% endfor %}
<h2>Records about me</h2>
{% for r in records %}<article><h3>{{ r.title }}</h3>
<p>{{ r.agency }}, {{ r.author_name }} ({{ r.author_role }}) ·
{{ labels.get(r.category, r.category) }} · {{ r.occurred_at }}</p>
<p>{{ r.body }}</p>
{% for n in r.notes %}
<blockquote><p>My view ({{ n.created_at }}): {{ n.body }}</p></blockquote>
{% endfor %}
{% for c in r.corrections %}
<blockquote><p>I asked for a change ({{ c.created_at }}, {{ c.status }}):
{{ c.body }}</p>
{% if c.decline_reason %}<p>Why they said no: {{ c.decline_reason }}</p>{% endif %}
{% if c.statement %}<p>My statement, which goes with the record ({{ c.statement_at }}):
{{ c.statement }}</p>{% endif %}
</blockquote>
{% endfor %}
{% for v in r.history if v.replaced_at %}
<details><summary>Earlier version {{ v.version }}
({{ v.written_at }} to {{ v.replaced_at }})</summary>
<p>{{ v.title }}</p><p>{{ v.body }}</p></details>
{% endfor %}
</article>{% else %}<p>No records.</p>{% endfor %}
<h2>Who has done what</h2>
<ol>{% for ev in audit_events %}<li>{{ ev.occurred_at }}: {{ ev.description }}</li>{% endfor %}</ol>
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def build(
    session: Session,
    services: service.VaultServices,
    actor: Actor,
    person: YoungPerson,
    vault: Vault,
) -> bytes:
    """Build the zip. The export itself is logged first, so it appears in its own log."""
    audit.append(
        session,
        services.keyring.provider,
        vault.id.hex,
        actor,
        "vault:exported",
        object_type="vault",
        object_id=vault.id.hex,
    )
    scope = VaultScope.owner(vault.id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        story: list[dict[str, Any]] = []
        for entry in service.list_entries(session, services, actor, scope):
            item = json.loads(entry.model_dump_json())
            if entry.has_photo:
                content_type, photo = service.get_photo(session, services, actor, scope, entry.id)
                name = f"photos/{entry.id}.{PHOTO_EXT.get(content_type, 'bin')}"
                zf.writestr(name, photo)
                item["photo"] = name
            story.append(item)
        records = []
        for record in service.list_records(session, services, actor, scope):
            item = json.loads(record.model_dump_json())
            # Requests to correct it (UK GDPR Article 16) are the young person's data too.
            item["corrections"] = [
                json.loads(c.model_dump_json())
                for c in service.list_corrections(session, services, actor, vault, record.id)
            ]
            # Every version, newest first, and the statements (already on the record).
            history = service.record_history(session, services, actor, vault, record.id)
            item["history"] = json.loads(history.model_dump_json())["versions"]
            records.append(item)
        events = list(repo.audit_events_in_order(session, vault.id.hex))
        head = repo.get_audit_head(session, vault.id.hex)
        exported_at = utcnow().isoformat()
        everything = {
            "format": "storykeep-export/1",
            "exported_at": exported_at,
            "account": {"username": person.username, "created_at": person.created_at.isoformat()},
            "vault_id": vault.id.hex,
            "story": story,
            "records": records,
        }
        zf.writestr("data.json", json.dumps(everything, indent=2, ensure_ascii=False))
        zf.writestr(
            "audit/audit.json",
            json.dumps(
                {
                    "chain": vault.id.hex,
                    "events": [audit.event_fields(e) for e in events],
                    "head": audit.head_fields(head) if head else None,
                },
                indent=2,
            ),
        )
        zf.writestr("audit/public_key.pem", services.keyring.provider.public_key_pem())
        zf.writestr("audit/verify.py", inspect.getsource(chain))
        zf.writestr("README.txt", README)
        html = _env.from_string(_HTML).render(
            username=person.username,
            exported_at=exported_at,
            story=story,
            records=records,
            labels=CATEGORY_LABELS,
            audit_events=[
                {"occurred_at": e.occurred_at.isoformat(), "description": service.describe(e)}
                for e in events
            ],
        )
        zf.writestr("index.html", html)
    return buffer.getvalue()
