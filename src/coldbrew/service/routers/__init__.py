"""The API's routers, one module each; ``create_app`` includes every module listed here.

Each module exposes ``router = fastapi.APIRouter()`` with full paths (``/v1/...``). To add
endpoints, write a module and add its name to ``ROUTER_MODULES``.
"""

ROUTER_MODULES = ["health", "events", "users", "items", "models", "reports", "chat", "search", "promotions", "analytics", "web"]
