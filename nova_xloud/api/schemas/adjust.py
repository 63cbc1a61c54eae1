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

"""Request and response JSON schemas of the live adjust API.

Written to the rules of Nova 2026.1: every object, request and response,
has ``additionalProperties: false``.
"""

from nova.db import constants as db_const

# Integers, or strings of ASCII digits for clients of the original design.
# A boolean, zero or a negative number are refused here, and so is a string
# with anything around its digits ("\\Z": "$" accepts a final newline);
# a float is refused by the controller (newer validators count 2.0 as an
# integer), and so is the range against the flavor.
AMOUNT_PATTERN = '^[1-9][0-9]{0,9}\\Z'

_amount = {
    'type': ['integer', 'string'],
    'pattern': AMOUNT_PATTERN,
    'minimum': 1,
    'maximum': db_const.MAX_INT,
}

adjust = {
    'type': 'object',
    'properties': {
        'current_vcpus': _amount,
        'current_memory_mb': _amount,
        'persist': {'type': 'boolean'},
        'force': {'type': 'boolean'},
        'dry_run': {'type': 'boolean'},
    },
    # At least one of current_vcpus and current_memory_mb: checked by the
    # controller, whose message names both fields (an anyOf here would hide
    # the name of an unknown key).
    'additionalProperties': False,
}

# GET takes no query parameters.
show_query = {
    'type': 'object',
    'properties': {},
    'additionalProperties': False,
}

_uuid = {'type': 'string', 'format': 'uuid'}
_count = {'type': 'integer', 'minimum': 1}
_request_id = {'type': 'string', 'pattern': '^req-[0-9a-f-]{36}$'}

_accepted = {
    'type': 'object',
    'properties': {
        'adjustment': {
            'type': 'object',
            'properties': {
                'server_id': _uuid,
                'request_id': _request_id,
                'current_vcpus': _count,
                'current_memory_mb': _count,
                'persist': {'type': 'boolean'},
            },
            'required': ['server_id', 'request_id', 'current_vcpus',
                         'current_memory_mb', 'persist'],
            'additionalProperties': False,
        },
    },
    'required': ['adjustment'],
    'additionalProperties': False,
}

_reasons = {'type': 'array', 'items': {'type': 'string'}}

_answer = {
    'type': 'object',
    'properties': {
        'requested': _count,
        'current': _count,
        'applicable': {'type': 'boolean'},
        'reasons': _reasons,
        'notes': _reasons,
    },
    'required': ['requested', 'current', 'applicable', 'reasons', 'notes'],
    'additionalProperties': False,
}

_dry_run = {
    'type': 'object',
    'properties': {
        'dry_run': {
            'type': 'object',
            'properties': {
                'server_id': _uuid,
                'applicable': {'type': 'boolean'},
                'current_vcpus': _answer,
                'current_memory_mb': _answer,
            },
            'required': ['server_id', 'applicable'],
            'additionalProperties': False,
        },
    },
    'required': ['dry_run'],
    'additionalProperties': False,
}

# 202 with the accepted adjustment, or 200 with the answer to a dry run.
adjust_response = {'oneOf': [_accepted, _dry_run]}

_optional_count = {'type': ['integer', 'null'], 'minimum': 0}
# Older validators check the format of null too.
_when = {'oneOf': [{'type': 'string', 'format': 'date-time'},
                   {'type': 'null'}]}
_source = {'type': ['string', 'null']}
_reason = {'type': ['string', 'null']}

_observed_vcpus = {
    'type': 'object',
    'properties': {
        'online': _optional_count,
        'source': _source,
        'observed_at': _when,
        'reason': _reason,
    },
    'required': ['online', 'source', 'observed_at', 'reason'],
    'additionalProperties': False,
}

_observed_memory = {
    'type': 'object',
    'properties': {
        'actual_mb': _optional_count,
        'available_mb': _optional_count,
        'usable_mb': _optional_count,
        'source': _source,
        'observed_at': _when,
        'reason': _reason,
    },
    'required': ['actual_mb', 'available_mb', 'usable_mb', 'source',
                 'observed_at', 'reason'],
    'additionalProperties': False,
}

show_response = {
    'type': 'object',
    'properties': {
        'adjustment': {
            'type': 'object',
            'properties': {
                'server_id': _uuid,
                'minimum_vcpus': _count,
                'current_vcpus': _count,
                'maximum_vcpus': _count,
                'minimum_memory_mb': _count,
                'current_memory_mb': _count,
                'maximum_memory_mb': _count,
                'persisted': {'type': 'boolean'},
                'last_request_id': {
                    'oneOf': [_request_id, {'type': 'null'}]},
                'last_status': {
                    'type': ['string', 'null'],
                    'enum': ['pending', 'success', 'error', None]},
                'last_message': {'type': ['string', 'null']},
                'requested_vcpus': {'type': ['integer', 'null'],
                                    'minimum': 1},
                'requested_memory_mb': {'type': ['integer', 'null'],
                                        'minimum': 1},
                'allocation_stale': {'type': ['string', 'null']},
                'observed': {
                    'type': 'object',
                    'properties': {
                        'vcpus': _observed_vcpus,
                        'memory': _observed_memory,
                    },
                    'required': ['vcpus', 'memory'],
                    'additionalProperties': False,
                },
            },
            'required': ['server_id', 'minimum_vcpus', 'current_vcpus',
                         'maximum_vcpus', 'minimum_memory_mb',
                         'current_memory_mb', 'maximum_memory_mb',
                         'persisted', 'last_request_id', 'last_status',
                         'last_message', 'requested_vcpus',
                         'requested_memory_mb', 'allocation_stale',
                         'observed'],
            'additionalProperties': False,
        },
    },
    'required': ['adjustment'],
    'additionalProperties': False,
}
