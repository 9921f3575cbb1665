"""index.html without a browser: the same history gives the same bytes, text from git is escaped,
and the page holds every environment, its charts and its commits, with nothing to fetch."""

from __future__ import annotations

import re

from insights_support import SINCE, UNTIL, Builder

from generator.insights import cli

#: A reference to anything but the page itself: a src or href with a scheme or a protocol-relative URL.
REMOTE = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)""", re.IGNORECASE)
SUBJECT = "<script>alert('x')</script> & \"quoted\" release"


def test_a_subject_with_markup_is_escaped_and_two_runs_give_the_same_bytes(tmp_path):
    builder = Builder(tmp_path / "repo")
    builder.commit(SUBJECT, 1)
    pages = []
    for run in ("first", "second"):
        out = tmp_path / run
        assert cli.main(["--repo", str(builder.root), "--since", SINCE, "--until", UNTIL, "--out", str(out)]) == 0
        pages.append((out / "index.html").read_bytes())
    assert pages[0] == pages[1]
    page = pages[0].decode()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot; release" in page


def test_the_page_holds_every_environment_its_charts_and_its_commits(report, scripted):
    out, doc = report
    _, ids = scripted
    page = (out / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not REMOTE.search(page), REMOTE.search(page)
    assert "<script" not in page and "@import" not in page
    assert not re.search(r"url\(\s*['\"]?(?!#)", page)  # only the charts' own clip paths (url(#id))
    assert page.count("<svg") == 2 + len(doc["environments"])  # per week, lead time, one lineage per env
    for env in doc["environments"]:
        assert f'<details id="env-{env}"><summary>{env}: ' in page
    for row in doc["deployments"]:
        assert f'<code title="{row["commit"]}">{row["commit"][:10]}</code>' in page
    failed = re.search(rf'<tr class="failed"><td><code title="{ids["c6"]}">.*?</tr>', page)
    assert failed and "change failure" in failed[0] and ids["c7"][:10] in failed[0]
    caught = re.search(rf'<tr class="caught"><td><code title="{ids["c11"]}">.*?</tr>', page)
    assert caught and "caught by the canary" in caught[0]
