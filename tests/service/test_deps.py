"""The request-scoped database session commits before the response leaves."""

from __future__ import annotations

import typing

from service.api.deps import SessionDep


def test_session_commits_before_the_response_is_sent():
    """With FastAPI's default ("request") scope the commit runs after the response is sent: a
    client that uses a resource right after its 201 can miss it (seen in CI: a job posted right
    after its dataset's 201 got 404 "dataset not found")."""
    depends = typing.get_args(SessionDep)[1]
    assert depends.scope == "function"
