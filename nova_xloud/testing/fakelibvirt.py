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

"""Live vCPU and memory calls on Nova's fakelibvirt Domain.

Nova's fake has no setVcpusFlags, setMemoryFlags or vcpusFlags. This
fixture adds them to fakelibvirt.Domain for the duration of a test,
keeping a live and a config value per domain (both start from the
domain XML: ``<vcpu current=...>`` and ``<currentMemory>``), and lets a
test inject libvirt errors. XMLDesc shows those values as real libvirt
does: the live ones for a running domain, the config ones with
VIR_DOMAIN_XML_INACTIVE or when it is shut off. ``defined_xml`` gives the
XML Nova defined (the fake's XMLDesc leaves most devices out), and
``change_outside_nova`` does what ``virsh setvcpus`` / ``virsh setmem``
would do behind Nova's back.

It also plays the guest, as a Linux guest behaves: it keeps hot-plugged
vCPUs offline (unless ``onlines_itself``) and answers the QEMU guest
agent's guestVcpus / setGuestVcpus when the domain XML has the agent
channel; its balloon statistics (memoryStats) show what the balloon holds
and what the guest uses (``uses_mib``). ``balloon_floor`` makes a guest
keep memory its balloon was asked to take.
"""

import collections
import json
import types

import fixtures
from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt import hardware

VCPUS = 'vcpus'
MEMORY_KIB = 'memory_kib'
QEMU_VCPUS = 'qemu_vcpus'
ONLINE = 'guest_online'
AGENT_CHANNEL = 'org.qemu.guest_agent.0'
# Memory the guest kernel keeps for itself: MemTotal is below the balloon.
KERNEL_RESERVED_KIB = 32 * 1024


class Injected(object):
    def __init__(self, message, code, apply_first):
        self.message = message
        self.code = code
        self.apply_first = apply_first


