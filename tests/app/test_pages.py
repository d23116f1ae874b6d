"""The plain HTML pages, driven as a browser without JavaScript would: forms and links."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from app.container import Services
from tests.app.test_api import make_session_old, tiny_png
from tests.conftest import PASSWORD, add_record, run_sql, sign_up


def form_token(page: Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def page_sign_up(client: TestClient, username: str = "alex") -> Response:
    page = client.get("/signup")
    response = client.post(
        "/signup",
        data={"username": username, "password": PASSWORD, "csrf_token": form_token(page)},
        follow_redirects=True,
    )
    assert response.status_code == 200 and "My story" in response.text
    return response


class TestSignIn:
    def test_sign_up_in_and_out(self, client: TestClient) -> None:
        story = page_sign_up(client)
        assert 'action="/signout"' in story.text
        out = client.post(
            "/signout", data={"csrf_token": form_token(story)}, follow_redirects=False
        )
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert client.get("/story", follow_redirects=False).headers["location"] == "/signin"
        page = client.get("/signin")
        back = client.post(
            "/signin",
            data={"username": "alex", "password": PASSWORD, "csrf_token": form_token(page)},
        )
        assert back.status_code == 200 and "My story" in back.text

    def test_wrong_password_shows_the_form_again(self, client: TestClient) -> None:
        page_sign_up(client)
        client.cookies.clear()
        page = client.get("/signin")
        wrong = client.post(
            "/signin",
            data={"username": "alex", "password": "wrong-pass", "csrf_token": form_token(page)},
        )
        assert wrong.status_code == 401
        assert "not right" in wrong.text and 'name="password"' in wrong.text

    def test_forms_without_csrf_are_refused(self, client: TestClient, services: Services) -> None:
        client.get("/signup")
        refused = client.post("/signup", data={"username": "alex", "password": PASSWORD})
        assert refused.status_code == 403
        assert run_sql(services, "SELECT count(*) FROM young_person")[0][0] == 0
        page_sign_up(client)
        no_token = client.post("/story", data={"title": "x", "shareable": "no"})
        assert no_token.status_code == 403
        for odd in ("\u00b2", "\u0663", "\U0001f600" * 30):  # not ASCII: no match, no crash
            refused = client.post(
                "/story", data={"title": "x", "shareable": "no", "csrf_token": odd}
            )
            assert refused.status_code == 403, odd
        assert run_sql(services, "SELECT count(*) FROM story_entry")[0][0] == 0

    @pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\\\evil"])
    def test_no_open_redirect(self, client: TestClient, target: str) -> None:
        page_sign_up(client)
        client.cookies.delete("storykeep_session")
        page = client.get("/signin")
        response = client.post(
            "/signin",
            data={
                "username": "alex",
                "password": PASSWORD,
                "csrf_token": form_token(page),
                "next": target,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == "/story"


class TestStoryPages:
    def test_write_edit_photo_and_delete(self, client: TestClient) -> None:
        story = page_sign_up(client)
        token = form_token(story)
        created = client.post(
            "/story",
            data={
                "title": "My <b>day</b>",
                "body": "Went to the park",
                "shareable": "yes",
                "csrf_token": token,
            },
            files={"photo": ("park.png", tiny_png(), "image/png")},
        )
        assert created.status_code == 200
        assert "My &lt;b&gt;day&lt;/b&gt;" in created.text  # escaped, never rendered as HTML
        assert "Shared when you say yes" in created.text
        photo_src = re.search(r'<img src="([^"]+)"', created.text)
        assert photo_src and client.get(photo_src.group(1)).content == tiny_png()
        entry_url = str(created.url)
        edited = client.post(
            entry_url,
            data={
                "title": "My day",
                "body": "Park, then chips",
                "shareable": "no",
                "csrf_token": token,
            },
        )
        assert "Park, then chips" in edited.text and "Private — only you" in edited.text
        deleted = client.post(entry_url + "/delete", data={"csrf_token": token})
        assert "Nothing yet" in deleted.text

    def test_bad_photo_is_refused_and_nothing_saved(
        self, client: TestClient, services: Services
    ) -> None:
        token = form_token(page_sign_up(client))
        response = client.post(
            "/story",
            data={"title": "x", "shareable": "no", "csrf_token": token},
            files={"photo": ("evil.png", b"<html>not a picture</html>", "image/png")},
        )
        assert response.status_code == 415 and "not the kind of picture" in response.text
        assert run_sql(services, "SELECT count(*) FROM story_entry")[0][0] == 0

    def test_other_persons_entry_page(self, client: TestClient) -> None:
        token = form_token(page_sign_up(client, "sam"))
        created = client.post(
            "/story", data={"title": "Sam's", "shareable": "no", "csrf_token": token}
        )
        sams_url = str(created.url).replace("https://testserver", "")
        client.cookies.clear()
        page_sign_up(client, "alex")
        assert client.get(sams_url).status_code == 404


class TestRecordsAndAudit:
    def test_read_record_and_add_my_view(self, client: TestClient, services: Services) -> None:
        token = form_token(page_sign_up(client))
        record_id = add_record(services, "alex", title="Report", body="Alex helps at lunch club.")
        records = client.get("/records")
        assert "Report" in records.text and "Jo Bloggs" in records.text
        record = client.get(f"/records/{record_id}")
        assert "Alex helps at lunch club." in record.text
        with_view = client.post(
            f"/records/{record_id}/notes", data={"body": "I love lunch club", "csrf_token": token}
        )
        assert "I love lunch club" in with_view.text
        audit = client.get("/audit")
        assert "You added your view to &#39;Report&#39; at " in audit.text
        assert "The Storykeep team added a record called &#39;Report&#39; at " in audit.text


class TestAccountPages:
    def test_export_download(self, client: TestClient) -> None:
        page_sign_up(client)
        response = client.get("/account/export")
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"

    def test_old_session_must_sign_in_again_to_export(
        self, client: TestClient, services: Services
    ) -> None:
        page_sign_up(client)
        make_session_old(services)
        response = client.get("/account/export", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/signin?again=1&next=/account/export"
        again = client.get(response.headers["location"])
        assert "Please sign in again" in again.text
        signed = client.post(
            "/signin",
            data={
                "username": "alex",
                "password": PASSWORD,
                "next": "/account/export",
                "csrf_token": form_token(again),
            },
        )
        assert signed.headers["content-type"] == "application/zip"

    def test_delete_account_needs_the_password(
        self, client: TestClient, services: Services
    ) -> None:
        token = form_token(page_sign_up(client))
        wrong = client.post(
            "/account/delete", data={"password": "not-it-at-all", "csrf_token": token}
        )
        assert wrong.status_code == 401 and "Nothing was deleted" in wrong.text
        assert run_sql(services, "SELECT count(*) FROM young_person")[0][0] == 1
        gone = client.post(
            "/account/delete",
            data={"password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert gone.status_code == 303 and gone.headers["location"] == "/signin"
        assert run_sql(services, "SELECT count(*) FROM young_person")[0][0] == 0

    def test_delete_password_guessing_is_throttled(
        self, client: TestClient, services: Services
    ) -> None:
        services.settings.login_max_failures_per_account = 2
        token = form_token(page_sign_up(client))
        for _ in range(2):
            client.post("/account/delete", data={"password": "guess-guess", "csrf_token": token})
        blocked = client.post("/account/delete", data={"password": PASSWORD, "csrf_token": token})
        assert blocked.status_code == 429
        assert run_sql(services, "SELECT count(*) FROM young_person")[0][0] == 1


def test_pages_are_small_and_script_free(client: TestClient) -> None:
    story = page_sign_up(client)
    for path in ("/story", "/records", "/audit", "/account", "/static/style.css"):
        response = client.get(path)
        assert response.status_code == 200
        assert "<script" not in response.text
        assert len(response.content) < 30_000
    assert 'name="viewport"' in story.text


class TestUnexpectedErrors:
    """A bug must not show a trace, quote content, or greet a young person with JSON."""

    @pytest.fixture
    def broken(self, monkeypatch: pytest.MonkeyPatch) -> str:
        secret = "Very private words from the story"

        def fails(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError(secret)

        monkeypatch.setattr("vault.service.list_entries", fails)
        return secret

    def test_a_page_says_sorry_in_plain_words(
        self, client: TestClient, broken: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        signup = client.get("/signup")  # a page that still works
        assert signup.status_code == 200
        with caplog.at_level("ERROR", logger="storykeep.errors"):
            response = client.post(
                "/signup",
                data={"username": "alex", "password": PASSWORD,
                      "csrf_token": form_token(signup)},
                follow_redirects=True,
            )  # fmt: skip
        assert response.status_code == 500
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "<h1>Sorry</h1>" in response.text
        assert "Something went wrong on our side. Nothing was changed." in response.text
        assert "<script" not in response.text and "server_error" not in response.text
        assert response.headers["x-content-type-options"] == "nosniff"  # headers still on
        assert broken not in response.text and broken not in caplog.text
        assert "unexpected RuntimeError on GET /story" in caplog.text

    def test_the_api_keeps_its_json_error(
        self, client: TestClient, broken: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        sign_up(client, "alex")
        with caplog.at_level("ERROR", logger="storykeep.errors"):
            response = client.get("/api/v1/me/entries")
        assert response.status_code == 500
        assert response.json() == {
            "error": "server_error",
            "detail": "Something went wrong on our side. Nothing was changed.",
        }
        assert broken not in response.text and broken not in caplog.text
