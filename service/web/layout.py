"""The page's frame: its style sheet, the one small script that refreshes the studies section
every few seconds, and the HTML document the sections are placed in."""

from __future__ import annotations

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
form.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:.6rem;
background:#f5f5f7;padding:1rem;border-radius:6px}
form.inline{display:inline;margin:0}
label{display:flex;flex-direction:column;font-size:.85rem}
label.wide{grid-column:1/-1}
input,select,textarea{font:inherit;padding:.25rem}
button{font:inherit;padding:.4rem 1rem;align-self:end}
form.inline button{padding:.1rem .5rem;font-size:.8rem}
table{border-collapse:collapse;font-size:.85rem;margin-top:.8rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:right;white-space:nowrap}
td.why,td.wrap{white-space:normal}td.wrap{min-width:16em;max-width:34em}
th{background:#eee}td.l,th.l{text-align:left}
tr.rec td{background:#fff4e5}tr.rec td.mark{color:#e07b00;font-weight:bold}
tr.best td{background:#fff4e5;font-weight:bold}
pre{background:#fafafa;padding:.6rem;font-size:.8rem;white-space:pre-wrap}
.err{color:#a00}.muted{color:#777;font-size:.85rem}.ok{color:#070}
progress{width:140px}
"""

SCRIPT = """
(function () {
  var box = document.getElementById('studies');
  if (!box || !window.fetch) return;
  function tick() {
    var open = [].map.call(box.querySelectorAll('details[open]'), function (d) { return d.id; });
    fetch('/page/studies', {cache: 'no-store', credentials: 'same-origin'})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) {
          box.innerHTML = html;
          open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        }
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, REFRESH_MS); });
  }
  setTimeout(tick, REFRESH_MS);
})();
"""
REFRESH_SECONDS = 2.0


def page(*, form: str, plan_section: str, study_form: str, studies_section: str) -> str:
    script = SCRIPT.replace("REFRESH_MS", str(int(REFRESH_SECONDS * 1000)))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>floss serve</title><style>{STYLE}</style></head><body>"
        "<h1>floss: communication-budget planner for federated LoRA with sparse communication</h1>"
        "<p class=muted>Mbps = 10^6 bit/s, MB = 10^6 bytes; d_down / d_up: the share of the "
        "adapter's entries sent down / up each round. The JSON API and its schema: "
        "<a href=/docs>/docs</a>, <a href=/openapi.json>/openapi.json</a>.</p>"
        f'<h2>Plan</h2>{form}{plan_section}<h2 id="studies-title">Studies</h2>{study_form}'
        f'<p class=muted><a href="/">refresh</a></p><div id="studies">{studies_section}</div>'
        f"<script>{script}</script></body></html>"
    )
