"""What an import did (or would do), and the error that rejects one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from api.errors import InvalidInput


@dataclass(frozen=True)
class ImportIssue:
    row: int | None  # 1-based feature number in the file (a CSV's row N is on line N + 1)
    field: str | None
    message: str
    code: str | None = None  # the feature's code, when it has one

    def describe(self, file: str) -> str:
        where = [file]
        if self.row is not None:
            where.append(f"第 {self.row} 个要素")
        if self.code:
            where.append(f"编码 {self.code}")
        if self.field:
            where.append(f"字段 {self.field}")
        return "，".join(where) + "：" + self.message


@dataclass
class ImportReport:
    file: str
    kind: str
    format: str
    features: int
    crs: str | None = None
    encoding: str | None = None
    level: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    repaired: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[ImportIssue] = field(default_factory=list)
    dry_run: bool = False
    generation: int | None = None
    draft_id: int | None = None
    coverage: dict[str, Any] | None = None  # the activated generation's check: id and summary
    events: dict[str, int] | None = None  # open events re-assigned / left for manual dispatch

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["errors"] = [asdict(e) | {"text": e.describe(self.file)} for e in self.errors]
        return body


class ImportRejected(InvalidInput):
    """The file has problems; nothing was written. Details name file, row, field and reason."""

    code = "import_rejected"

    def __init__(self, report: ImportReport) -> None:
        shown = report.errors[:200]
        super().__init__(
            f"{report.file}：发现 {len(report.errors)} 个问题，未写入任何数据",
            where=report.file,
            details=[asdict(e) | {"text": e.describe(report.file)} for e in shown],
        )
        self.report = report
