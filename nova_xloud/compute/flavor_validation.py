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

"""Flavor checks run by nova-api for server create, rebuild and resize.

Registered on the ``nova.compute.flavor_validators`` entry point. Extra
spec validation only runs at microversion 2.86 or later and sees one spec
at a time, so the values and their combinations are checked here again,
before anything is scheduled or claimed.
"""

from nova_xloud.virt import resources


def validate_minimum_resources(flavor, image_meta):
    """Refuse a flavor whose minimum resources cannot work.

    :raises: resources.InvalidMinimumResources (HTTP 400 in the API)
    """
    resources.validate_minimum(flavor, image_meta)
