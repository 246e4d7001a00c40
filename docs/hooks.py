"""mkdocs hook: pages link repository files such as benchmark results as ``../bench/...``,
which works when the Markdown is read in the repository. The site gets a copy of each
linked file under ``repo/`` and the links are pointed there, so ``mkdocs build --strict``
fails on a link to a file that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(\.\./([^)#\s]+)")


def on_files(files, config):
    docs = Path(config["docs_dir"])
    wanted = set()
    for page in docs.glob("*.md"):
        wanted.update(LINK.findall(page.read_text()))
    for rel in sorted(wanted):
        if (REPO / rel).is_file():
            files.append(
                File.generated(
                    config,
                    f"repo/{rel}",
                    abs_src_path=str(REPO / rel),
                    inclusion=InclusionLevel.NOT_IN_NAV,
                )
            )
    return files


def on_page_markdown(markdown, page, config, files):
    if "/" in page.file.src_uri:  # only top-level pages link ../ into the repository
        return markdown
    return LINK.sub(r"](repo/\1", markdown)
