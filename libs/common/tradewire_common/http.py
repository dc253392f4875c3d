"""The HTTP app factory: every service serves /healthz, /readyz, /metrics plus its own routes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response

from tradewire_common.security import api_token, token_matches

if TYPE_CHECKING:
    from tradewire_common.service import Service

log = logging.getLogger(__name__)


def require_token(authorization: Annotated[str | None, Header()] = None) -> str:
    """FastAPI dependency for control endpoints: ``Authorization: Bearer $TRADEWIRE_API_TOKEN``.

    Returns the actor name recorded with the action (the token itself is never logged).
    """
    expected = api_token()
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token_matches(presented.strip(), expected):
        raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    return "api-token"


Actor = Annotated[str, Depends(require_token)]


def create_app(service: Service, extra_routes: Callable[[FastAPI], None] | None = None) -> FastAPI:
    app = FastAPI(title=f"Tradewire {service.name}", version="0.1.0", docs_url="/docs", redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service.name}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, object]:
        if not service.ready:
            response.status_code = 503
        return {"ready": service.ready, "service": service.name, "trading_state": service.trading.summary()}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    if extra_routes is not None:
        extra_routes(app)
    return app
