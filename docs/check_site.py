"""Smoke checks on the built docs site, for faults a strict build lets through.

Run it on the directory ``mkdocs build`` wrote::

    mkdocs build --strict -d /tmp/site
    python docs/check_site.py /tmp/site

It reads the HTML only (no browser) and fails, listing every fault, when:

- a page asks another host for a script, a stylesheet or a font: the site must render
  with no network;
- a page has a Mermaid diagram but does not load the Mermaid script that ships with the
  site, or that script is missing or truncated: the diagram would show as its source;
- a line of an API signature is longer than ``MAX_SIGNATURE_LINE`` characters: the
  signature was not wrapped and runs out of its block;
- two sections side by side on a page have the same title, so the table of contents
  shows it twice;
- a name left out of the API reference (``HIDDEN_MEMBERS``) has an entry there.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

MERMAID_SCRIPT = "javascripts/mermaid.min.js"
"""Where the site keeps the Mermaid script, relative to its root."""

MERMAID_MIN_BYTES = 1_000_000
"""A smaller Mermaid script is taken for a truncated or placeholder file."""

MAX_SIGNATURE_LINE = 88
"""Longest signature line accepted; signatures are formatted for 60 columns."""

HIDDEN_MEMBERS = ("BUCKETS", "CATCH_UP")
"""Tuning constants the API reference leaves out."""

_EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)
_EXTERNAL_CSS = re.compile(r"""(url\(\s*["']?|@import\s+["'])(https?:)?//""", re.IGNORECASE)
_VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _Page(HTMLParser):
    """Collects what the checks need from one page in a single pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[str, bool]] = []  # (src, loaded before the page is ready)
        self.external: list[str] = []
        self.diagrams = 0
        self.signatures: list[str] = []
        self.headings: list[tuple[int, str, str]] = []  # (level, id, text)
        self._signature_depth = 0  # open elements inside a signature block, 0 outside
        self._signature: list[str] = []
        self._heading: tuple[int, str] | None = None
        self._heading_text: list[str] = []
        self._skip_depth = 0  # inside a heading's permalink or symbol badge

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        classes = attr.get("class", "").split()
        if tag == "script" and "src" in attr:
            blocking = "async" not in attr and "defer" not in attr
            self.scripts.append((attr["src"], blocking))
            if _EXTERNAL.match(attr["src"]):
                self.external.append(f"<script src={attr['src']}>")
        if tag == "link" and _EXTERNAL.match(attr.get("href", "")):
            rel = attr.get("rel", "").split()
            if {"stylesheet", "preload", "preconnect", "modulepreload"} & set(rel):
                self.external.append(f"<link rel={attr.get('rel')} href={attr['href']}>")
        if tag == "pre" and "mermaid" in classes:
            self.diagrams += 1
        if self._signature_depth:
            if tag not in _VOID:
                self._signature_depth += 1
        elif tag == "div" and "doc-signature" in classes:
            self._signature_depth = 1
            self._signature = []
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._heading = (int(tag[1]), attr.get("id", ""))
            self._heading_text = []
        elif self._heading is not None:
            if self._skip_depth:
                self._skip_depth += tag not in _VOID
            elif "headerlink" in classes or "doc-symbol" in classes:
                self._skip_depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self._signature_depth:
            self._signature_depth -= 1
            if not self._signature_depth:
                self.signatures.append("".join(self._signature))
        if self._heading is not None:
            if tag == f"h{self._heading[0]}":
                text = " ".join("".join(self._heading_text).split())
                self.headings.append((*self._heading, text))
                self._heading = None
                self._skip_depth = 0
            elif self._skip_depth:
                self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._signature_depth:
            self._signature.append(data)
        if self._heading is not None and not self._skip_depth:
            self._heading_text.append(data)


def check_page(site: Path, page: Path, parsed: _Page) -> list[str]:
    """Return the faults of one page, each naming the page."""
    name = page.relative_to(site).as_posix()
    faults = [f"{name}: loads {what} from another host" for what in parsed.external]
    if parsed.diagrams:
        local = [
            blocking
            for src, blocking in parsed.scripts
            if (page.parent / src).resolve() == (site / MERMAID_SCRIPT).resolve()
        ]
        if not local:
            faults.append(
                f"{name}: {parsed.diagrams} Mermaid diagram(s) but no <script> for "
                f"{MERMAID_SCRIPT}: they would be fetched from a CDN or show as text"
            )
        elif not all(local):
            faults.append(
                f"{name}: {MERMAID_SCRIPT} is loaded async or deferred, so the theme may "
                "not see it and would fetch Mermaid from a CDN"
            )
    long_lines = [
        line.rstrip()
        for signature in parsed.signatures
        for line in signature.splitlines()
        if len(line.rstrip()) > MAX_SIGNATURE_LINE
    ]
    faults += [
        f"{name}: a signature line of {len(line)} characters, more than "
        f"{MAX_SIGNATURE_LINE} (is black installed?): {line.strip()[:60]}..."
        for line in long_lines
    ]
    seen: dict[tuple[str, ...], str] = {}  # a heading's path from the top, to its anchor
    path: list[tuple[int, str]] = []  # the open sections: (level, title)
    for level, anchor, text in parsed.headings:
        while path and path[-1][0] >= level:
            path.pop()
        key = (*(title for _, title in path), text)
        path.append((level, text))
        if key in seen:
            faults.append(
                f'{name}: two sections titled "{text}" side by side '
                f"(#{seen[key]} and #{anchor}), listed twice in the table of contents"
            )
        seen.setdefault(key, anchor)
        member = anchor.rsplit(".", 1)[-1]
        if anchor.startswith("resilio.") and member in HIDDEN_MEMBERS:
            faults.append(f"{name}: {anchor} is in the API reference")
    return faults


def check_site(site: Path) -> tuple[list[str], dict[str, int]]:
    """Check every page of the built site; return the faults and what was counted."""
    faults: list[str] = []
    counts = {"pages": 0, "diagrams": 0, "signatures": 0}
    script = site / MERMAID_SCRIPT
    if not script.is_file():
        faults.append(f"{MERMAID_SCRIPT} is missing from the site")
    elif script.stat().st_size < MERMAID_MIN_BYTES:
        faults.append(f"{MERMAID_SCRIPT} is only {script.stat().st_size} bytes")
    elif b"mermaid" not in script.read_bytes()[-4096:]:
        faults.append(f"{MERMAID_SCRIPT} does not define the global mermaid")
    faults += [
        f"{sheet.relative_to(site).as_posix()}: loads from another host"
        for sheet in sorted(site.rglob("*.css"))
        if _EXTERNAL_CSS.search(sheet.read_text(encoding="utf-8"))
    ]
    for page in sorted(site.rglob("*.html")):
        parsed = _Page()
        parsed.feed(page.read_text(encoding="utf-8"))
        parsed.close()
        counts["pages"] += 1
        counts["diagrams"] += parsed.diagrams
        counts["signatures"] += len(parsed.signatures)
        faults += check_page(site, page, parsed)
    if not counts["pages"]:
        faults.append(f"no HTML pages under {site}")
    elif not counts["diagrams"] or not counts["signatures"]:
        faults.append(f"expected Mermaid diagrams and API signatures, found {counts}")
    return faults, counts


def main(argv: list[str]) -> int:
    """Check the site directory named on the command line; 1 if anything is wrong."""
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python docs/check_site.py SITE_DIR", file=sys.stderr)
        return 2
    faults, counts = check_site(Path(argv[0]))
    for fault in faults:
        print(fault, file=sys.stderr)
    summary = ", ".join(f"{number} {what}" for what, number in counts.items())
    print(f"docs site: {summary}; {len(faults) or 'no'} fault(s)")
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
