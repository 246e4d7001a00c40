"""Every ```bash and ```python block of README.md and docs/*.md runs here, so that an
example cannot rot.

Conventions, for whoever writes a page:

- Each page runs in a fresh temporary folder holding small files of the names the docs use
  (made by ``workspace_template`` below): ``scene.tif`` (an RGB GeoTIFF in UTM, 0.5 m
  pixels), ``photo.jpg``, ``images/`` (two JPEGs), ``more/`` (a GeoTIFF),
  ``archive.zip`` (a tiny dataset in the Kaggle download's layout), ``mydata/``
  (``images/*.tif``, 16-bit blue-green-red-infrared, with ``masks/*.tif`` of values 1-5),
  ``classes.yaml`` (its class table) and ``new_scene.tif`` (an image like mydata's).
- A page's blocks run in order in that folder, so a block may use what an earlier one
  made (``runs/a``); its python blocks share one namespace, like a notebook's cells.
- ``area/``: ``scene.tif`` (a UTM GeoTIFF), ``labels.gpkg`` (its class polygons in WGS84,
  attribute ``class``) and ``classes.yaml`` (Building, Road, Water, and Land as background).
- ``AERIALSEG_MAX_STEPS=1`` caps every training run (aerialseg/public.py), so a
  ``--max-time 02:00:00`` example trains for seconds.
- A bash block whose every line is an ``aerialseg`` command without shell syntax (but
  for a final ``> FILE``) runs in this process through ``aerialseg.cli.main``, the
  console script's entry point, which saves starting Python and torch per command; any
  other bash block runs in ``bash -e`` with the project's ``.venv/bin`` first on PATH.
- A block preceded by the line ``<!-- norun: REASON -->`` is not run (a cluster launch, a
  server that runs until stopped, an install); ``test_norun_blocks_say_why`` lists each as
  a skip with its reason, so ``pytest -ra`` shows them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from aerialseg.cli import main
from tests.helpers.geodata import (
    POLYGON_CLASSES,
    class_boxes,
    class_ids_of,
    scene_transform,
    write_polygons,
    write_scene,
)
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff, write_geotiff_dataset
from tests.helpers.images import rgb_scene, synthetic_pair, write_dataset
from tests.helpers.paths import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NORUN = re.compile(r"^\s*<!--\s*norun:\s*(.*?)\s*-->\s*$")
SHELL_SYNTAX = set("<>|;&$`(){}")
STEP_CAP = "1"


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    norun: str | None  # the reason, for a block not to run


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, dedented (blocks inside list items)."""
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match or not match.group(2):
            i += 1
            continue
        indent, language, start = match.group(1), match.group(2), i
        body = []
        i += 1
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i].removeprefix(indent))
            i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        norun = NORUN.match(before)
        found.append(
            Block(
                str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name,
                start + 1,
                language,
                "\n".join(body) + "\n",
                norun.group(1) if norun else None,
            )
        )
        i += 1
    return found


def runnable(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language in ("bash", "python") and b.norun is None]


def commands(code: str) -> list[tuple[list[str], str | None]] | None:
    """The block's ``aerialseg`` commands as (arguments, file their output is redirected
    to, if any), or None if anything in the block needs a shell."""
    joined = code.replace("\\\n", " ")
    found: list[tuple[list[str], str | None]] = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        target = None
        if len(words) > 2 and words[-2] == ">":  # aerialseg ... > FILE
            words, target = words[:-2], words[-1]
        if words[0] != "aerialseg" or any(SHELL_SYNTAX & set(w) for w in words):
            return None
        found.append((words[1:], target))
    return found


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory) -> Path:
    """The small files that the docs' examples name (see the module docstring)."""
    root = tmp_path_factory.mktemp("docs-workspace")
    shutil.copytree(REPO / "examples", root / "examples")  # the sample scene, as shipped
    write_geotiff(root / "scene.tif", rgb_scene(200, 240, seed=5))
    image, _ = synthetic_pair(np.random.default_rng(6), 160, 200)
    Image.fromarray(image).save(root / "photo.jpg", quality=92)
    (root / "images").mkdir()
    (root / "more").mkdir()
    for k, name in enumerate(("a.jpg", "b.jpg")):
        image, _ = synthetic_pair(np.random.default_rng(10 + k), 90, 120)
        Image.fromarray(image).save(root / "images" / name, quality=92)
    write_geotiff(root / "more" / "c.tif", rgb_scene(100, 110, seed=7))
    # the Kaggle archive: every file under "Semantic segmentation dataset/"
    dataset = write_dataset(tmp_path_factory.mktemp("kaggle") / "Semantic segmentation dataset")
    with zipfile.ZipFile(root / "archive.zip", "w") as archive:
        for file in sorted(dataset.rglob("*")):
            archive.write(file, file.relative_to(dataset.parent).as_posix())
    write_geotiff_dataset(root / "mydata", parts=8)
    (root / "classes.yaml").write_text(yaml.safe_dump(VALUE_CLASSES, sort_keys=False))
    shutil.copy(root / "mydata" / "images" / "scene_0.tif", root / "new_scene.tif")
    # one's own area: a UTM scene, its class polygons in WGS84 and their class table
    (root / "area").mkdir()
    boxes = class_boxes(256, 320, seed=4, count=60)
    write_scene(
        root / "area" / "scene.tif",
        class_ids_of(boxes, 256, 320, scene_transform()),
        scene_transform(),
    )
    write_polygons(root / "area" / "labels.gpkg", boxes)
    (root / "area" / "classes.yaml").write_text(yaml.safe_dump(POLYGON_CLASSES, sort_keys=False))
    return root


