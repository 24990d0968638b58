"""Authentication as kube-apiserver does it: bearer tokens, anonymous requests, the 401.

The chain (pkg/kubeapiserver/authenticator/config.go): the token authenticators (a static
token file, ``--token-auth-file``, and ServiceAccount tokens) behind the bearer-token reader
(staging/src/k8s.io/apiserver/pkg/authentication/request/bearertoken), wrapped by the group
adder that gives every authenticated user ``system:authenticated``; when anonymous auth is
on, a request the chain does not handle (no ``Authorization: Bearer`` header) is
``system:anonymous`` in ``system:unauthenticated`` — but a token that is presented and not
recognised is still 401 (``union.NewFailOnError``: "don't consider a bad bearer token …
anonymous"). The 401 body is ``apierrors.NewUnauthorized("Unauthorized")``, which kubectl
prints as ``error: You must be logged in to the server (Unauthorized)``.
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass

from auditor.sandbox.rbac import UserInfo
from auditor.sandbox.serviceaccounts import InvalidToken, ServiceAccountTokens
from auditor.sandbox.status import ApiError

# k8s.io/apiserver/pkg/authentication/user
ANONYMOUS = "system:anonymous"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"


@dataclass(frozen=True, slots=True)
class StaticToken:
    """One line of a token file: the token and the user it stands for."""

    token: str
    user: UserInfo


def parse_token_file(text: str, source: str = "token file") -> list[StaticToken]:
    """The records of a ``--token-auth-file`` (tokenfile.NewCSV): CSV lines ``token,user,uid``
    with an optional fourth column of comma-separated groups (quoted, as CSV requires:
    ``t0k3n,alice,1001,"dev,ops"``). Fewer than three columns is an error; a record with an
    empty token is skipped; a later duplicate token wins, as in the Go map."""
    out: dict[str, StaticToken] = {}
    for record in csv.reader(io.StringIO(text)):
        if not record:
            continue  # encoding/csv skips empty lines
        if len(record) < 3:
            raise ValueError(f"token file '{source}' must have at least 3 columns (token, user "
                             f"name, user uid), found {len(record)}")
        if record[0] == "":
            continue
        groups = tuple(record[3].split(",")) if len(record) >= 4 else ()
        out[record[0]] = StaticToken(record[0], UserInfo(record[1], record[2], groups))
    return list(out.values())


def read_token_file(path: str | pathlib.Path) -> list[StaticToken]:
    """:func:`parse_token_file` over a file."""
    return parse_token_file(pathlib.Path(path).read_text(encoding="utf-8"), str(path))


def format_token_file(tokens: Iterable[StaticToken]) -> str:
    """The CSV of a token file holding ``tokens`` (groups quoted when there are several)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for entry in tokens:
        row = [entry.token, entry.user.name, entry.user.uid]
        if entry.user.groups:
            row.append(",".join(entry.user.groups))
        writer.writerow(row)
    return buffer.getvalue()


def unauthorized() -> ApiError:
    """The 401 every authentication failure gets (the reason never reaches the client)."""
    return ApiError("Unauthorized", "Unauthorized", code=401)


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """``AuthenticatedGroupAdder``: append ``system:authenticated`` unless the user is
    anonymous or already in it (or in ``system:unauthenticated``)."""
    if user.name == ANONYMOUS or ALL_AUTHENTICATED in user.groups or \
            ALL_UNAUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, ALL_AUTHENTICATED), user.extra)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (bearertoken.go), or None
    when the header is absent, of another scheme, or empty."""
    auth = (authorization or "").strip()
    if not auth:
        return None
    parts = auth.split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return None
    return parts[1] or None


class Authenticator:
    """Static tokens, then ServiceAccount tokens, then (if on) anonymous."""

    def __init__(self, tokens: Iterable[StaticToken], service_accounts: ServiceAccountTokens,
                 *, anonymous: bool) -> None:
        self._tokens = {t.token: t.user for t in tokens}
        self._service_accounts = service_accounts
        self.anonymous = anonymous

    def authenticate(self, authorization: str | None) -> UserInfo:
        """The user a request's ``Authorization`` header makes it; raises the 401
        :class:`ApiError` when the request does not authenticate."""
        token = bearer_token(authorization)
        if token is None:
            if self.anonymous:
                return UserInfo(ANONYMOUS, "", (ALL_UNAUTHENTICATED,))
            raise unauthorized()
        user = self._tokens.get(token)
        if user is None:
            try:
                user = self._service_accounts.authenticate(token)
            except InvalidToken:
                user = None
        if user is None:
            raise unauthorized()
        return with_authenticated_group(user)
