"""The consent page and the authorization error page: plain HTML, no external assets.

The one stylesheet is inline and allowed by its hash, so the CSP has no `unsafe-inline`.
Providers refuse framing (``frame-ancestors 'none'``), which is why the service opens OAuth in
a popup. ``form-action`` names this origin and the client's redirect origin: browsers apply it
to the redirect that follows the form POST.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

from jinja2 import Environment
from markupsafe import Markup

from embedded_ui.sandbox.store import SCOPES, Account

_CSS = """
:root { color-scheme: light dark; --accent: #2f5bd3; --fg: #1b1f29; --bg: #f4f5f8;
  --card: #fff; --muted: #5b6272; --border: #d6d9e0; }
@media (prefers-color-scheme: dark) { :root { --fg: #eceef3; --bg: #15171c; --card: #1f232b;
  --muted: #a3aab8; --border: #363b47; --accent: #7f9cff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
main { max-width: 30rem; margin: 3rem auto; padding: 2rem; background: var(--card);
  border: 1px solid var(--border); border-radius: .75rem; }
.brand { color: var(--muted); font-size: .875rem; margin: 0 0 1rem; }
h1 { font-size: 1.35rem; margin: 0 0 1rem; line-height: 1.3; }
h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; }
ul { padding-left: 1.25rem; margin: 0; }
li { margin: .35rem 0; }
.note { color: var(--muted); font-size: .875rem; }
label { display: block; font-weight: 600; margin: 1.25rem 0 .35rem; }
select { width: 100%; padding: .5rem; font: inherit; color: inherit; background: var(--card);
  border: 1px solid var(--border); border-radius: .375rem; }
.actions { display: flex; gap: .75rem; justify-content: flex-end; margin-top: 1.75rem; }
button { font: inherit; font-weight: 600; padding: .6rem 1.25rem; border-radius: .375rem;
  border: 1px solid var(--border); background: transparent; color: inherit; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button:focus-visible, select:focus-visible { outline: 3px solid var(--accent);
  outline-offset: 2px; }
code { overflow-wrap: anywhere; }
""".strip()
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

_CONSENT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {{ client_name }} · Sandbox Commerce</title>
<style>{{ css }}</style>
</head>
<body>
<main aria-labelledby="title">
<p class="brand">Sandbox Commerce</p>
<h1 id="title"><strong>{{ client_name }}</strong> wants to access your store</h1>
{% if accounts|length == 1 %}
<p>Signed in as <strong>{{ accounts[0].name }}</strong> ({{ accounts[0].email }}).</p>
{% endif %}
<h2 id="scopes-title">It will be able to:</h2>
<ul aria-labelledby="scopes-title">
{% for scope in scopes %}
<li><strong>{{ scope.key }}</strong>: {{ scope.description }}</li>
{% endfor %}
</ul>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="consent" value="{{ consent_id }}">
{% if accounts|length > 1 %}
<label for="account">Store</label>
<select id="account" name="account">
{% for account in accounts %}
<option value="{{ account.id }}">{{ account.name }} ({{ account.email }})</option>
{% endfor %}
</select>
{% else %}
<input type="hidden" name="account" value="{{ accounts[0].id }}">
{% endif %}
<p class="note">Approving sends you back to <code>{{ redirect_origin }}</code>.</p>
<div class="actions">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="approve" class="primary">Approve</button>
</div>
</form>
</main>
</body>
</html>
"""

_ERROR = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorization failed · Sandbox Commerce</title>
<style>{{ css }}</style>
</head>
<body>
<main aria-labelledby="title">
<p class="brand">Sandbox Commerce</p>
<h1 id="title">This authorization request cannot continue</h1>
<p role="alert"><strong>{{ error }}</strong>{% if description %}: {{ description }}{% endif %}</p>
<p class="note">The application that sent you here made an invalid request. You can close this
window.</p>
</main>
</body>
</html>
"""

_env = Environment(autoescape=True)
_consent_template = _env.from_string(_CONSENT)
_error_template = _env.from_string(_ERROR)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_csp(form_targets: tuple[str, ...] = ()) -> str:
    form_action = " ".join(("'self'", *form_targets)) if form_targets else "'none'"
    return (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def page_headers(form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": page_csp(form_targets),
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }


def render_consent(
    *,
    client_name: str,
    scope: str,
    accounts: list[Account],
    consent_id: str,
    redirect_uri: str,
) -> str:
    scopes = [
        {"key": key, "description": SCOPES.get(key, key)} for key in scope.split() if key in SCOPES
    ]
    return _consent_template.render(
        css=Markup(_CSS),  # noqa: S704 - a constant of this module
        client_name=client_name,
        scopes=scopes,
        accounts=accounts,
        consent_id=consent_id,
        redirect_origin=origin_of(redirect_uri),
    )


def render_error(error: str, description: str | None) -> str:
    return _error_template.render(
        css=Markup(_CSS),  # noqa: S704 - a constant of this module
        error=error,
        description=description,
    )
