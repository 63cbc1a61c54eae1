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

"""What the guest itself has, as opposed to what libvirt applied.

A Linux guest does not bring hot-plugged vCPUs online by itself, and a
balloon target is a request the guest may not meet. Two sources tell what
the guest really has:

* the QEMU guest agent, for images with ``hw_qemu_guest_agent=yes``:
  libvirt's guestVcpus / setGuestVcpus run ``guest-get-vcpus`` and
  ``guest-set-vcpus`` in the guest, which list and bring online or offline
  the vCPUs the guest kernel knows;
* the virtio balloon's statistics (memoryStats, in KiB): ``actual`` is
  what the balloon leaves the guest, ``available`` the memory the guest
  counts, ``usable`` what it could still give without swapping. Nova sets
  their period (``[libvirt] mem_stats_period_seconds``).
"""

import time

from oslo_log import log as logging
from oslo_utils import units

from nova.virt import hardware

from nova_xloud import conf
from nova_xloud import records
from nova_xloud.virt import libvirt_adjust

CONF = conf.CONF
LOG = logging.getLogger(__name__)

POLL_INTERVAL = 0.2
NO_AGENT = ('the image does not set hw_qemu_guest_agent=yes: the guest '
            'agent that shows its online vCPUs is not there')


class GuestAgentFailed(libvirt_adjust.AdjustFailed):
    pass


def _domain(driver, instance):
    return libvirt_adjust.get_domain(driver, instance)


def _cpus(text):
    return hardware.parse_cpu_spec(text) if text else set()


def guest_vcpus(domain):
    """(vCPUs the guest knows, those online), as sets of guest ids.

    :raises: GuestAgentFailed with libvirt's message
    """
    libvirt = libvirt_adjust.libvirt_module()
    try:
        info = domain.guestVcpus()
    except libvirt.libvirtError as e:
        raise GuestAgentFailed(reason='the guest agent did not answer: %s'
                               % libvirt_adjust.error_message(e))
    return _cpus(info.get('vcpus')), _cpus(info.get('online'))


def _set_guest_vcpus(domain, cpus, online):
    libvirt = libvirt_adjust.libvirt_module()
    spec = hardware.format_cpu_spec(cpus, allow_ranges=True)
    try:
        domain.setGuestVcpus(spec, 1 if online else 0)
    except libvirt.libvirtError as e:
        raise GuestAgentFailed(
            reason='the guest agent could not bring vCPUs %s %s: %s' % (
                spec, 'online' if online else 'offline',
                libvirt_adjust.error_message(e)))


def _wait(predicate, timeout):
    """predicate() until it is true or timeout seconds passed; its last."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(POLL_INTERVAL)


def _vcpus_once_known(domain, count, timeout):
    """guest_vcpus once the guest knows count vCPUs, or at the timeout.

    The agent starts with the guest and a hot-plugged vCPU reaches the
    guest kernel a little after libvirt added it, so the agent is asked
    again until the timeout; its last error is raised then.
    """
    deadline = time.monotonic() + timeout
    while True:
        error = None
        try:
            cpus, online = guest_vcpus(domain)
            if len(cpus) >= count:
                return cpus, online
        except GuestAgentFailed as e:
            error = e
        if time.monotonic() >= deadline:
            if error is not None:
                raise error
            return cpus, online
        time.sleep(POLL_INTERVAL)


def bring_online(driver, instance, count):
    """Bring the guest's vCPUs online through the agent; return how many.

    Waits, up to ``[xloud] guest_agent_timeout``, for the guest to know
    ``count`` vCPUs, then brings online those it knows.

    :raises: GuestAgentFailed when the agent cannot be used
    """
    domain = _domain(driver, instance)
    cpus, online = _vcpus_once_known(domain, count,
                                     CONF.xloud.guest_agent_timeout)
    if len(cpus) < count:
        LOG.warning('The guest of %(uuid)s knows %(known)d vCPUs, not '
                    '%(count)d, after %(timeout)d s',
                    {'uuid': instance.uuid, 'known': len(cpus),
                     'count': count,
                     'timeout': CONF.xloud.guest_agent_timeout})
    offline = cpus - online
    if offline:
        _set_guest_vcpus(domain, offline, online=True)
    return len(guest_vcpus(domain)[1])


def take_offline(driver, instance, count):
    """Take offline, in the guest, the vCPUs an unplug to count removes.

    libvirt unplugs the highest vCPUs; the guest numbers them alike.

    :raises: GuestAgentFailed, before anything changed but in the guest
    """
    domain = _domain(driver, instance)
    _known, online = _vcpus_once_known(domain, 0,
                                       CONF.xloud.guest_agent_timeout)
    leaving = {cpu for cpu in online if cpu >= count}
    if leaving:
        _set_guest_vcpus(domain, leaving, online=False)


def online_vcpus(driver, instance):
    """How many vCPUs the guest has online, through the agent."""
    return len(guest_vcpus(_domain(driver, instance))[1])


def observe_vcpus(driver, instance):
    """A records.ObservedVcpus of the running guest; never raises."""
    if not records.has_guest_agent(instance):
        return records.observe_vcpus(reason=NO_AGENT)
    try:
        return records.observe_vcpus(online=online_vcpus(driver, instance))
    except Exception as e:
        return records.observe_vcpus(reason=_reason(e))


def _reason(error):
    if isinstance(error, libvirt_adjust.AdjustFailed):
        return error.format_message()
    return str(error) or type(error).__name__


def _kib(stats, key):
    try:
        return int(stats[key])
    except (KeyError, TypeError, ValueError):
        return None


def _mib(stats, key):
    value = _kib(stats, key)
    return None if value is None else -(-value // units.Ki)


def _usable_mib(stats, key):
    # Rounded down: what the guest can give is not more than it says.
    value = _kib(stats, key)
    return None if value is None else value // units.Ki


def memory_stats(domain):
    """A records.ObservedMemory of the domain's balloon; never raises."""
    if not libvirt_adjust.has_memory_balloon():
        return records.observe_memory(
            reason='this host gives guests no memory balloon')
    libvirt = libvirt_adjust.libvirt_module()
    try:
        stats = dict(domain.memoryStats() or {})
    except (libvirt.libvirtError, TypeError, ValueError) as e:
        return records.observe_memory(
            reason='libvirt could not read the balloon statistics: %s'
            % libvirt_adjust.error_message(e))
    usable = _usable_mib(stats, 'usable')
    reason = None
    if usable is None:
        reason = ('the guest reports no usable memory (its balloon driver '
                  'has not sent statistics yet, or cannot)')
    return records.observe_memory(
        actual_mb=_mib(stats, 'actual'), available_mb=_mib(
            stats, 'available'), usable_mb=usable, reason=reason)


def observe_memory(driver, instance):
    """A records.ObservedMemory of the running guest; never raises."""
    try:
        domain = _domain(driver, instance)
    except Exception as e:
        return records.observe_memory(reason=_reason(e))
    return memory_stats(domain)


def wait_balloon(driver, instance, target_mb, rising=False):
    """Wait until the balloon gives the guest target_mb; its last MiB.

    Down to target_mb (up to it with rising). Bounded by ``[xloud]
    balloon_timeout``; None at once if the statistics cannot be read.
    """
    domain = _domain(driver, instance)

    def actual():
        return memory_stats(domain).actual_mb

    def reached():
        # Unreadable statistics will not become readable by waiting.
        seen = actual()
        return seen is None or (seen >= target_mb if rising
                                else seen <= target_mb)

    _wait(reached, CONF.xloud.balloon_timeout)
    return actual()
