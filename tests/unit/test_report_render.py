"""The report renders end to end: self-contained HTML that a real browser loads cleanly, PDF, PNGs, CSVs.

Chromium (Debian package ``chromium``) is driven over the DevTools protocol on a pipe (no port, no
network: every host name resolves to nothing); the test is skipped with a reason when it is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from html import unescape
from pathlib import Path

import pandas as pd
import pytest

from ipm_outcomes.report import render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return render(FIXTURES / "results_small", out, pdf=True)


def test_outputs_exist(report):
    out = report.out_dir
    assert report.html == out / "report.html" and report.html.stat().st_size > 100_000
    assert report.pdf == out / "report.pdf" and report.pdf.read_bytes().startswith(b"%PDF")
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"attrition.png", "referral_timing.png", "rtw_curves_ccw.png", "dose_response.png", "qol_means.png",
            "forest_methods_risk_difference.png", "forest_subgroups.png", "love_plot.png", "overlap.png",
            "weights.png"} <= figures
    assert figures == {p.name for p in report.figures}
    tables = {p.name for p in (out / "tables").glob("*.csv")}
    assert {"attrition.csv", "table1.csv", "rtw_risk.csv", "qol_means.csv", "dose_response.csv", "subgroups.csv",
            "diagnostics.csv", "checklist.csv", "numbers_at_risk.csv"} <= tables
    for path in (out / "figures").glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report written to" in report.describe()


def test_html_is_self_contained(report):
    html = report.html.read_text(encoding="utf-8")
    # No external resource of any kind: no links to stylesheets, no scripts, every image inline.
    assert not re.search(r"<(link|script|iframe|object|embed)\b", html, re.I)
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(sources) == len(report.figures)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", html, re.I)
    # Every embedded figure is the saved PNG, byte for byte.
    saved = {p.read_bytes() for p in report.figures}
    assert {base64.b64decode(src.split(",", 1)[1]) for src in sources} == saved


def test_sections_are_in_the_order_of_the_issue(report):
    html = unescape(report.html.read_text(encoding="utf-8"))
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings == [
        "1. Executive summary", "2. Study population", "3. Referral timing", "4. Return to work",
        "5. Quality of life", "6. How early matters", "7. Robustness", "8. Other harms of delay", "9. Diagnostics",
        "10. Methods and provenance", "11. Limitations",
    ]


def test_methods_section_has_provenance_and_checklist(report):
    html = unescape(report.html.read_text(encoding="utf-8"))
    methods = html[html.index('id="methods"'):]
    results = json.loads((FIXTURES / "results_small" / "results.json").read_text())
    assert results["spec_sha256"] in methods and results["data_sha256"] in methods
    assert str(results["seed"]) in methods
    assert "RECORD 13.1" in methods and "RECORD 7.1" in methods and "TARGET" in methods
    assert "[exposure]" in methods and "grace_period_days = 42" in methods  # the spec as run
    for f in results["provenance"]["files"]:
        assert f["sha256"] in methods


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


def test_pdf_pages_and_key_numbers(report):
    from pypdf import PdfReader

    pages = len(PdfReader(report.pdf).pages)
    assert pages == report.pdf_pages
    assert 12 <= pages <= 40
    text = re.sub(r"\s+", " ", _pdf_text(report.pdf))
    # The primary result as stated in the executive summary, and the cohort size.
    assert "74.5% vs 65.1%" in text
    assert "9.4 percentage points (95% CI 5.1 to 13.7)" in text
    assert "3,560 adults" in text
    assert "Page 1 of" in text  # print layout: page numbers in the margin


def _cdp_load(url: str, screenshot: Path, width: int = 1280, height: int = 900, timeout: float = 60.0,
              probe: str | None = None) -> dict:
    """Open ``url`` in headless Chromium via the DevTools protocol on a pipe; return what happened.

    ``probe``: a JavaScript expression returning a JSON string, evaluated after load (result["probe"]).
    """
    user_dir = tempfile.mkdtemp(prefix="chromium-")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def wire():
        os.dup2(to_browser_r, 3)
        os.dup2(from_browser_w, 4)

    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={user_dir}", "--remote-debugging-pipe",
            f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=wire, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_browser_r)
    os.close(from_browser_w)
    buffer, messages, counter = b"", [], [0]
    deadline = time.time() + timeout

    def send(method, params=None, session=None):
        counter[0] += 1
        message = {"id": counter[0], "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(to_browser_w, json.dumps(message).encode() + b"\0")
        return counter[0]

    def wait(predicate):
        nonlocal buffer
        while True:
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                messages.append(message)
                if predicate(message):
                    return message
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([from_browser_r], [], [], left)
            if ready:
                chunk = os.read(from_browser_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                buffer += chunk

    def call(method, params=None, session=None):
        i = send(method, params, session)
        reply = wait(lambda m: m.get("id") == i)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            call(f"{domain}.enable", session=session)
        # the window cannot be made narrower than about 500 px: the viewport is set exactly instead
        call("Emulation.setDeviceMetricsOverride",
             {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}, session=session)
        call("Page.navigate", {"url": url}, session=session)
        wait(lambda m: m.get("method") == "Page.loadEventFired")
        metrics = call("Runtime.evaluate", {"expression": "JSON.stringify({h: document.body.scrollHeight, "
                                            "imgs: document.images.length, "
                                            "broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length, "
                                            "title: document.title})", "returnByValue": True}, session=session)
        probed = None
        if probe is not None:
            probed = call("Runtime.evaluate", {"expression": probe, "returnByValue": True}, session=session)
        shot = call("Page.captureScreenshot", {"format": "png"}, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        send("Browser.close")
    finally:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(user_dir, ignore_errors=True)
    errors, requests = [], []
    for m in messages:
        method, params = m.get("method"), m.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
            errors.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
        elif method == "Runtime.exceptionThrown":
            errors.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            errors.append(f"log: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            errors.append(f"failed load: {params.get('errorText')}")
    out = {"errors": errors, "requests": requests, "page": json.loads(metrics["result"]["value"])}
    if probed is not None:
        out["probe"] = json.loads(probed["result"]["value"])
    return out


#: What the first screen shows: each element's text and whether it lies wholly inside the viewport.
FIRST_SCREEN = """JSON.stringify(Object.fromEntries(["#source-banner", "#answer .headline", "#answer .finding",
  "#answer .days-off", "#reliability", "#outcomes-available"].map(sel => { const el = document.querySelector(sel);
  if (!el) return [sel, null]; const r = el.getBoundingClientRect();
  return [sel, {text: el.innerText, visible: r.top >= 0 && r.bottom <= window.innerHeight && r.width > 0}]; })))"""


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    """results_small as the analysis writes it for the generated extract (provenance marks it synthetic)."""
    tmp = tmp_path_factory.mktemp("synthetic")
    shutil.copytree(FIXTURES / "results_small", tmp / "results")
    path = tmp / "results" / "results.json"
    data = json.loads(path.read_text())
    data["provenance"]["data_source"] = {"extract": "synthetic", "synthetic": True, "index_period": ["2020-01-03", "2024-06-28"]}
    path.write_text(json.dumps(data))
    return render(tmp / "results", tmp / "report", pdf=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_first_screen_in_the_browser(synthetic_report):
    """At 1280 x 800 px, without scrolling: the synthetic-data banner, the answer in percentage points at six
    months and in days off work in the first year, and a one-line reliability verdict."""
    shot = synthetic_report.out_dir / "first_screen.png"
    result = _cdp_load(synthetic_report.html.as_uri(), shot, width=1280, height=800, probe=FIRST_SCREEN)
    assert result["errors"] == []
    seen = result["probe"]
    assert all(v is not None and v["visible"] for v in seen.values()), seen
    assert "Synthetic data" in seen["#source-banner"]["text"]
    assert re.search(r"by six months, a difference of 9\.4 percentage points", seen["#answer .finding"]["text"])
    assert re.search(r"about 27 fewer days off work per patient", seen["#answer .days-off"]["text"])
    assert "first year" in seen["#answer .days-off"]["text"]
    verdict = seen["#reliability"]["text"]
    assert verdict.count(".") <= 2 and len(verdict) < 200, verdict  # one line, not the run-on of labels
    assert re.search(r"study checks (passed|failed)", verdict)
    assert shot.stat().st_size > 10_000


def test_every_pdf_page_says_synthetic(synthetic_report):
    from pypdf import PdfReader

    reader = PdfReader(str(synthetic_report.pdf))
    assert len(reader.pages) >= 5
    for i, page in enumerate(reader.pages):
        assert "SYNTHETIC DATA" in page.extract_text(), f"page {i + 1}"


def test_a_real_extract_names_its_source_and_period(tmp_path):
    shutil.copytree(FIXTURES / "results_small", tmp_path / "results")
    path = tmp_path / "results" / "results.json"
    data = json.loads(path.read_text())
    data["provenance"]["data_source"] = {"extract": "claims_2024q4", "synthetic": False, "index_period": ["2021-01-04", "2023-12-29"]}
    path.write_text(json.dumps(data))
    html = render(tmp_path / "results", tmp_path / "report", pdf=False).html.read_text(encoding="utf-8")
    assert "Synthetic data" not in html
    assert "claims_2024q4" in html and "2021-01-04 to 2023-12-29" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_browser_loads_report_without_console_errors(report, tmp_path):
    shot = report.out_dir / "screenshot.png"
    result = _cdp_load(report.html.as_uri(), shot)
    assert result["errors"] == []
    # The page itself is the only request (embedded data: images are not network requests).
    external = [u for u in result["requests"] if not u.startswith(("data:", report.html.as_uri()))]
    assert external == []
    page = result["page"]
    assert page["imgs"] == len(report.figures) and page["broken"] == 0
    assert page["h"] > 5000  # the whole report laid out, not an error page
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_browser_check_catches_errors(tmp_path):
    """The browser check is not blind: a page with a console error and a network request fails it."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="https://example.invalid/x.png"><script>console.error("boom")</script></body></html>')
    result = _cdp_load(page.as_uri(), tmp_path / "bad.png")
    assert any("boom" in e for e in result["errors"])
    assert any(u.startswith("https://example.invalid") for u in result["requests"])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_key_numbers_fit_a_phone(synthetic_report):
    """At 420 px the key-numbers table fits the screen: no sideways scrolling for the answer."""
    probe = ("JSON.stringify({page: document.documentElement.scrollWidth, view: window.innerWidth, "
             "table: document.querySelector('#table-key-numbers table').getBoundingClientRect().right})")
    result = _cdp_load(synthetic_report.html.as_uri(), synthetic_report.out_dir / "phone.png", width=420,
                       height=900, probe=probe)
    seen = result["probe"]
    assert seen["view"] == 420, seen  # the phone's width, not the narrowest window Chromium allows
    assert seen["table"] <= seen["view"], seen
    assert seen["page"] <= seen["view"], seen


