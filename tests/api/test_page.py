"""The web page in a real headless browser: upload, overlay, legend, download.

Uses Debian's chromium (``apt-get install chromium``) driven by Playwright; skips, saying
why, only where neither is available. The screenshot lands in the test's tmp folder.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
import zipfile

import numpy as np
import pytest
import uvicorn
from PIL import Image

from aerialseg.api.app import create_app
from aerialseg.api.guard import default_allowed_hosts
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene
from tests.helpers.paths import REAL_DATA

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IMAGE = REAL_DATA / "Semantic segmentation dataset" / "Tile 1" / "images" / "image_part_002.jpg"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


TOKEN = "page-token-42"


@pytest.fixture(params=[None])
def server(loaded, request):
    """The page's server on a free port; ``request.param``: its token, if any."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # as `aerialseg serve` builds it: the page's own requests pass the Host and Origin checks
    app = create_app(loaded, token=request.param, allowed_hosts=default_allowed_hosts("127.0.0.1"))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@contextlib.contextmanager
def opened_page(server: str, routes: dict | None = None, **options):
    """The page in headless chromium, opened; errors of its script fail the test.
    ``routes``: URL patterns answered by the browser itself (Playwright's route), e.g. a
    server fault."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(**options)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        for pattern, handler in (routes or {}).items():
            page.route(pattern, handler)
        page.goto(server + "/")
        yield browser, page
        browser.close()
    assert not errors, errors


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
@pytest.mark.skipif(not IMAGE.is_file(), reason="real dataset not found")
def test_upload_shows_overlay_legend_and_downloads(server, tmp_path):
    with opened_page(server, viewport={"width": 1280, "height": 900}) as (_, page):
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        page.set_input_files("#file", str(IMAGE))
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.wait_for_function("document.getElementById('mask').naturalWidth > 0")
        assert page.eval_on_selector("#mask", "m => [m.naturalWidth, m.naturalHeight]") == [
            797,
            644,
        ]
        names = page.eval_on_selector_all(
            "#legend tbody tr td:nth-child(2)", "tds => tds.map(t => t.textContent)"
        )
        assert names == ["Building", "Land", "Road", "Vegetation", "Water", "Unlabeled"]
        # a JPEG has no CRS: its areas are its pixels, which add up to the image
        areas = page.eval_on_selector_all(
            "#legend tbody tr td:nth-child(4)", "tds => tds.map(t => t.textContent)"
        )
        assert all(a.endswith(" px") for a in areas), areas
        assert sum(int(a.removesuffix(" px").replace(",", "")) for a in areas) == 797 * 644
        page.fill("#opacity", "20")
        assert page.eval_on_selector("#mask", "m => m.style.opacity") == "0.2"
        # The doubt layer: red where the confidence is low, as big as the image.
        classes_src = page.eval_on_selector("#mask", "m => m.src")
        page.select_option("#layer", "confidence")
        page.wait_for_function(f"document.getElementById('mask').src !== '{classes_src}'")
        page.wait_for_function("document.getElementById('mask').complete")
        assert page.eval_on_selector("#mask", "m => [m.naturalWidth, m.naturalHeight]") == [
            797,
            644,
        ]
        with page.expect_download() as info:
            page.click("#dl-confidence")
        confidence = tmp_path / info.value.suggested_filename
        info.value.save_as(confidence)
        assert confidence.name == "image_part_002_confidence.png"
        percent = np.array(Image.open(confidence))
        assert percent.shape == (644, 797) and percent.max() <= 100 < 255
        page.select_option("#layer", "classes")
        assert page.eval_on_selector("#mask", "m => m.src") == classes_src
        with page.expect_download() as info:
            page.click("#dl-mask")
        download = info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert saved.name == "image_part_002_classes.zip"
        with zipfile.ZipFile(saved) as archive:  # the mask with its class names and style
            names = sorted(archive.namelist())
            assert names == [
                "image_part_002_classes.png",
                "image_part_002_classes.png.aux.xml",
                "image_part_002_classes.qml",
            ]
            assert archive.read("image_part_002_classes.png")[:8] == b"\x89PNG\r\n\x1a\n"
            assert "Building" in archive.read("image_part_002_classes.png.aux.xml").decode()
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        # A bad upload shows the server's message.
        (tmp_path / "bad.png").write_text("not an image")
        page.set_input_files("#file", str(tmp_path / "bad.png"))
        page.wait_for_selector("#error:not([hidden])")
        assert "not an image" in page.text_content("#error")
        # The bands field reaches the server: two bands for a model of three.
        assert (
            page.text_content("#bands-rule") == "(empty: 3-band RGB, or RGBA (alpha marks nodata))"
        )
        page.fill("#bands", "1,2")
        page.set_input_files("#file", str(IMAGE))
        page.wait_for_selector("#error:has-text('the model takes 3 band')")
        assert page.text_content("#error").startswith("Bands 1,2: the model takes 3 band")
        # in the page's words: the Bands field and the file's name (a review: '?bands=' and
        # 'upload')
        page.fill("#bands", "1,2,7")
        page.set_input_files("#file", str(IMAGE))
        page.wait_for_selector("#error:has-text('asks for band 7')")
        assert page.text_content("#error").startswith(f"{IMAGE.name}: Bands 1,2,7 asks for band 7")
        # A 5-band image with the field empty: the hint names the field, not the query.
        five = write_geotiff(tmp_path / "five.tif", np.full((5, 64, 64), 90, np.uint8))
        page.fill("#bands", "")
        page.set_input_files("#file", str(five))
        page.wait_for_selector("#error:has-text('has 5 band')")
        assert page.text_content("#error").endswith("choose them in the Bands field, e.g. 1,2,3"), (
            page.text_content("#error")
        )
    print(f"screenshot: {tmp_path / 'page.png'}")


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
@pytest.mark.parametrize("server", [TOKEN], indirect=True)
def test_the_page_asks_for_a_token_once_and_keeps_it_for_the_tab(server, tmp_path):
    image = tmp_path / "scene.png"
    Image.fromarray(rgb_scene(120, 160).transpose(1, 2, 0)).save(image)
    with opened_page(server) as (browser, page):
        page.wait_for_selector("#token-form:not([hidden])")
        page.fill("#token", "not-it")
        page.click("#token-form button")
        page.wait_for_selector("#error:has-text('not accepted')")
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        assert page.is_hidden("#token-form")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.reload()  # the same tab: the token is kept, not asked again
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        assert page.is_hidden("#token-form")
        other = browser.new_page()  # another tab asks again
        other.goto(server + "/")
        other.wait_for_selector("#token-form:not([hidden])")


def stack_pixels(page) -> np.ndarray:
    """What the viewer shows: a screenshot of the image and its class layer."""
    import io

    return np.asarray(Image.open(io.BytesIO(page.locator(".stack").screenshot())).convert("RGB"))


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
def test_a_geotiff_gets_two_layers_a_doubt_view_and_clean_empty_and_error_states(server, tmp_path):
    """The format a GIS user uploads: the opacity slider changes what is shown (the image
    is its own layer under the classes), the doubt view works, the empty page shows no
    result block, and an error hides the result before it."""
    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(160, 200, seed=2))
    with opened_page(server, viewport={"width": 1280, "height": 900}) as (_, page):
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        # empty: no result block, no broken image, no dead buttons
        assert page.is_hidden("#result") and page.is_hidden("#error")
        assert not page.locator("#dl-mask").is_visible()
        page.set_input_files("#file", str(scene))
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.wait_for_function(
            "['base', 'mask'].every(id => document.getElementById(id).naturalWidth === 200)"
        )
        page.fill("#opacity", "0")
        bare = stack_pixels(page)
        page.fill("#opacity", "100")
        covered = stack_pixels(page)
        changed = np.abs(bare.astype(int) - covered.astype(int)).sum(axis=2) > 30
        assert changed.mean() > 0.5, changed.mean()  # the classes cover the image
        assert bare.std() > 10  # at opacity 0 the image itself shows, not a blank
        page.select_option("#layer", "confidence")
        page.wait_for_function("document.getElementById('mask').complete")
        assert not page.eval_on_selector("#layer option[value=confidence]", "o => o.disabled")
        assert not np.array_equal(stack_pixels(page), covered)
        # a failed upload: its message, and the earlier result gone
        (tmp_path / "bad.tif").write_text("not an image")
        page.set_input_files("#file", str(tmp_path / "bad.tif"))
        page.wait_for_selector("#error:not([hidden])")
        assert page.is_hidden("#result")
        assert page.locator("#result").bounding_box() is None  # not laid out at all


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
def test_retries_with_bands_readable_query_errors_the_keyboard_and_the_newest_answer(
    server, tmp_path
):
    """Found by a review: after a band error, choosing the same file again did nothing (no
    change event); a query FastAPI refused showed '[object Object]'; no key opened the file
    chooser; and a slower earlier upload replaced the answer to a later one."""
    from tests.helpers.geotiff import write_geotiff

    scene = rgb_scene(96, 128)
    five = write_geotiff(tmp_path / "five.tif", np.concatenate([scene, scene[:2]]))
    small = tmp_path / "small.png"
    Image.fromarray(rgb_scene(64, 80).transpose(1, 2, 0)).save(small)
    big = tmp_path / "big.png"
    Image.fromarray(np.tile(rgb_scene(300, 400), (1, 3, 3)).transpose(1, 2, 0)).save(big)
    with opened_page(server) as (_, page):
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        page.set_input_files("#file", str(five))
        page.wait_for_selector("#error:has-text('choose them in the Bands field')")
        page.fill("#bands", "3 2 1")  # spaces, as the command line takes them
        page.set_input_files("#file", str(five))  # the same file again
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.fill("#bands", "1;2;3")
        page.dispatch_event("#bands", "change")  # a new band choice segments the file again
        page.wait_for_selector("#error:not([hidden])")
        # said by the page, before any upload (FastAPI's own words were a regex)
        bands_rule = "Bands: band numbers separated by commas or spaces, e.g. 4,3,2"
        assert page.text_content("#error") == bands_rule
        page.fill("#bands", "")
        # Enter and Space on the drop zone open the file chooser (the input's click)
        page.evaluate(
            """() => { window.opened = 0; document.getElementById('file').addEventListener(
                'click', (e) => { window.opened++; e.preventDefault(); }); }"""
        )
        page.focus("#drop")
        page.keyboard.press("Enter")
        page.keyboard.press(" ")
        page.wait_for_function("window.opened === 2")
        page.set_input_files("#file", str(big))
        page.set_input_files("#file", str(small))  # chosen while big.png is under way
        page.wait_for_selector("#status:has-text('small.png: done')", timeout=60_000)
        time.sleep(3)  # big.png's answer, had it been kept, would have replaced it by now
        assert page.text_content("#status") == "small.png: done"
        assert page.is_hidden("#error")


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
def test_a_server_fault_long_names_and_a_new_choice_are_shown_plainly(server, tmp_path):
    """A review: a /v1/model answered with an error was taken for the model ("model:
    undefined", then a TypeError after every prediction); a long file name widened the page
    past the screen; the status still said the last file was done while a new one went up."""

    def busy(route):
        route.fulfill(status=503, content_type="application/json", body='{"detail": "busy"}')

    image = tmp_path / "plain.png"
    Image.fromarray(rgb_scene(64, 80).transpose(1, 2, 0)).save(image)
    with opened_page(server, routes={"**/v1/model": busy}) as (_, page):
        page.wait_for_selector("#error:not([hidden])")
        assert page.text_content("#error") == (
            "could not load the model description from the server (the server answered 503):"
            " reload the page when it is up"
        )
        assert page.text_content("#model-name") == ""
        page.set_input_files("#file", str(image))  # nothing is sent, and it says why
        assert "reload the page when it is up" in page.text_content("#error")
    long_name = tmp_path / ("a" * 200 + ".png")  # one word, under the 255 bytes a name takes
    long_name.write_bytes(image.read_bytes())
    with opened_page(server, viewport={"width": 375, "height": 800}) as (_, page):
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#status:has-text('plain.png: done')", timeout=60_000)
        page.set_input_files("#file", str(long_name))
        assert page.text_content("#status") == f"Uploading {long_name.name}…"
        page.wait_for_selector("#status:has-text('.png: done')", timeout=60_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
def test_a_file_over_the_upload_limit_is_refused_on_the_page(server, tmp_path):
    """A review: the page sent any file; the server's 413 came before the body and closed
    the connection, which the browser shows as an unreachable server."""
    import json

    def small_limit(route):
        answer = route.fetch()
        described = answer.json()
        described["input"] = described["input"] | {"max_upload_bytes": 2**20 // 10}
        route.fulfill(response=answer, body=json.dumps(described))

    image = tmp_path / "plain.png"
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(image)  # 0.19 MiB, over the 0.1 the server says
    sent: list[str] = []
    with opened_page(server, routes={"**/v1/model": small_limit}) as (_, page):
        page.on("request", lambda r: sent.append(r.url) if "/v1/segment" in r.url else None)
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#error:not([hidden])")
        size = f"{image.stat().st_size / 2**20:.2f}".rstrip("0").rstrip(".")
        assert page.text_content("#error") == (
            f"plain.png is {size} MiB; this server takes uploads of up to 0.1 MiB"
        )
    assert sent == []


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
def test_bands_typed_downloads_and_a_refused_choice_keep_the_page_as_it_was(server, tmp_path):
    """A review: a space could not be typed in Bands (the drop zone took it, and Enter
    there opened the file chooser); the first download after a result re-ran the
    prediction (Bands' change fired as it lost focus); a file the page refused left the
    request before it running, whose result then showed under the refusal."""
    scene = rgb_scene(96, 128)
    five = write_geotiff(tmp_path / "five.tif", np.concatenate([scene, scene[:2]]))
    big = tmp_path / "big.png"
    Image.fromarray(np.tile(rgb_scene(300, 400), (1, 3, 3)).transpose(1, 2, 0)).save(big)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    sent: list[str] = []
    with opened_page(server, accept_downloads=True) as (_, page):
        page.on("request", lambda r: sent.append(r.url) if "/v1/segment" in r.url else None)
        page.wait_for_selector("#model-name:has-text('seed-unet')")
        page.evaluate(
            """() => { window.opened = 0; document.getElementById('file').addEventListener(
                'click', (e) => { window.opened++; e.preventDefault(); }); }"""
        )
        page.click("#bands")
        page.keyboard.type("3 2 1")
        assert page.input_value("#bands") == "3 2 1"
        page.set_input_files("#file", str(five))  # Bands still focused
        page.wait_for_selector("#status:has-text('five.tif: done')", timeout=60_000)
        assert len(sent) == 1
        with page.expect_download() as download:
            page.click("#dl-overlay")  # Bands loses focus, unchanged since it was sent
        assert download.value.suggested_filename == "five_overlay.png"
        time.sleep(1)
        assert len(sent) == 1 and page.text_content("#status") == "five.tif: done"
        page.click("#bands")
        page.keyboard.press("Enter")
        assert page.evaluate("window.opened") == 0  # Enter in the field opens nothing
        # a typo refused, then undone: the file is sent again (a review: the Bands were
        # those last sent, so nothing was, and the page stayed on the error)
        page.fill("#bands", "3 2 x")
        page.dispatch_event("#bands", "change")
        page.wait_for_selector("#error:has-text('Bands: band numbers')")
        page.fill("#bands", "3 2 1")
        page.dispatch_event("#bands", "change")
        page.wait_for_selector("#status:has-text('five.tif: done')", timeout=60_000)
        assert len(sent) == 2 and page.is_hidden("#error")
        page.fill("#bands", "")
        page.set_input_files("#file", str(big))
        page.set_input_files("#file", str(empty))  # refused by the page, big.png under way
        page.wait_for_selector("#error:has-text('empty.png is empty (0 bytes)')")
        time.sleep(3)  # big.png's answer, had its request gone on, would show by now
        assert page.is_hidden("#result") and page.text_content("#status") == ""
        assert "empty.png is empty" in page.text_content("#error")


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
@pytest.mark.parametrize("server", [TOKEN], indirect=True)
def test_a_file_chosen_before_the_token_is_sent_once_the_token_is_given(server, tmp_path):
    """A review: a file chosen while the token was asked for got "the server has not
    described its model yet: reload the page" (a reload asks for the token again); an
    empty token was "not accepted"; the token form overflowed a phone's width; a 5 x 5 px
    image showed as a dot."""
    tiny = tmp_path / "tiny.png"
    Image.fromarray(rgb_scene(5, 5).transpose(1, 2, 0)).save(tiny)
    with opened_page(server, viewport={"width": 360, "height": 800}) as (_, page):
        page.wait_for_selector("#token-form:not([hidden])")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.click("#token-form button")  # nothing typed
        page.wait_for_selector("#error:has-text('Enter the token this server was started')")
        page.set_input_files("#file", str(tiny))
        page.wait_for_selector("#error:has-text('tiny.png is sent once it is accepted')")
        assert page.is_visible("#token-form")
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        page.wait_for_selector("#status:has-text('tiny.png: done')", timeout=60_000)
        width = page.evaluate("document.getElementById('base').getBoundingClientRect().width")
        assert width >= 300, width  # shown at a size to see, not 5 px
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
