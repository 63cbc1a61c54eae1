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

Whenever the guest boots below (or may later be ballooned below) its
``<memory>``, its balloon is made a cap: Nova 2025.2 and later write
``autodeflate='on'``, which lets a guest under memory pressure deflate the
balloon and take memory back up to ``<memory>`` unasked, so the placement
allocation would under-claim.
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
        cap_memory_balloons(guest)


def cap_memory_balloons(guest):
    """Make every memory balloon of the guest keep its target."""
    guest.devices[:] = [
        CappedMemoryBalloon.from_balloon(device)
        if _is_usable_balloon(device) else device
        for device in guest.devices]


class CappedMemoryBalloon(vconfig.LibvirtConfigMemoryBalloon):
    """A memory balloon that the guest cannot deflate by itself.

    Turns ``autodeflate`` off where the release's Nova writes it (2025.2
    and later); older releases write none, which libvirt and QEMU take as
    off. ``freePageReporting`` stays as Nova writes it: it lets the host
    reclaim pages the guest has free but never gives the guest pages
    beyond the balloon target. (A guest whose MemTotal stays at the
    maximum is deflate-on-OOM's doing: Linux's virtio balloon driver
    keeps ballooned pages counted then, to hand them back.)
    """

    @classmethod
    def from_balloon(cls, balloon):
        capped = cls()
        capped.__dict__.update(balloon.__dict__)
        return capped

    def format_dom(self):
        dev = super().format_dom()
        if dev.get('autodeflate') is not None:
            dev.set('autodeflate', 'off')
        return dev


def has_usable_memory_balloon(guest):
    return any(_is_usable_balloon(device) for device in guest.devices)


def _is_usable_balloon(device):
    return (isinstance(device, vconfig.LibvirtConfigMemoryBalloon) and
            device.model not in (None, 'none'))


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