def test_pdf_never_leaves_a_table_caption_alone_at_the_foot_of_a_page(report):
    """A table's caption is printed above it: the page holding the caption's first words also holds the
    table's first column heading (an orphaned caption would end one page, its table start the next)."""
    from html.parser import HTMLParser

    from pypdf import PdfReader

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found, self.where = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "figure" and ("class", "table") in attrs:
                self.found.append({"caption": "", "heading": ""})
                self.where = "figure"
            elif self.where == "figure" and tag == "figcaption":
                self.where = "caption"
            elif self.where == "figure" and tag == "th" and not self.found[-1]["heading"]:
                self.where = "heading"

        def handle_endtag(self, tag):
            if tag in ("figcaption", "th") and self.where in ("caption", "heading"):
                self.where = "figure"
            elif tag == "figure":
                self.where = None

        def handle_data(self, data):
            if self.where in ("caption", "heading"):
                self.found[-1][self.where] += data

    def squeeze(text):
        return re.sub(r"\s+", "", text)

    parser = Tables()
    parser.feed(report.html.read_text())
    pages = [squeeze(page.extract_text() or "") for page in PdfReader(report.pdf).pages]
    checked = 0
    for table in parser.found:
        caption, heading = squeeze(table["caption"])[:40], squeeze(table["heading"])
        holding = [i for i, text in enumerate(pages) if caption and caption in text]
        if not holding or not heading:
            continue  # a caption broken across a page by the PDF's text layer cannot be located
        page = pages[holding[0]]
        assert heading in page[page.index(caption):], f"caption {table['caption'][:60]!r} ends page {holding[0] + 1}"
        checked += 1
    assert checked >= 8


