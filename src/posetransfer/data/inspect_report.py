"""What ``posetransfer inspect-data`` reports: typed findings, counts per split, and their text.

:func:`~posetransfer.data.inspect.inspect_dataset` (the checks) returns an :class:`InspectReport`:
every :class:`Finding` (a kind, a severity, the split, a message naming the file and line) in
discovery order and a :class:`SplitCounts` per split. The severity of a kind is fixed
(:func:`severity_of`); :func:`format_report` renders a report as a readable table.
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "WARNING_KINDS",
    "Finding",
    "InspectReport",
    "Severity",
    "SplitCounts",
    "format_report",
    "severity_of",
]

Severity = Literal["error", "warning"]

#: Finding kinds that are warnings; every other kind is an error.
WARNING_KINDS = frozenset(
    {"few_keypoints", "duplicate_pair", "self_pair", "image_without_pose", "empty_split",
     "missing_flows"}
)  # fmt: skip


def severity_of(kind: str) -> Severity:
    """``"warning"`` for the kinds in :data:`WARNING_KINDS`, else ``"error"``."""
    return "warning" if kind in WARNING_KINDS else "error"


@dataclass(frozen=True)
class Finding:
    """One problem found in a dataset.

    Attributes:
        kind: Machine-readable kind (see :mod:`posetransfer.data.inspect`), e.g.
            ``"missing_image"``.
        severity: ``"error"`` (the data cannot be used as is) or ``"warning"``.
        split: Split the finding belongs to (``"all"`` for files shared by every split).
        message: One readable line naming the file / image / line involved.
        path: The file involved, when there is one.
        line: 1-based line number within ``path``, when known.
    """

    kind: str
    severity: Severity
    split: str
    message: str
    path: str | None = None
    line: int | None = None


@dataclass
class SplitCounts:
    """What one split holds. ``None`` means "not counted" (the file could not be read)."""

    image_files: int | None = None
    poses: int | None = None
    pairs: int | None = None
    pair_images: int | None = None
    flows_found: int | None = None
    flows_missing: int | None = None


@dataclass
class InspectReport:
    """Result of :func:`~posetransfer.data.inspect.inspect_dataset`.

    Attributes:
        root: Dataset folder.
        layout: ``"patn"``, ``"diaf"``, or ``None`` when the layout could not be discovered.
        counts: Split name -> counts, in inspection order.
        findings: Every problem found, in discovery order.
    """

    root: str
    layout: str | None
    counts: dict[str, SplitCounts] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """Findings of severity ``"error"``."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings of severity ``"warning"``."""
        return [f for f in self.findings if f.severity == "warning"]

    def kinds(self) -> collections.Counter[str]:
        """Number of findings per kind."""
        return collections.Counter(f.kind for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: root, layout, counts, a summary per kind, and every finding."""
        return {
            "root": self.root,
            "layout": self.layout,
            "ok": not self.errors,
            "num_errors": len(self.errors),
            "num_warnings": len(self.warnings),
            "kinds": dict(sorted(self.kinds().items())),
            "counts": {split: asdict(c) for split, c in self.counts.items()},
            "findings": [asdict(f) for f in self.findings],
        }


# -- rendering ---------------------------------------------------------------------------------

_COLUMNS = (("split", None), ("images", "image_files"), ("poses", "poses"), ("pairs", "pairs"),
            ("pair images", "pair_images"), ("flows", "flows_found"),
            ("no flow", "flows_missing"))  # fmt: skip


def format_report(report: InspectReport, max_listed: int = 5) -> str:
    """Render a report: a table of counts per split, then findings grouped by kind.

    Args:
        report: From :func:`~posetransfer.data.inspect.inspect_dataset`.
        max_listed: Examples listed per kind (the count is always complete).

    Returns:
        Multi-line text without a trailing newline.
    """
    lines = [f"dataset: {report.root} (layout: {report.layout or 'unknown'})"]
    if report.counts:
        rows = [[name for name, _ in _COLUMNS]]
        for split, counts in report.counts.items():
            values = [getattr(counts, attr) for _, attr in _COLUMNS[1:]]
            rows.append([split, *("-" if v is None else str(v) for v in values)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        lines.append("")
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
    for severity, title in (("error", "errors"), ("warning", "warnings")):
        found = [f for f in report.findings if f.severity == severity]
        if not found:
            continue
        lines += ["", f"{title} ({len(found)}):"]
        by_kind: dict[str, list[Finding]] = {}
        for f in found:
            by_kind.setdefault(f.kind, []).append(f)
        for kind, items in by_kind.items():
            lines.append(f"  {kind}: {len(items)}")
            lines += [f"    [{f.split}] {f.message}" for f in items[: max(0, max_listed)]]
            if len(items) > max_listed:
                lines.append(f"    ... and {len(items) - max(0, max_listed)} more")
    verdict = (
        f"FAILED: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
        if report.errors
        else f"OK: no errors, {len(report.warnings)} warning(s)"
    )
    lines += ["", verdict]
    return "\n".join(lines)