def run_bash(block: Block, cwd: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AERIALSEG_MAX_STEPS": STEP_CAP,
        "MPLBACKEND": "Agg",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{block.page}:{block.line} failed ({done.returncode}):\n{block.code}{done.stderr[-3000:]}"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_examples_run(page, workspace_template, tmp_path, monkeypatch):
    page_blocks = runnable(page)
    if not page_blocks:
        pytest.skip(f"{page.name} has no runnable block")
    workspace = tmp_path / "work"
    shutil.copytree(workspace_template, workspace)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("AERIALSEG_MAX_STEPS", STEP_CAP)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for block in page_blocks:
        where = f"{block.page}:{block.line}"
        if block.language == "python":
            exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the docs' own code
            continue
        argv_list = commands(block.code)
        if argv_list is None:
            run_bash(block, workspace)
            continue
        for argv, target in argv_list:
            with contextlib.ExitStack() as stack:
                if target is not None:
                    stack.enter_context(
                        contextlib.redirect_stdout(stack.enter_context(open(target, "w")))
                    )
                try:
                    code = main(argv)
                except SystemExit as exit_:  # --help, --version, and argparse's own errors
                    code = exit_.code if isinstance(exit_.code, int) else 1
            assert code == 0, f"{where}: aerialseg {shlex.join(argv)} failed"


def norun_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.norun is not None]


@pytest.mark.parametrize("block", norun_blocks(), ids=lambda b: f"{b.page}:{b.line}")
def test_norun_blocks_say_why(block):
    assert block.language in ("bash", "python"), (
        f"{block.page}:{block.line}: norun on a {block.language!r} block"
    )
    assert len(block.norun) >= 10, f"{block.page}:{block.line}: say why the block cannot run"
    pytest.skip(f"{block.page}:{block.line} not run: {block.norun}")


def test_pages_have_examples_and_readme_stays_short():
    readme = (REPO / "README.md").read_text()
    assert len(readme) <= 10_000
    counted = {page.name: len(runnable(page)) for page in PAGES}
    assert counted["README.md"] >= 3 and counted["python-api.md"] >= 5, counted


def test_the_site_lists_every_page_in_reading_order():
    # mkdocs.yml holds !!python/name tags of mkdocs-material's extensions: a plain loader
    text = (REPO / "mkdocs.yml").read_text()
    nav = yaml.load(text, Loader=yaml.BaseLoader)["nav"]
    pages = [next(iter(entry.values())) for entry in nav]
    assert sorted(pages) == sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert pages[:2] == ["index.md", "getting-started.md"]


def test_the_extractor_reads_indented_fences_and_norun_marks(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "- item\n\n  ```bash\n  aerialseg --version\n  ```\n\n"
        "<!-- norun: needs a cluster of GPUs -->\n```bash\nsrun aerialseg train\n```\n"
        "```yaml\na: 1\n```\n"
    )
    found = blocks(page)
    assert [(b.language, b.code, b.norun) for b in found] == [
        ("bash", "aerialseg --version\n", None),
        ("bash", "srun aerialseg train\n", "needs a cluster of GPUs"),
        ("yaml", "a: 1\n", None),
    ]
    assert commands("aerialseg predict 'a b.tif' --out o  # note\n") == [
        (["predict", "a b.tif", "--out", "o"], None)
    ]
    assert commands("aerialseg train --print-config > x.yaml\n") == [
        (["train", "--print-config"], "x.yaml")
    ]
    assert commands("aerialseg data split d --out s.json && cat s.json\n") is None
    assert commands("ls predictions\n") is None


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
def test_long_code_lines_wrap_clear_of_the_copy_button_on_the_built_site(tmp_path):
    """The site as a reader sees it: a long command in a code block wraps inside the block
    (it ran under the copy button and off the page)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(site), "--quiet"]
    subprocess.run(mkdocs, cwd=REPO, env=env, check=True, capture_output=True)
    page = site / "own-area" / "index.html"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": 800, "height": 900})
        view.goto(page.as_uri())
        widths = view.eval_on_selector_all(
            ".md-typeset pre > code",
            "codes => codes.map(c => [c.scrollWidth, c.clientWidth,"
            " getComputedStyle(c).whiteSpace])",
        )
        browser.close()
    assert widths, "no code block on the page"
    assert all(space == "pre-wrap" for _, _, space in widths)
    assert all(scroll <= client + 1 for scroll, client, _ in widths), widths
