"""Request-body rules of the user and server routes (shape only; existence checks live in the state).

Lenient where the reference says clients differ (``billing_user_id`` as int or numeric string, role ids
as ints or numeric strings), strict where it names a rule (status enum, roles as ids not objects, exactly
one of ``os``/``application``). Unknown fields are ignored, as Laravel does.
"""

from __future__ import annotations

import json
import re
from typing import Any

from simulators.solusvm.apierrors import Invalid
from simulators.solusvm.model import USER_STATUSES

# Laravel's default ``email`` rule is RFC-lenient; one "@" with something on each side is the heart of it.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}``; anything else is a 422."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid({"body": ["The request body must be valid JSON."]}) from None
    if not isinstance(body, dict):
        raise Invalid({"body": ["The request body must be a JSON object."]})
    return body


def as_int(value: Any) -> int | None:
    """An int, or a string of digits, as int; anything else (bool, float, object) as None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def user_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Validated user attributes present in ``body`` (all of them optional except ``email`` on create)."""
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    if creating or "email" in body:
        email = body.get("email")
        if email is None or email == "":
            errors["email"] = ["The email field is required."]
        elif not isinstance(email, str) or len(email) > 255 or not _EMAIL.match(email):
            errors["email"] = ["The email must be a valid email address."]
        else:
            fields["email"] = email
    if "password" in body:
        password = body["password"]
        if not isinstance(password, str) or not password:
            errors["password"] = ["The password must be a non-empty string."]
        else:
            fields["password"] = password
    if "status" in body:
        if body["status"] not in USER_STATUSES:
            errors["status"] = ["The selected status is invalid."]
        else:
            fields["status"] = body["status"]
    if "roles" in body:
        roles = body["roles"]
        if not isinstance(roles, list):
            errors["roles"] = ["The roles must be an array."]
        else:
            ids = [as_int(role) for role in roles]
            for index, role_id in enumerate(ids):
                if role_id is None:
                    errors[f"roles.{index}"] = [f"The roles.{index} must be an integer."]
            if not any(key.startswith("roles.") for key in errors):
                fields["roles"] = ids
    for name in ("billing_user_id", "limit_group_id", "language_id"):
        if name not in body:
            continue
        value = body[name]
        if value is None and name != "language_id":
            fields[name] = None
        elif (number := as_int(value)) is None:
            errors[name] = [f"The {name} must be an integer."]
        else:
            fields[name] = number
    if "billing_token" in body:
        token = body["billing_token"]
        if token is not None and not isinstance(token, str):
            errors["billing_token"] = ["The billing token must be a string."]
        else:
            fields["billing_token"] = token
    if errors:
        raise Invalid(errors)
    return fields


def server_create_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Validated ``POST /servers`` attributes; existence of plan/location/user is checked by the state."""
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    for name in ("plan", "location"):
        number = as_int(body.get(name))
        if number is None:
            errors[name] = [f"The {name} field is required and must be an integer id."]
        else:
            fields[name] = number
    if body.get("user") is not None:
        user_id = as_int(body["user"])
        if user_id is None:
            errors["user"] = ["The user must be an integer id."]
        fields["user"] = user_id
    has_os = body.get("os") is not None
    has_application = body.get("application") is not None
    if has_os == has_application:
        errors["os"] = ["Exactly one of os or application is required."]
    else:
        key = "os" if has_os else "application"
        if (image := as_int(body[key])) is None:
            errors[key] = [f"The {key} must be an integer id."]
        fields[f"{key}_id"] = image
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        errors["name"] = ["The name must be a non-empty string."]
    fields["name"] = name
    fqdns = body.get("fqdns") or []
    if not isinstance(fqdns, list) or not all(isinstance(item, str) for item in fqdns):
        errors["fqdns"] = ["The fqdns must be an array of strings."]
    fields["fqdns"] = fqdns
    description = body.get("description") or ""
    fields["description"] = description if isinstance(description, str) else str(description)
    if errors:
        raise Invalid(errors)
    return fields
