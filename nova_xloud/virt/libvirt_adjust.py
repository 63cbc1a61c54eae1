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

"""Live vCPU and memory changes of a libvirt guest.

vCPUs go through virDomainSetVcpusFlags, memory through the balloon with
virDomainSetMemoryFlags; both on the live domain and on its persistent
config, whether or not the change is persisted (see _flags).

``apply_records`` is a guest config hook (``nova.virt.libvirt.
guest_config_hooks``): whenever the driver rebuilds the domain XML (hard
reboot, start, host reboot resume, rebuild, resize) the guest boots with
the persisted values and the live records of the previous boot are
dropped.
"""

import json

from lxml import etree
from oslo_log import log as logging
from oslo_utils import units

from nova.compute import task_states
import nova.conf
from nova import context as nova_context
from nova import exception

from nova_xloud import records
from nova_xloud import store
from nova_xloud.virt import resources

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# Told when a boot changes what the guest has (on_boot_change).
_boot_listener = None


class AdjustFailed(exception.NovaException):
    # A NovaException so that its message becomes the action event's
    # details and the instance fault's message.
    msg_fmt = "%(reason)s"


_REFUSED_UNTIL = ('vCPU changes of this server are refused until it is '
                  'hard rebooted or stopped and started')


class VcpusUnsettled(AdjustFailed):
    """libvirt lost count of the guest's vCPUs after a timed-out unplug.

    ``kwargs['present']`` is what QEMU reports (None if it could not be
    asked), ``kwargs['counted']`` libvirt's live count.
    """


def libvirt_module():
    # The module nova's libvirt host code uses (fakelibvirt in tests).
    from nova.virt.libvirt import host
    return host.libvirt


def is_libvirt(driver):
    return type(driver).__module__.startswith('nova.virt.libvirt')


def has_memory_balloon():
    """Whether this host gives guests a usable virtio memory balloon."""
    if CONF.libvirt.virt_type not in ('qemu', 'kvm'):
        return False
    return CONF.libvirt.mem_stats_period_seconds > 0


def _flags():
    # LIVE and CONFIG even when the change is not persisted. Persisting is
    # Nova's business: every hard reboot, start, rebuild or resize defines
    # the domain again from Nova's records, so the libvirt config matters
    # only to a soft reboot, which relaunches the guest from it. Writing it
    # keeps a soft-rebooted guest at the values the records show, so a
    # "persist": false change lasts until the next hard reboot, as the API
    # promises, and no record claims what the guest does not have.
    libvirt = libvirt_module()
    return libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG


def get_domain(driver, instance):
    return driver._host.get_guest(instance)._domain


def error_message(error):
    try:
        return error.get_error_message() or str(error)
    except AttributeError:
        return str(error)


def _timed_out(error):
    libvirt = libvirt_module()
    code = getattr(error, 'get_error_code', lambda: None)()
    if code == getattr(libvirt, 'VIR_ERR_OPERATION_TIMEOUT', 68):
        return True
    return 'timed out' in error_message(error)


def set_vcpus(driver, instance, count, decrease):
    """Set the guest's vCPUs; return how many it really has.

    A decrease that libvirt reports as timed out (QEMU does so even when
    the guest let go of the vCPUs) is settled by asking QEMU, see
    _settle_timed_out_unplug.

    :raises: AdjustFailed with libvirt's message
    :raises: VcpusUnsettled when libvirt lost count of the guest's vCPUs
    """
    libvirt = libvirt_module()
    domain = get_domain(driver, instance)
    try:
        domain.setVcpusFlags(count, _flags())
        return count
    except libvirt.libvirtError as e:
        if not (decrease and _timed_out(e)):
            raise AdjustFailed(reason='libvirt could not set %d vCPUs: %s'
                               % (count, error_message(e)))
        LOG.warning('vCPU unplug to %(count)d timed out for %(uuid)s, '
                    'asking QEMU what the guest has: %(error)s',
                    {'count': count, 'uuid': instance.uuid,
                     'error': error_message(e)})
    return _settle_timed_out_unplug(domain, count)