class LiveResizeLibvirtFixture(fixtures.Fixture):
    """Adds the live resize calls to fakelibvirt.Domain."""

    def _setUp(self):
        self.errors = collections.defaultdict(list)
        self.calls = []
        self.unplug_timeouts = []
        self.crashes = []
        self.qemu_monitor = True
        self.onlines_itself = False
        self.agent_answers = True
        self.memory_stats = True
        self.default_uses_mib = 64
        self.uses_mib = {}
        self.balloon_floor = {}
        fixture = self

        orig_parse = fakelibvirt.Domain._parse_definition

        def _parse_definition(dom, xml):
            definition = orig_parse(dom, xml)
            tree = etree.fromstring(xml)
            vcpu = tree.find('./vcpu')
            maximum = int(vcpu.text) if vcpu is not None else 1
            current = (vcpu.get('current') if vcpu is not None else None)
            memory = definition.get('memory', 0)
            current_memory = tree.findtext('./currentMemory')
            config = {VCPUS: int(current) if current else maximum,
                      MEMORY_KIB: (int(current_memory) if current_memory
                                   else memory)}
            agent = any(
                target.get('name') == AGENT_CHANNEL
                for target in tree.iterfind('./devices/channel/target'))
            definition['xloud'] = {'max_vcpus': maximum,
                                   'agent': agent,
                                   ONLINE: set(range(config[VCPUS])),
                                   'max_memory_kib': memory,
                                   'config': config,
                                   'live': dict(config),
                                   QEMU_VCPUS: config[VCPUS],
                                   'xml': (current, current_memory),
                                   'defined_xml': xml}
            return definition

        def _state(dom):
            return dom._def['xloud']

        def _check(dom, method, flags):
            fixture.calls.append((method, dom._def['uuid'], flags))
            queue = fixture.errors.get(method)
            injected = queue.pop(0) if queue else None
            if flags & fakelibvirt.VIR_DOMAIN_AFFECT_LIVE and (
                    not dom.isActive()):
                raise _libvirt_error(
                    'Requested operation is not valid: domain is not '
                    'running',
                    fakelibvirt.VIR_ERR_OPERATION_INVALID,
                    fakelibvirt.VIR_FROM_DOMAIN)
            return injected

        def _set(dom, method, key, value, flags, maximum):
            injected = _check(dom, method, flags)
            if injected and not injected.apply_first:
                raise _error(injected)
            if value > maximum:
                raise _libvirt_error(
                    'invalid argument: requested %s exceeds the maximum %d'
                    % (key, maximum),
                    fakelibvirt.VIR_ERR_INVALID_ARG,
                    fakelibvirt.VIR_FROM_DOMAIN)
            if flags & fakelibvirt.VIR_DOMAIN_AFFECT_LIVE:
                _state(dom)['live'][key] = value
            if flags & fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG:
                _state(dom)['config'][key] = value
            if injected:
                raise _error(injected)
            return 0

        def setVcpusFlags(dom, nvcpus, flags=0):
            state = _state(dom)
            live = flags & fakelibvirt.VIR_DOMAIN_AFFECT_LIVE
            if live and state['live'][VCPUS] != state[QEMU_VCPUS]:
                fixture.crashes.append(dom._def['uuid'])
                raise _libvirt_error(
                    'Unable to read from monitor: Connection reset by peer',
                    fakelibvirt.VIR_ERR_INTERNAL_ERROR,
                    fakelibvirt.VIR_FROM_QEMU)
            if live and nvcpus < state['live'][VCPUS] and (
                    fixture.unplug_timeouts):
                _check(dom, 'setVcpusFlags', flags)
                if fixture.unplug_timeouts.pop(0):
                    state[QEMU_VCPUS] = nvcpus
                raise _libvirt_error(
                    'operation timed out: vcpu unplug request timed out. '
                    'Unplug result must be manually inspected in the '
                    'domain',
                    fakelibvirt.VIR_ERR_OPERATION_TIMEOUT,
                    fakelibvirt.VIR_FROM_QEMU)
            try:
                return _set(dom, 'setVcpusFlags', VCPUS, nvcpus, flags,
                            state['max_vcpus'])
            finally:
                # Whatever libvirt applied, QEMU has.
                if live:
                    state[QEMU_VCPUS] = state['live'][VCPUS]
                    _guest_sees_vcpus(state)

        def _guest_sees_vcpus(state):
            # Linux keeps hot-plugged vCPUs offline; a udev rule onlines
            # them.
            present = set(range(state[QEMU_VCPUS]))
            state[ONLINE] &= present
            if fixture.onlines_itself:
                state[ONLINE] |= present

        def _agent(dom, method):
            fixture.calls.append((method, dom._def['uuid'], 0))
            if not _state(dom)['agent']:
                raise _libvirt_error(
                    'argument unsupported: QEMU guest agent is not '
                    'configured',
                    fakelibvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
                    fakelibvirt.VIR_FROM_QEMU)
            queue = fixture.errors.get(method)
            if queue:
                raise _error(queue.pop(0))
            if not fixture.agent_answers:
                raise _libvirt_error(
                    'Guest agent is not responding: QEMU guest agent is '
                    'not connected',
                    fakelibvirt.VIR_ERR_AGENT_UNRESPONSIVE,
                    fakelibvirt.VIR_FROM_QEMU)

        def guestVcpus(dom, flags=0):
            _agent(dom, 'guestVcpus')
            state = _state(dom)
            return {'vcpus': _spec(range(state[QEMU_VCPUS])),
                    'online': _spec(state[ONLINE]),
                    'offlinable': _spec(range(1, state[QEMU_VCPUS]))}

        def setGuestVcpus(dom, cpumap, state_, flags=0):
            _agent(dom, 'setGuestVcpus')
            state = _state(dom)
            cpus = set(hardware.parse_cpu_spec(cpumap))
            unknown = cpus - set(range(state[QEMU_VCPUS]))
            if unknown or (not state_ and 0 in cpus):
                raise _libvirt_error(
                    'invalid argument: vCPU %s cannot be set'
                    % _spec(unknown or {0}),
                    fakelibvirt.VIR_ERR_INVALID_ARG,
                    fakelibvirt.VIR_FROM_QEMU)
            if state_:
                state[ONLINE] |= cpus
            else:
                state[ONLINE] -= cpus
            return 0

        def memoryStats(dom):
            fixture.calls.append(('memoryStats', dom._def['uuid'], 0))
            actual = _state(dom)['live'][MEMORY_KIB]
            if not fixture.memory_stats:
                return {'actual': actual}
            available = actual - KERNEL_RESERVED_KIB
            uses = fixture.uses_mib.get(dom._def['uuid'],
                                        fixture.default_uses_mib) * 1024
            return {'actual': actual, 'available': available,
                    'usable': max(available - uses, 0),
                    'unused': max(available - uses, 0),
                    'last_update': 1}

        def qemuMonitorCommand(dom, cmd, flags=0):
            if not fixture.qemu_monitor:
                raise _libvirt_error(
                    'this function is not supported by the connection '
                    'driver',
                    fakelibvirt.VIR_ERR_NO_SUPPORT,
                    fakelibvirt.VIR_FROM_DOMAIN)
            if json.loads(cmd) != {'execute': 'query-cpus-fast'}:
                raise AssertionError('unexpected QEMU command %s' % cmd)
            count = _state(dom)[QEMU_VCPUS]
            return json.dumps({'return': [{'cpu-index': index}
                                          for index in range(count)]})

        def setMemoryFlags(dom, memory, flags=0):
            result = _set(dom, 'setMemoryFlags', MEMORY_KIB, memory, flags,
                          _state(dom)['max_memory_kib'])
            floor = fixture.balloon_floor.get(dom._def['uuid'])
            if floor and flags & fakelibvirt.VIR_DOMAIN_AFFECT_LIVE:
                # The guest does not give back memory below its floor.
                live = _state(dom)['live']
                live[MEMORY_KIB] = max(live[MEMORY_KIB], floor)
            return result

        def vcpusFlags(dom, flags=0):
            if flags & fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG:
                return _state(dom)['config'][VCPUS]
            return _state(dom)['live'][VCPUS]

        orig_create = fakelibvirt.Domain.createWithFlags

        def createWithFlags(dom, flags):
            # A start boots the persistent config, as with real libvirt
            # (a soft reboot relaunches the guest this way).
            _state(dom)['live'] = dict(_state(dom)['config'])
            _state(dom)[QEMU_VCPUS] = _state(dom)['config'][VCPUS]
            _state(dom)[ONLINE] = set(range(_state(dom)[QEMU_VCPUS]))
            return orig_create(dom, flags)

        orig_xml_desc = fakelibvirt.Domain.XMLDesc

        def XMLDesc(dom, flags=0):
            xml = orig_xml_desc(dom, flags)
            state = dom._def.get('xloud')
            if state is None:
                return xml
            inactive = (flags & fakelibvirt.VIR_DOMAIN_XML_INACTIVE or
                        not dom.isActive())
            return _with_current_values(
                xml, state['config' if inactive else 'live'],
                state['max_vcpus'])

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain._parse_definition',
            _parse_definition))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.XMLDesc', XMLDesc))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.createWithFlags',
            createWithFlags))
        self.useFixture(fixtures.MockPatch(
            'nova_xloud.virt.libvirt_adjust._libvirt_qemu',
            return_value=types.SimpleNamespace(
                qemuMonitorCommand=qemuMonitorCommand)))
        for name, func in (('setVcpusFlags', setVcpusFlags),
                           ('setMemoryFlags', setMemoryFlags),
                           ('vcpusFlags', vcpusFlags),
                           ('guestVcpus', guestVcpus),
                           ('setGuestVcpus', setGuestVcpus),
                           ('memoryStats', memoryStats)):
            self.useFixture(fixtures.MonkeyPatch(
                'nova.tests.fixtures.libvirt.Domain.%s' % name, func))

    def inject_error(self, method, message='internal error: injected',
                     code=fakelibvirt.VIR_ERR_INTERNAL_ERROR,
                     apply_first=False):
        """Make the next call of method raise a libvirtError.

        :param apply_first: apply the change before raising (as QEMU does
            when a vCPU unplug times out although the guest let go)
        """
        self.errors[method].append(Injected(message, code, apply_first))

    def inject_unplug_timeout(self, released=True):
        """Make the next vCPU decrease time out as QEMU 7.2 does.

        :param released: the guest let go of the vCPUs (QEMU removed
            them) although libvirt timed out and keeps counting them
        """
        self.unplug_timeouts.append(released)

    @staticmethod
    def guest_online(domain):
        """How many vCPUs the guest has online."""
        return len(domain._def['xloud'][ONLINE])

    def guest_uses(self, domain, mib):
        """Make the guest use mib MiB (its balloon statistics say so)."""
        self.uses_mib[domain._def['uuid']] = mib

    def hold_balloon(self, domain, kib):
        """Make the guest keep at least kib KiB whatever it is asked."""
        self.balloon_floor[domain._def['uuid']] = kib

    @staticmethod
    def qemu_vcpus(domain):
        return domain._def['xloud'][QEMU_VCPUS]

    @staticmethod
    def live(domain):
        return dict(domain._def['xloud']['live'])

    @staticmethod
    def boot_xml(domain):
        """(<vcpu current>, <currentMemory>) of the defined XML."""
        return domain._def['xloud']['xml']

    @staticmethod
    def config(domain):
        return dict(domain._def['xloud']['config'])

    @staticmethod
    def defined_xml(domain):
        """The domain XML as Nova defined it."""
        return domain._def['xloud']['defined_xml']

    @staticmethod
    def change_outside_nova(domain, vcpus=None, memory_kib=None,
                            config=False):
        """Change the guest as ``virsh setvcpus`` / ``setmem`` would.

        The live values change (and the persistent config too with
        config, as ``--config`` does); nothing is recorded in calls.
        """
        state = domain._def['xloud']
        for key, value in ((VCPUS, vcpus), (MEMORY_KIB, memory_kib)):
            if value is None:
                continue
            state['live'][key] = value
            if config:
                state['config'][key] = value


def _with_current_values(xml, values, max_vcpus):
    """The domain XML with ``<vcpu current>`` and ``<currentMemory>``."""
    tree = etree.fromstring(xml)
    vcpu = tree.find('./vcpu')
    if vcpu is not None:
        # libvirt leaves the attribute out when all vCPUs are online.
        if values[VCPUS] < max_vcpus:
            vcpu.set('current', str(values[VCPUS]))
        else:
            vcpu.attrib.pop('current', None)
    current_memory = tree.find('./currentMemory')
    if current_memory is not None:
        current_memory.text = str(values[MEMORY_KIB])
    return etree.tostring(tree, encoding='unicode')


def _libvirt_error(message, code, domain):
    return fakelibvirt.make_libvirtError(
        fakelibvirt.libvirtError, message, error_code=code,
        error_domain=domain)


def _spec(cpus):
    return ','.join(str(cpu) for cpu in sorted(cpus))


def _error(injected):
    return fakelibvirt.make_libvirtError(
        fakelibvirt.libvirtError, injected.message,
        error_code=injected.code, error_domain=fakelibvirt.VIR_FROM_QEMU,
        error_message=injected.message)
