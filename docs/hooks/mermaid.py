"""MkDocs hook: only pages with a diagram load the Mermaid script that ships with the site.

``extra_javascript`` puts the script on every page; the script is 3.5 MB, so a page
without a ``mermaid`` block drops its ``<script>`` tag.
"""

from __future__ import annotations

import re
from typing import Any

_SCRIPT = re.compile(r'<script src="[^"]*javascripts/mermaid\.min\.js"></script>\s*')


def on_post_page(output: str, **kwargs: Any) -> str:
    """Drop the Mermaid ``<script>`` from a page that has no diagram."""
    if 'class="mermaid"' in output:
        return output
    return _SCRIPT.sub("", output)


def on_post_template(output_content: str, template_name: str, **kwargs: Any) -> str:
    """Drop it from the pages rendered from a template alone, such as ``404.html``."""
    return on_post_page(output_content)
