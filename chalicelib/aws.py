"""boto3 clients, created on first use and shared. Importing this module costs nothing."""
from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            import boto3  # deferred: keeps `import app` cheap
            from botocore.config import Config

            from chalicelib.settings import get_settings

            s = get_settings()
            _clients[service] = boto3.session.Session().client(
                service,
                region_name=s.region,
                endpoint_url=s.aws_endpoint,
                config=Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=64),
            )
        return _clients[service]


def reset_clients() -> None:
    with _lock:
        _clients.clear()


def is_conditional_check_failure(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
