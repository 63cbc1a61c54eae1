# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Differences between the Nova releases the API code runs on.

Each difference is one named function, so the controller reads the same on
every release.
"""

from nova.api import validation


def validated(cls):
    """Mark a controller whose every method has request/response schemas.

    Nova 2026.1 marks such controllers with validation.validated (its own
    tests then insist on the schemas); older releases have no mark.
    """
    mark = getattr(validation, 'validated', None)
    return mark(cls) if mark else cls


def request_body_schema(schema):
    """Decorator validating the request body against ``schema`` (400)."""
    # 2024.1 names it validation.schema; later releases also provide
    # validation.request_body_schema with the same behaviour.
    decorator = getattr(validation, 'request_body_schema', None)
    if decorator is None:
        decorator = validation.schema
    return decorator(schema)


def query_schema(schema):
    """Decorator validating the query string against ``schema`` (400)."""
    return validation.query_schema(schema)


def response_body_schema(schema):
    """Decorator declaring the response body schema.

    Nova 2026.1 validates responses in its own tests through
    validation.response_body_schema; 2024.1 has no such decorator, so the
    schema is only checked by our tests (validate_response()).
    """
    decorator = getattr(validation, 'response_body_schema', None)
    if decorator is None:
        return lambda func: func
    return decorator(schema)


def validate_response(schema, body):
    """Validate a response body; raises nova.exception.ValidationError."""
    from nova.api.validation import validators
    validators._SchemaValidator(schema).validate(body)
