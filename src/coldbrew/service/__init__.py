"""The HTTP service (``coldbrew serve``): FastAPI app factory, routers, auth, schemas.

Needs the ``server`` extra (``pip install 'coldbrew[server]'``). Nothing is imported or
started at import time; build an app with :func:`coldbrew.service.app.create_app`.
"""
