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

"""Validators for the nova-xloud flavor extra specs.

Registered on Nova's ``nova.api.extra_spec_validators`` entry point; Nova
runs them when extra specs are set with microversion 2.86 or later.
"""

from nova.api.validation.extra_specs import base
from nova import exception

from nova_xloud.virt import resources


class WholeNumberValidator(base.ExtraSpecValidator):
    """Accept only plain decimal whole numbers from 1 to MAX_AMOUNT.

    Nova's own int validator uses int(), which also accepts ' 2', '+2' and
    '2_0'; the flavor maximum is checked when a server uses the flavor.
    """

    def validate(self, name, value):
        try:
            resources.parse_amount(name, value)
        except ValueError as e:
            raise exception.ValidationError(f"Validation failed; {e}.")


EXTRA_SPEC_VALIDATORS = [
    WholeNumberValidator(
        name=resources.MINIMUM_CPU,
        description=(
            'The number of vCPUs a server of this flavor boots with; the '
            "flavor's vcpus stay the most it may have. Placement claims "
            'this number of VCPU.'),
        value={
            'type': int,
            'min': 1,
            'max': resources.MAX_AMOUNT,
            'description': "Whole vCPUs, from 1 to the flavor's vcpus.",
        },
    ),
    WholeNumberValidator(
        name=resources.MINIMUM_MEMORY,
        description=(
            'The memory a server of this flavor boots with; the flavor\'s '
            'ram stays the most it may have. Placement claims this amount '
            'of MEMORY_MB.'),
        value={
            'type': int,
            'min': 1,
            'max': resources.MAX_AMOUNT,
            'description': "MiB, from 1 to the flavor's ram.",
        },
    ),
]


def register():
    return EXTRA_SPEC_VALIDATORS
