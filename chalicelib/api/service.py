"""What the /v1 endpoints do once the bearer check has passed: validate input, read and write the user's data."""

from __future__ import annotations

from typing import Any, Callable

from chalicelib.crypto.secrets import new_id
from chalicelib.oauth.throttle import Limit, Throttle, subject_of
from chalicelib.settings import Settings
from chalicelib.store.api_store import AnalysisRecord, ApiStore, ProjectRecord

NAME_LIMIT = 100
DESCRIPTION_LIMIT = 1000


class InvalidInput(Exception):
    """The request body is not what the endpoint accepts (400, with a message naming the problem)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": "invalid_request", "error_description": self.message}
        if self.field:
            body["field"] = self.field
        return body


# one fixed description per field (never the request's own text, RFC 6749 §5.2 spirit)
FIELD_RULES = {
    "name": (NAME_LIMIT, True, "name is required: a string of 1 to 100 characters"),
    "description": (DESCRIPTION_LIMIT, False, "description must be a string of at most 1000 characters"),
}


def _text(payload: dict[str, Any], name: str) -> str:
    limit, required, rule = FIELD_RULES[name]
    value = payload.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise InvalidInput(rule, name)
    return value.strip()


def create_project(store: ApiStore, user_id: str, payload: Any, now: int) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidInput("the request body must be a JSON object")
    if set(payload) - set(FIELD_RULES):  # the unknown name is not echoed
        raise InvalidInput("the body may only hold the fields name and description")
    project = ProjectRecord(
        project_id=new_id("prj_"),
        user_id=user_id,
        name=_text(payload, "name"),
        description=_text(payload, "description"),
        created_at=now,
    )
    store.put_project(project)
    return project_view(project)


def list_analyses(store: ApiStore, user_id: str) -> list[dict[str, Any]]:
    return [analysis_view(a) for a in sorted(store.list_analyses(user_id), key=lambda a: -a.created_at)]


def project_view(project: ProjectRecord) -> dict[str, Any]:
    return {
        "id": project.project_id,
        "name": project.name,
        "description": project.description,
        "created_at": project.created_at,
    }


def analysis_view(analysis: AnalysisRecord) -> dict[str, Any]:
    return {
        "id": analysis.analysis_id,
        "repository": analysis.repository,
        "status": analysis.status,
        "summary": analysis.summary,
        "created_at": analysis.created_at,
    }


def seed_demo_analyses(store: ApiStore, user_id: str, now: int) -> None:
    """Two analyses for the local run's demo user, so GET /v1/analyses has something to show."""
    demos = [
        ("github.com/clipron/demo-service", "completed", "12 findings: 2 high, 4 medium, 6 low"),
        ("github.com/clipron/demo-web", "running", "analysis in progress"),
    ]
    for offset, (repository, status, summary) in enumerate(demos):
        store.put_analysis(AnalysisRecord(new_id("ana_"), user_id, repository, status, summary, now - 3600 * offset))


class ClipronApi:
    """The /v1 operations for the user a token names, with the per-user write quota; built once by wiring."""

    def __init__(self, store: ApiStore, throttle: Throttle, settings: Settings, clock: Callable[[], int]) -> None:
        self.store = store
        self.throttle = throttle
        self.write_limit = Limit("api-writes", settings.api_writes_per_user_per_minute, 60)
        self.clock = clock

    def analyses(self, user_id: str) -> list[dict[str, Any]]:
        return list_analyses(self.store, user_id)

    def create_project(self, user_id: str, payload: Any) -> dict[str, Any]:
        # API_WRITES_PER_USER_PER_MINUTE: Throttled (429 temporarily_unavailable) before anything is validated or stored
        self.throttle.take((self.write_limit, subject_of(user_id)))
        return create_project(self.store, user_id, payload, self.clock())
