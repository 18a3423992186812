"""The playground page in real headless Chromium against the real ponder-tiny server.

The page loads without a key and says the API wants one; with the key it
lists models and strategies; each strategy's request streams its answer and
draws its own progress view (sample bars and the tally, candidate scores, the
MCTS tree, the thinking budget with its "Wait" marks); a wrong key shows the
401. Each case saves a screenshot under artifacts/playground/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.serve.launch import Server
from tests.browser import Console, chromium, screenshot
from tests.server import API_KEY

STATIC = Path(__file__).resolve().parent.parent / "ponder" / "serve" / "static"
PROMPT = "Add 73, 68 and 95."
DONE = ".turn:not([data-state=streaming])"
REPLY_TIMEOUT_MS = 90_000


def test_static_files_reference_no_other_origin() -> None:
    files = [p for p in STATIC.iterdir() if p.suffix in (".html", ".js", ".css")]
    assert {p.name for p in files} >= {"playground.html", "playground.js", "playground.css"}
    for path in files:
        for url in re.findall(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s"'`)]*""", path.read_text()):
            assert url == "http://www.w3.org/2000/svg", f"{path.name} references another origin: {url}"


@pytest.fixture(scope="module")
def server(tiny_server: Server) -> Server:
    response = httpx.get(f"{tiny_server.url}/playground", timeout=10)
    assert response.status_code == 200, "the playground router is not in create_app (ponder.serve.playground.router)"
    return tiny_server


