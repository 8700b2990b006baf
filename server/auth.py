"""Optional API key: header X-API-Key, enforced (and declared in the OpenAPI) only when RKD_API_KEY is set."""
from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when the server has a key")


async def require_api_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    """401 unless the server has no key or the header matches it (constant-time comparison)."""
    expected = request.app.state.rkd.settings.api_key
    if expected is None:
        return
    if key is None or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong X-API-Key", headers={"WWW-Authenticate": "APIKey"})