def test_days_off_answer_at_the_longest_horizon_both_arms_reach(tmp_path):
    """When too few early-referred patients are still followed at one year to show the year's days off work,
    the first screen answers in days off work within the longest horizon both arms still reach (and says
    why it is not the year), instead of leaving the question unanswered."""
    shutil.copytree(FIXTURES / "results_small", tmp_path / "results")
    path = tmp_path / "results" / "results.json"
    data = json.loads(path.read_text())
    shorter = [
        dict(analysis="primary", outcome="rtw", method="ccw", measure="rmst_difference", arm=None, horizon_days=h, estimate=est,
             ci_low=est - 7.0, ci_high=est + 6.0, n=2180)
        for h, est in ((270, -18.4), (300, -21.3), (330, -23.9))
    ] + [
        dict(analysis="primary", outcome="rtw", method="ccw", measure="restricted_mean_days_off_work", arm=arm, horizon_days=h,
             estimate=level, ci_low=level - 5, ci_high=level + 5, n=n)
        for h in (270, 300, 330) for arm, level, n in (("early", 100.0, 859), ("delayed", 120.0, 1321))
    ]
    data["estimates"] += shorter
    path.write_text(json.dumps(data))
    curves = tmp_path / "results" / "rtw_curves.parquet"
    c = pd.read_parquet(curves)
    fading = (c.method == "ccw") & (c.arm == "early") & (c.day > 310)
    c.loc[fading, "n_at_risk"] = 8  # fewer than 11 early-referred persons still followed after day 310
    c.to_parquet(curves, index=False)

    html = render(tmp_path / "results", tmp_path / "report", pdf=False).html.read_text(encoding="utf-8")
    answer = re.search(r'<p class="finding days-off">(.*?)</p>', html, re.S)
    assert answer is not None, "no days-off answer on the first screen"
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", answer.group(1))).split())
    assert "about 21 fewer days off work per patient" in text, text
    assert "in the first 300 days" in text and "the first year cannot be shown" in text, text
    assert "27" not in text  # the year's estimate (-26.9) is withheld
