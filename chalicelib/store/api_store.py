"""The Clipron API's data: analyses and projects, one partition per user in the API table.

Keys: pk "user#<sub>", sk "analysis#<id>" or "project#<id>". Every read is a Query on the caller's
own partition, so a user can only ever list what is theirs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.records import AlreadyExists
from chalicelib.store.dynamo import ApiItem, _translated

MAX_LISTED = 100


@dataclass
class AnalysisRecord:
    analysis_id: str
    user_id: str
    repository: str
    status: str
    summary: str
    created_at: int


@dataclass
class ProjectRecord:
    project_id: str
    user_id: str
    name: str
    description: str
    created_at: int


def _pk(user_id: str) -> str:
    return f"user#{user_id}"


def _data(record: Any) -> dict[str, Any]:
    data = asdict(record)
    data.pop("created_at")
    return data


class ApiStore:
    """Reads and writes of the API table (the models are bound to the stage's tables by wiring)."""

    def list_analyses(self, user_id: str) -> list[AnalysisRecord]:
        with _translated():
            items = ApiItem.query(
                _pk(user_id), ApiItem.sk.startswith("analysis#"), consistent_read=True, limit=MAX_LISTED
            )
            return [AnalysisRecord(created_at=int(item.created_at), **item.data) for item in items]

    def put_analysis(self, analysis: AnalysisRecord) -> None:
        item = ApiItem(_pk(analysis.user_id), f"analysis#{analysis.analysis_id}",
                       data=_data(analysis), created_at=analysis.created_at)
        with _translated(AlreadyExists):
            item.save(condition=ApiItem.pk.does_not_exist())

    def put_project(self, project: ProjectRecord) -> None:
        item = ApiItem(_pk(project.user_id), f"project#{project.project_id}",
                       data=_data(project), created_at=project.created_at)
        with _translated(AlreadyExists):
            item.save(condition=ApiItem.pk.does_not_exist())
