"""The check's HTML page: a thumbnail of every finding, grouped by kind, with its confidence,
why it was flagged and what to do, each kind's rule stated; on the page template of the
training report (`photoclass.reporting.page`), so it is one self-contained file too."""

from __future__ import annotations

from html import escape
from pathlib import Path

from photoclass import __version__
from photoclass.checking.findings import GROUPS, CheckResult, Finding, relative
from photoclass.data.decode import UnreadableImage, decode_image
from photoclass.files import atomic_write
from photoclass.reporting import page
from photoclass.reporting.page import THUMB, Section
from photoclass.reporting.plots import thumbnail

SHOWN = 150  # thumbnails per kind; the rest are listed in a table


def write_check_report(result: CheckResult, out: Path) -> Path:
    """Write the page on `result` to the HTML file `out`."""
    out = Path(out)
    sections = [_summary(result)]
    for group, title in GROUPS.items():
        kinds = [k for k in result.kinds.values() if k.group == group]
        found = [f for f in result.findings if result.kinds[f.kind].group == group]
        if found:
            body = "".join(_kind(result, k.name, [f for f in found if f.kind == k.name]) for k in kinds)
            sections.append(Section(group, title, body))
    if result.moved:
        rows = [
            (m.kind, relative(m.source, result.root), relative(m.target, result.root)) for m in result.moved
        ]
        body = page.note(
            "Moved by this run's fix. Nothing was deleted: `check` with `undo=True` puts every file back."
        ) + page.table(("kind", "from", "to"), rows, id="moved-table", numeric_from=3)
        sections.append(Section("moved", "Moved to the quarantine", body))
    html = page.render(
        title=f"photoclass check: {result.root.name}",
        verdict=result.headline(),
        facts={
            "dataset": str(result.root),
            "classes": ", ".join(result.classes) or "none",
            "features": f"{result.model} (pretrained)",
            "a fix moves": f"findings of the kinds marked below with confidence {result.min_confidence:g} or more "
            f"({len(result.to_fix()) if not result.moved else len(result.moved)} files); nothing is deleted",
        },
        sections=sections,
        version=__version__,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    return out


def _summary(result: CheckResult) -> Section:
    counts = result.counts()
    movable = {f.path for f in result.to_fix()} if not result.moved else {m.source for m in result.moved}
    rows = [
        (
            kind.title,
            kind.rule,
            counts.get(name, 0),
            sum(1 for f in result.findings if f.kind == name and f.path in movable)
            if kind.quarantine
            else "never",
        )
        for name, kind in result.kinds.items()
    ]
    splits = [
        (split, label or "(outside class folders)", n)
        for split, per_class in result.files.items()
        for label, n in per_class.items()
    ]
    body = (
        page.note(
            "Every kind checked, with the rule that flags a file. A fix moves the files of findings whose "
            f"confidence is {result.min_confidence:g} or more into {result.root / '_quarantine'}/<kind>/, "
            "except for the kinds it never moves."
        )
        + page.table(("kind", "rule", "found", "moved by a fix"), rows, id="summary-table", numeric_from=2)
        + "<h3>Files per split and class</h3>"
        + page.table(("split", "class", "files"), splits, id="files-table", numeric_from=2)
    )
    return Section("summary", "Summary", body)


def _kind(result: CheckResult, name: str, found: list[Finding]) -> str:
    if not found:
        return ""
    kind = result.kinds[name]
    actions = {f.action for f in found}
    common = actions.pop() if len(actions) == 1 else None  # said once, not under every photo
    moved = {m.source: m.target for m in result.moved}  # a moved photo is shown from the quarantine
    figures, rest = [], []
    for finding in found:
        picture = _thumb(moved.get(finding.path, finding.path)) if len(figures) < SHOWN else None
        if picture is None:
            rest.append(finding)
            continue
        other = None if finding.other is None else _thumb(moved.get(finding.other, finding.other))
        figures.append(
            f'<figure class="finding" data-kind="{escape(name)}" data-confidence="{finding.confidence:.4f}">'
            f'<div class="pair">{picture}{other or ""}</div>{_caption(result, finding, common is None)}</figure>'
        )
    what = f" What to do: {common}." if common else ""
    html = f'<h3 id="kind-{escape(name)}">{escape(kind.title)} ({len(found)})</h3>' + page.note(
        f"Rule: {kind.rule}.{what}"
    )
    if figures:
        html += f'<div class="gallery">{"".join(figures)}</div>'
    if rest:
        rows = [(relative(f.path, result.root), f"{f.confidence:.2f}", f.detail, f.action) for f in rest]
        html += page.table(
            ("file", "confidence", "why", "what to do"), rows, id=f"table-{name}", numeric_from=1
        )
    return html


def _caption(result: CheckResult, finding: Finding, action: bool) -> str:
    path = relative(finding.path, result.root)
    return (
        f'<figcaption><span class="path" title="{escape(path)}">{escape(path)}</span><br>'
        f"confidence <b>{finding.confidence:.2f}</b><br>{escape(finding.detail)}"
        + (f'<br><span class="action">{escape(finding.action)}</span>' if action else "")
        + "</figcaption>"
    )


def _thumb(path: Path) -> str | None:
    """An embedded thumbnail of a photo, or None for a folder or a file that is not one."""
    if not path.is_file():
        return None
    try:
        return page.img(thumbnail(decode_image(path, THUMB, keep_aspect=True)), path.name)
    except UnreadableImage:
        return None
