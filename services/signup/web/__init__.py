"""The signup's web: the landing page, registration, verification, terms, the client-area panel and SSO
(pages.py, links.py, panel.py), the JSON API (api.py), what every page shares (support.py), the
security middleware (guard.py), the app that puts them together (app.py) and its server (server.py).
The templates stay in services/signup/templates, next to the emails'."""

from services.signup.web.app import create_app

__all__ = ["create_app"]
