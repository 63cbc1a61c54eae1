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

"""Placement amounts of a flavor with minimum resources.

Registered on the ``nova.scheduler.resource_overrides`` entry point, which
Nova consults wherever it derives placement amounts from a flavor
(scheduling, claims, resize and moves, heal allocations).
"""

import os_resource_classes as orc

from nova_xloud import conf
from nova_xloud.virt import resources


def minimum_resource_amounts(flavor):
    """Return {resource class: amount} claiming the flavor's minimum."""
    if not conf.CONF.xloud.claim_minimum_in_placement:
        return {}
    minimum = resources.minimum_resources(flavor)
    amounts = {orc.VCPU: minimum.vcpus, orc.MEMORY_MB: minimum.memory_mb}
    return {rc: amount for rc, amount in amounts.items()
            if amount is not None}