def test_page_and_assets_are_served_without_a_key(server: Server) -> None:
    for path in ("/", "/playground"):
        r = httpx.get(server.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "connect-src 'self'" in r.headers["content-security-policy"]
        assert '<script type="module" src="/playground/playground.js">' in r.text
    js = httpx.get(f"{server.url}/playground/playground.js", timeout=10)
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for bad in ("/playground/nope.js", "/playground/..%2Fplayground.py", "/playground/__init__.py"):
        assert httpx.get(server.url + bad, timeout=10).status_code == 404, bad
    assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 401  # the API itself stays closed


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh tab on the playground, key entered and models loaded; fails on any page error."""
    page = browser.new_page()
    console = Console()
    console.watch(page)
    page.goto(f"{server.url}/playground")
    page.evaluate("() => { sessionStorage.clear(); localStorage.clear(); }")
    page.fill("#api-key", API_KEY)
    page.click("#save-key")
    page.wait_for_selector("#connection.ok >> text=connected", timeout=15_000)
    yield page
    page.close()
    assert not console.unexpected("status of 401"), console.errors


WATCH = """(selector) => {
    // When did `selector` first show up in the reply, and when did the reply end? (performance.now() ms)
    window.seen = { first: null, end: null };
    new MutationObserver(() => {
        const turn = document.querySelector(".turn");
        if (window.seen.first === null && turn?.querySelector(selector)) window.seen.first = performance.now();
        if (window.seen.end === null && turn && turn.dataset.state !== "streaming") window.seen.end = performance.now();
    }).observe(document.getElementById("transcript"), { subtree: true, childList: true, attributes: true });
}"""


def ask(page: Any, strategy: str, fields: dict[str, Any], live: str | None = None) -> Any:
    """Pick `strategy`, fill `fields` (selector -> value), send the prompt and wait for the reply to end.

    With `live`, also check that selector's progress view appeared while the reply was still streaming.
    """
    if live:
        page.evaluate(WATCH, live)
    page.select_option("#strategy", strategy)
    page.fill("#max-tokens", "320")
    page.fill("#seed", "3")
    for selector, value in fields.items():
        page.fill(selector, str(value))
    page.fill("#prompt", PROMPT)
    page.click("#send")
    page.wait_for_selector(DONE, timeout=REPLY_TIMEOUT_MS)
    turn = page.locator(".turn").last
    state = turn.get_attribute("data-state")
    assert state == "done", f"{strategy}: {state}: {turn.locator('.error').inner_text()}"
    assert turn.locator(".answer").inner_text().strip()
    stats = {k: turn.locator(f'[data-stat="{k}"]').inner_text() for k in ("TTFT", "total", "completion")}
    assert int(stats["completion"]) > 0 and stats["TTFT"] != "–", stats
    if live:
        seen = page.evaluate("() => window.seen")
        assert seen["first"] is not None and seen["first"] < seen["end"], f"{live} was not drawn live: {seen}"
    return turn


def test_page_loads_without_a_key_and_asks_for_one(browser: Any, server: Server) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/")
    page.evaluate("() => { sessionStorage.clear(); localStorage.clear(); }")
    page.reload()
    page.wait_for_selector("#connection.error", timeout=15_000)
    assert "401" in page.inner_text("#connection") and "Missing API key" in page.inner_text("#connection")
    assert page.title() == "Ponder playground"
    page.close()


def test_models_strategies_and_parameter_forms(page: Any) -> None:
    models = page.eval_on_selector_all("#model option", "els => els.map(e => e.value)")
    assert "ponder-tiny" in models and "ponder-tiny@mcts" in models
    strategies = page.eval_on_selector_all("#strategy option", "els => els.map(e => e.value)")
    assert sorted(strategies) == ["best_of_n", "direct", "long_cot", "majority_vote", "mcts"]
    page.select_option("#model", "ponder-tiny@mcts")  # an alias picks its strategy
    assert page.input_value("#strategy") == "mcts"
    assert page.input_value("#param-iterations") == "16"  # defaults from /v1/strategies
    assert page.input_value("#param-delimiter") == "\\n"
    assert page.eval_on_selector_all("#param-answer option", "els => els.map(e => e.value)") == ["best_path", "vote"]
    assert page.is_hidden("#thinking")
    page.select_option("#strategy", "long_cot")
    assert page.is_visible("#thinking")


def test_sse_reader_and_type_parsing_in_the_page(page: Any) -> None:
    """The page's own SSE reader on chunks split mid-line, CRLF, comments; parameter types from their text."""
    out = page.evaluate("""async () => {
        const { readEvents } = await import("/playground/sse.js");
        const { fieldKind } = await import("/playground/forms.js");
        const parts = ['data: {"a"', ':1}\\n', '\\nevent: ponder.progress\\ndata: x\\ndata: y\\n\\n: ping\\n\\n',
                       'data: [DONE]\\r', '\\n\\r\\n'];
        const bytes = new TextEncoder();
        const body = new ReadableStream({ start(c) { for (const p of parts) c.enqueue(bytes.encode(p)); c.close(); } });
        const events = [];
        for await (const m of readEvents(body)) events.push(m);
        const kinds = ["Literal['none', 'prm']", "float | None", "bool", "int", "str | None"].map(fieldKind);
        return { events, kinds };
    }""")
    assert out["events"] == [{"event": "message", "data": '{"a":1}'}, {"event": "ponder.progress", "data": "x\ny"},
                             {"event": "message", "data": "[DONE]"}]
    assert [k["kind"] for k in out["kinds"]] == ["choice", "float", "bool", "int", "str"]
    assert out["kinds"][0]["options"] == ["none", "prm"] and out["kinds"][1]["nullable"]


def test_key_is_kept_in_the_browser(page: Any, server: Server) -> None:
    assert page.evaluate("() => sessionStorage.getItem('ponder.apiKey')") == API_KEY
    assert page.evaluate("() => localStorage.getItem('ponder.apiKey')") is None
    page.check("#remember-key")
    page.click("#save-key")
    assert page.evaluate("() => localStorage.getItem('ponder.apiKey')") == API_KEY
    page.reload()
    page.wait_for_selector("#connection.ok >> text=connected", timeout=15_000)
    page.click("#forget-key")
    assert page.evaluate("() => [sessionStorage.length, localStorage.length]") == [0, 0]


def test_wrong_key_shows_the_401(page: Any) -> None:
    page.fill("#api-key", "not-the-key")
    page.click("#save-key")
    page.wait_for_selector("#connection.error", timeout=15_000)
    assert "401" in page.inner_text("#connection")
    page.fill("#prompt", PROMPT)
    page.click("#send")
    page.wait_for_selector(DONE, timeout=15_000)
    turn = page.locator(".turn").last
    assert turn.get_attribute("data-state") == "error"
    error = turn.locator(".error").inner_text()
    assert "401" in error and "Incorrect API key" in error
    screenshot(page, "wrong_key")


def test_direct(page: Any) -> None:
    turn = ask(page, "direct", {})
    assert turn.locator(".reasoning-text").inner_text().strip()  # ponder-tiny thinks first
    assert turn.locator(".progress .view").count() == 0
    assert '"strategy": "direct"' in turn.locator(".account pre").text_content()
    screenshot(page, "direct")


def test_long_cot_shows_waits_and_the_budget(page: Any) -> None:
    turn = ask(page, "long_cot", {"#think-min": 240, "#think-max": 480, "#think-waits": 2}, live=".wait-marker")
    assert turn.locator(".wait-marker").count() >= 1
    assert turn.locator(".reasoning-text mark.wait-word").count() >= 1
    assert turn.locator(".budget-bar .mark.wait").count() >= 1
    assert "min 240" in turn.locator(".view.budget h3").inner_text()
    screenshot(page, "long_cot")


def test_majority_vote_shows_samples_and_tally(page: Any) -> None:
    turn = ask(page, "majority_vote", {"#param-n": 6}, live=".sample-row")
    rows = turn.locator(".sample-row")
    assert rows.count() == 6 and turn.locator(".sample-row.done").count() == 6
    votes = turn.locator(".vote-row")
    assert votes.count() >= 1 and turn.locator(".vote-row.winner").count() == 1
    counted = sum(int(t.split()[0]) for t in votes.locator(".count").all_inner_texts())
    assert counted == 6
    screenshot(page, "majority_vote")


def test_best_of_n_shows_scores(page: Any) -> None:
    turn = ask(page, "best_of_n", {"#param-n": 4})
    assert turn.locator(".sample-row").count() == 4
    assert turn.locator(".score-row").count() == 4
    assert turn.locator(".score-row.chosen").count() == 1
    screenshot(page, "best_of_n")


def test_mcts_draws_the_tree(page: Any) -> None:
    turn = ask(page, "mcts", {"#param-iterations": 4, "#param-expand_k": 3}, live="svg.tree g.node")
    nodes = turn.locator("svg.tree g.node")
    assert nodes.count() > 1
    assert turn.locator("svg.tree path.edge").count() == nodes.count() - 1
    assert turn.locator("svg.tree g.node.chosen").count() >= 2  # the chosen path, root included
    visits = [int(v) for v in nodes.evaluate_all("els => els.map(e => e.dataset.visits)")]
    assert max(visits) >= 4  # the root saw every iteration
    screenshot(page, "mcts")


def test_stop_cancels_the_request(page: Any, server: Server) -> None:
    page.select_option("#strategy", "mcts")
    page.fill("#param-iterations", "200")
    page.fill("#prompt", PROMPT)
    page.click("#send")
    page.wait_for_selector("svg.tree g.node", timeout=REPLY_TIMEOUT_MS)
    page.click("#stop")
    page.wait_for_selector(".turn[data-state=stopped]", timeout=10_000)
    assert page.is_enabled("#send") and page.is_disabled("#stop")
    deadline = time.monotonic() + 15
    inflight = -1
    while inflight != 0 and time.monotonic() < deadline:
        inflight = httpx.get(f"{server.url}/health", timeout=10).json()["inflight"]
        time.sleep(0.2)
    assert inflight == 0  # the server saw the disconnect and cancelled the search
