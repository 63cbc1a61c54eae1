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

"""Libvirt guest config hook: boot with the current, not the maximum.

Registered on the ``nova.virt.libvirt.guest_config_hooks`` entry point and
called at the end of the driver's _get_guest_config. ``<vcpu>`` and
``<memory>`` keep the flavor's maximum so that the CPU topology and the
memory size leave room to grow; ``current`` and ``<currentMemory>`` say
what the guest starts with.
"""

from oslo_log import log as logging
from oslo_utils import units

from nova.virt.libvirt import config as vconfig

from nova_xloud.virt import resources

LOG = logging.getLogger(__name__)

_no_balloon_warned = False


def set_current_resources(instance, flavor, image_meta, guest):
    """Set vcpus_current and current_memory of a LibvirtConfigGuest."""
    current = resources.current_resources(instance, flavor)
    if current.vcpus is not None:
        guest.vcpus_current = current.vcpus
    if current.memory_mb is not None:
        guest.current_memory = current.memory_mb * units.Ki
        if not has_usable_memory_balloon(guest):
            warn_memory_fixed_once()


def has_usable_memory_balloon(guest):
    balloons = [device for device in guest.devices
                if isinstance(device, vconfig.LibvirtConfigMemoryBalloon)]
    return any(balloon.model not in (None, 'none') for balloon in balloons)


def warn_memory_fixed_once():
    global _no_balloon_warned
    if _no_balloon_warned:
        return
    _no_balloon_warned = True
    LOG.warning(
        'Guests on this host get no usable memory balloon (for instance '
        'because [libvirt] mem_stats_period_seconds = 0), so the memory of '
        'servers whose flavor has minimum_memory cannot be changed live on '
        'this host and the guest may see its flavor\'s full ram.')