def _settle_timed_out_unplug(domain, requested):
    """What the guest has after libvirt timed out removing vCPUs.

    libvirt's live count is not the truth then: QEMU may have removed the
    vCPUs without libvirt noticing, and a later hot-plug over such a
    stale count has crashed QEMU. QEMU's own list of vCPUs is the truth;
    the persistent config follows it. While libvirt's count differs from
    QEMU's, or QEMU cannot be asked, VcpusUnsettled says so and the
    caller refuses further vCPU changes until the domain is defined anew.
    """
    libvirt = libvirt_module()
    try:
        counted = domain.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as e:
        LOG.warning('Could not read the live vCPU count: %s', error_message(e))
        counted = None
    present = vcpus_in_qemu(domain)
    if present is None:
        raise VcpusUnsettled(
            reason='libvirt timed out removing vCPUs (to %d) and QEMU '
                   'cannot be asked how many the guest has (libvirt counts '
                   '%s); %s' % (requested, counted, _REFUSED_UNTIL),
            present=None, counted=counted)
    try:
        domain.setVcpusFlags(present, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError as e:
        raise AdjustFailed(reason='libvirt timed out removing vCPUs and '
                           'could not store the %d the guest has: %s'
                           % (present, error_message(e)))
    if counted == present:
        return present
    raise VcpusUnsettled(
        reason='libvirt timed out removing vCPUs: the guest has %d (as '
               'QEMU reports) but libvirt still counts %s; %s'
               % (present, counted, _REFUSED_UNTIL),
        present=present, counted=counted)


def _libvirt_qemu():
    try:
        import libvirt_qemu
    except ImportError:
        return None
    return libvirt_qemu


def vcpus_in_qemu(domain):
    """The number of vCPUs QEMU has for the domain, or None if unknown.

    Read with the QEMU monitor's query-cpus-fast (read-only), because
    libvirt's own count can be stale after a timed-out unplug.
    """
    qemu = _libvirt_qemu()
    if qemu is None:
        return None
    try:
        answer = qemu.qemuMonitorCommand(
            domain, json.dumps({'execute': 'query-cpus-fast'}), 0)
        return len(json.loads(answer)['return'])
    except Exception as e:
        LOG.warning('Could not ask QEMU for its vCPUs: %s', e)
        return None


def set_memory(driver, instance, memory_mb):
    """Balloon the guest to memory_mb MiB.

    :raises: AdjustFailed with libvirt's message
    """
    libvirt = libvirt_module()
    domain = get_domain(driver, instance)
    try:
        domain.setMemoryFlags(memory_mb * units.Ki, _flags())
    except libvirt.libvirtError as e:
        raise AdjustFailed(reason='libvirt could not set memory to %d MiB: '
                           '%s' % (memory_mb, error_message(e)))


def live_resources(driver, instance):
    """The vCPUs and memory (MiB) the running guest has, read only.

    vCPUs are libvirt's live count, or QEMU's when libvirt lost count
    after a timed-out unplug (None if QEMU cannot be asked then); memory
    is the live ``<currentMemory>`` (the balloon as libvirt last saw it),
    rounded up to whole MiB so that a claim of it covers the guest.

    :raises: AdjustFailed with libvirt's message
    """
    libvirt = libvirt_module()
    try:
        domain = get_domain(driver, instance)
        if records.vcpus_unsettled(instance):
            vcpus = vcpus_in_qemu(domain)
        else:
            vcpus = domain.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)
        tree = etree.fromstring(domain.XMLDesc(0))
    except libvirt.libvirtError as e:
        raise AdjustFailed(reason='libvirt could not describe the guest: '
                           '%s' % error_message(e))
    memory_kib = int(tree.findtext('./currentMemory') or
                     tree.findtext('./memory'))
    return resources.Resources(vcpus=vcpus,
                               memory_mb=-(-memory_kib // units.Ki))


def apply_records(instance, flavor, image_meta, guest):
    """Guest config hook: a new boot starts from the persisted values.

    The guest's boot values themselves are set by the
    ``xloud_current_resources`` hook (resources.current_resources reads
    the persisted values), so the order of the two hooks does not matter.
    Drops the live values of the previous boot and the persisted values of
    another flavor; the caller saves the instance. When a non-persisted
    adjustment is undone by this boot, the boot listener is told (see
    on_boot_change) so that the allocation follows the boot values.
    """
    if resources.is_rescuing(instance):
        # The rescue domain keeps the live values (current_resources) and
        # unrescue restores the domain saved before: nothing to drop.
        return
    previous = records.live(instance, flavor)
    dropped = records.forget_stale_persisted(instance, flavor)
    dropped = records.forget_live(instance) or dropped
    if _reverting_a_move(instance):
        # The source allocation came back as it was when the move started,
        # possibly with live values that this boot no longer gives the
        # guest (the destination's boot already dropped their records).
        if dropped:
            _save_dropped(instance, flavor)
        _tell_boot_change(instance, records.current(instance, flavor))
        return
    if not dropped:
        return
    # Not every caller saves the instance afterwards (resume on host boot
    # does not), so store the change now, only our records, leaving the
    # caller's pending changes (task state...) to the caller.
    _save_dropped(instance, flavor)
    if previous is None:
        return
    now = records.current(instance, flavor)
    if previous != now:
        _tell_boot_change(instance, now)


def _reverting_a_move(instance):
    return instance.obj_attr_is_set('task_state') and (
        instance.task_state == task_states.RESIZE_REVERTING)


def _context(instance):
    return getattr(instance, '_context', None) or (
        nova_context.get_admin_context())


def _forget_for_new_boot(view, flavor):
    records.forget_stale_persisted(view, flavor)
    records.forget_live(view)


def _save_dropped(instance, flavor):
    try:
        store.update(_context(instance), instance, _forget_for_new_boot,
                     flavor)
    except Exception as e:
        LOG.warning('Could not store the live adjust records of %(uuid)s '
                    'for the new boot: %(error)s',
                    {'uuid': instance.uuid, 'error': e})


def on_boot_change(listener):
    """Call listener(context, instance, now) when a boot changes the guest.

    ``now`` is the Resources the new boot gives the guest where a live
    adjustment had given it others. nova-compute registers the listener
    that sets the placement allocation: the virt layer does not call
    placement. One listener per process, the last registered (one
    nova-compute service). A listener that fails, or none at all, leaves
    the allocation marked stale (records.ALLOCATION_STALE), for the drift
    repair.
    """
    global _boot_listener
    _boot_listener = listener


def _tell_boot_change(instance, now):
    context = _context(instance)
    listener = _boot_listener
    if listener is None:
        _mark_allocation_stale(context, instance, now, 'nova-compute did '
                               'not ask to be told of new boots')
        return
    try:
        listener(context, instance, now)
    except Exception as e:
        # The boot goes on: the drift repair sets the allocation.
        LOG.warning('Could not set the placement allocation of %(uuid)s '
                    'to %(now)s after a new boot: %(error)s',
                    {'uuid': instance.uuid, 'now': now, 'error': e})
        _mark_allocation_stale(context, instance, now, e)


def _mark_allocation_stale(context, instance, now, why):
    reason = ('the allocation was not set to the %d vCPUs and %d MiB of '
              'the new boot: %s' % (now.vcpus, now.memory_mb, why))
    try:
        store.update(context, instance, records.mark_allocation_stale,
                     reason)
    except Exception as e:
        LOG.warning('Could not mark the allocation of %(uuid)s stale: '
                    '%(error)s', {'uuid': instance.uuid, 'error': e})
