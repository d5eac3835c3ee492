"""The page the OAuth popup ends on: tiny, self-contained, and strict.

It loads nothing (no external script, style, font or image), so no third party learns the
callback URL; ``Referrer-Policy: no-referrer`` keeps the URL (with ``code`` and ``state``) out
of any request anyway, and the script drops both from the address bar at once. The script and
the style are constants allowed by their SHA-256 in the CSP: no ``unsafe-inline``, no nonce.
The flow id and the service's origin reach the script as ``data-`` attributes, escaped by
Jinja2.

When the page knows the flow, it posts ``{type: "eui:oauth", flowId}`` to ``window.opener``
with the service's own origin as the target (nothing else can read it, and it carries no
secret: the modal asks the server for the outcome) and closes itself. A page that does not know
the flow (no or unknown state) stays open so the person can read why.
"""

from __future__ import annotations

import base64
import hashlib

from jinja2 import Environment
from markupsafe import Markup

_SCRIPT = """
(function () {
  var data = document.body.dataset;
  try { history.replaceState(null, "", location.pathname); } catch (e) {}
  if (!data.flow) { return; }
  if (window.opener) {
    try {
      window.opener.postMessage({ type: "eui:oauth", flowId: data.flow }, data.origin);
    } catch (e) {}
  }
  window.close();
})();
""".strip()

_CSS = """
:root { color-scheme: light dark; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 28rem; margin: 4rem auto; padding: 0 1.5rem; text-align: center; }
h1 { font-size: 1.25rem; margin: 0 0 .75rem; }
p { margin: .5rem 0; }
""".strip()


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = (
    f"default-src 'none'; script-src 'sha256-{_sha256(_SCRIPT)}'; "
    f"style-src 'sha256-{_sha256(_CSS)}'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head>
<body data-flow="{{ flow_id }}" data-origin="{{ origin }}">
<main>
<h1>{{ title }}</h1>
<p role="{{ 'status' if ok else 'alert' }}">{{ message }}</p>
<p>You can close this window.</p>
</main>
<script>{{ script }}</script>
</body>
</html>
"""

_template = Environment(autoescape=True).from_string(_PAGE)


def render_page(*, ok: bool, message: str, origin: str, flow_id: str | None) -> str:
    return _template.render(
        title="Connected" if ok else "Could not connect",
        message=message,
        ok=ok,
        origin=origin,
        flow_id=flow_id or "",
        css=Markup(_CSS),  # noqa: S704 - a constant of this module
        script=Markup(_SCRIPT),  # noqa: S704 - a constant of this module
    )
