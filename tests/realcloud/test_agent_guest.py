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

"""The agent guest on a real libvirtd and QEMU, without a cloud.

One scenario, in order, on a domain as Nova writes it for an image with
``hw_qemu_guest_agent=yes``: the agent channel, a virtio balloon with
statistics, ACPI (without it a hot-plugged vCPU never reaches the guest).
Each step prints how long the guest took, so a run records the facts.
"""

import json
import os
import time

import fixtures
import testtools

from nova_xloud.realcloud import cloud as cloud_mod
from nova_xloud.realcloud import guest
from nova_xloud.realcloud import scenario

try:
    import libvirt
    import libvirt_qemu
except ImportError:
    libvirt = libvirt_qemu = None

KIB_PER_MIB = 1024
MAX_VCPUS = 3
MAX_MEMORY_MB = 1024
STATS_PERIOD = 2
HELD_MB = 300
# libvirt binds the agent's socket under the daemon's XDG_CONFIG_HOME,
# processes.short_dir: <dir>/libvirt/qemu/channel/target/
# domain-<id>-<name>/org.qemu.guest_agent.0 must fit a UNIX socket path
# (107 bytes).
STATE_DIR_NAME = 'xloud-agent'
DOMAIN_NAME = 'agent'

DOMAIN_XML = '''<domain type='qemu'>
  <name>%(name)s</name>
  <memory unit='MiB'>%(memory)d</memory>
  <currentMemory unit='MiB'>%(memory)d</currentMemory>
  <vcpu current='1'>%(vcpus)d</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initramfs)s</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='custom'><model>qemu64</model></cpu>
  <devices>
    <serial type='file'><source path='%(console)s'/></serial>
    <channel type='unix'>
      <target type='virtio' name='%(channel)s'/>
    </channel>
    <memballoon model='virtio'><stats period='%(period)d'/></memballoon>
  </devices>
</domain>'''


def _quiet_libvirt(_ctx, _error):
    """Libvirt's default handler prints every expected error."""


@testtools.skipIf(libvirt is None, 'libvirt-python is not installed')
class AgentGuestTest(testtools.TestCase):

    def setUp(self):
        super(AgentGuestTest, self).setUp()
        timeout = int(os.environ.get('OS_TEST_TIMEOUT', 0) or 0)
        if timeout > 0:
            self.useFixture(fixtures.Timeout(timeout, gentle=True))
        self.lines = []
        state_dir = os.path.join(os.path.dirname(scenario.state_dir()),
                                 STATE_DIR_NAME)
        self.hypervisor = cloud_mod.Cloud(state_dir, report=self._say)
        self.addCleanup(self._down)
        self.addOnException(self._attach_console)
        self.hypervisor.up_hypervisor()
        libvirt.registerErrorHandler(_quiet_libvirt, None)
        self.conn = libvirt.open(self.hypervisor.libvirt_uri)
        self.addCleanup(self.conn.close)
        self.console = self.hypervisor.path('guest', 'console.log')
        self.dom = self._boot()

    def _say(self, text):
        self.lines.append(text)
        print(text, flush=True)

    def _down(self):
        ended, left = self.hypervisor.down()
        self.assertEqual([], left, 'processes left running')

    def _attach_console(self, exc_info):
        if os.path.exists(self.console):
            with open(self.console, errors='replace') as handle:
                self.addDetail('console', testtools.content.text_content(
                    handle.read()[-6000:]))

    def _boot(self):
        kernel, initramfs = guest.build(scenario.guest_cache_dir(),
                                        self.hypervisor.path('guest'),
                                        agent=True)
        # QEMU runs as nobody and writes the console file there.
        os.chown(self.hypervisor.path('guest'), cloud_mod.NOBODY,
                 cloud_mod.NOBODY)
        dom = self.conn.defineXML(DOMAIN_XML % {
            'name': DOMAIN_NAME, 'memory': MAX_MEMORY_MB,
            'vcpus': MAX_VCPUS, 'kernel': kernel,
            'initramfs': initramfs, 'console': self.console,
            'channel': guest.AGENT_CHANNEL, 'period': STATS_PERIOD})
        self.addCleanup(dom.undefine)
        dom.create()
        self.started = time.monotonic()
        self.addCleanup(dom.destroy)
        return dom

    # -- reading the guest --------------------------------------------------
    def _wait(self, what, predicate, timeout=60, interval=0.1):
        begin = time.monotonic()
        while True:
            try:
                value = predicate()
            except libvirt.libvirtError:
                value = None
            if value:
                self._say('[agent] %s after %.2f s: %r'
                          % (what, time.monotonic() - begin, value))
                return value
            if time.monotonic() - begin > timeout:
                self.fail('%s: not within %d s' % (what, timeout))
            time.sleep(interval)

    def _agent(self, request, timeout=5):
        return json.loads(libvirt_qemu.qemuAgentCommand(
            self.dom, request, timeout, 0))['return']

    def _guest_exec(self, request):
        pid = self._agent(request)['pid']

        def exited():
            status = self._agent(guest.agent_exec_status(pid))
            return status if status.get('exited') else None
        return self._wait('guest-exec %d exited' % pid, exited)

    def _report(self):
        with open(self.console, errors='replace') as handle:
            reports = guest.parse_reports(handle.read())
        return reports[-1] if reports else None

    def _reported_cpus(self, cpus):
        report = self._report()
        return report if report and report['cpus'] == cpus else None

    def _fresh_stats(self):
        """memoryStats from a later guest update than the current one."""
        before = self.dom.memoryStats().get('last_update')

        def updated():
            stats = self.dom.memoryStats()
            return stats if stats.get('last_update') != before else None
        return self._wait('next balloon statistics', updated,
                          timeout=3 * STATS_PERIOD)

    def _vcpus_in_guest(self, vcpus, online):
        state = self.dom.guestVcpus()
        if state['vcpus'] == vcpus and state['online'] == online:
            return state
        return None

    # -- the scenario ---------------------------------------------------------
    def test_agent_onlines_vcpus_and_reports_memory(self):
        self._wait('guest-ping answered since start', lambda: self._agent(
            '{"execute": "guest-ping"}', 1) == {})
        self._say('[agent] %.2f s from start to the agent'
                  % (time.monotonic() - self.started))
        self.assertEqual({'vcpus': '0', 'online': '0', 'offlinable': ''},
                         self.dom.guestVcpus())
        stats = self.dom.memoryStats()
        self._say('[agent] memoryStats at the first ping: %r' % stats)
        for key in ('actual', 'available', 'usable', 'unused'):
            self.assertIn(key, stats)
        self.assertEqual(MAX_MEMORY_MB * KIB_PER_MIB, stats['actual'])

        self._vcpu_hotplug_waits_for_the_agent()
        self._held_memory_leaves_the_usable_figure()
        self._unplug_of_an_offline_vcpu()

    def _vcpu_hotplug_waits_for_the_agent(self):
        self.dom.setVcpusFlags(MAX_VCPUS, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        self._wait('guestVcpus lists the plugged vCPUs, offline',
                   lambda: self._vcpus_in_guest('0-2', '0'))
        # The agent guest's init leaves them offline.
        time.sleep(1.5)
        self.assertEqual(1, self._report()['cpus'])
        begin = time.monotonic()
        self.assertEqual(0, self.dom.setGuestVcpus('1-2', 1, 0))
        self._say('[agent] setGuestVcpus(1-2, online) took %.2f s'
                  % (time.monotonic() - begin))
        self.assertEqual({'vcpus': '0-2', 'online': '0-2',
                          'offlinable': '1-2'}, self.dom.guestVcpus())
        self._wait('the guest reports 3 vCPUs',
                   lambda: self._reported_cpus(3))

    def _held_memory_leaves_the_usable_figure(self):
        before = self._fresh_stats()
        status = self._guest_exec(guest.hold_memory(HELD_MB))
        self.assertEqual(0, status['exitcode'])
        held = self._fresh_stats()
        self.assertLess(held['usable'],
                        before['usable'] - (HELD_MB - 50) * KIB_PER_MIB)
        self.assertEqual(before['available'], held['available'])

        target_kib = 512 * KIB_PER_MIB
        self.dom.setMemoryFlags(target_kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        self._wait('balloon actual reaches 512 MiB',
                   lambda: self.dom.memoryStats()['actual'] == target_kib)
        shrunk = self._fresh_stats()
        self.assertLess(shrunk['available'], held['available'])
        self.assertLess(shrunk['usable'], held['usable'])

        status = self._guest_exec(guest.release_memory())
        self.assertEqual(0, status['exitcode'])
        released = self._fresh_stats()
        self.assertGreater(released['usable'],
                           shrunk['usable'] + (HELD_MB - 50) * KIB_PER_MIB)
        self.dom.setMemoryFlags(MAX_MEMORY_MB * KIB_PER_MIB,
                                libvirt.VIR_DOMAIN_AFFECT_LIVE)
        self._wait('balloon actual back at the maximum',
                   lambda: self.dom.memoryStats()['actual'] ==
                   MAX_MEMORY_MB * KIB_PER_MIB)

    def _unplug_of_an_offline_vcpu(self):
        # Last: after a timed-out unplug QEMU 7.2 is fragile.
        self.assertEqual(0, self.dom.setGuestVcpus('2', 0, 0))
        self._wait('the guest reports 2 vCPUs',
                   lambda: self._reported_cpus(2))
        begin = time.monotonic()
        try:
            self.dom.setVcpusFlags(2, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            outcome = 'done'
        except libvirt.libvirtError as error:
            outcome = 'error %d: %s' % (error.get_error_code(), error)
        self._say('[agent] unplug of the offline vCPU 2: %s after %.2f s'
                  % (outcome, time.monotonic() - begin))
        # Whatever libvirt says, the guest gave the vCPU back.
        self._wait('guestVcpus without vCPU 2',
                   lambda: self._vcpus_in_guest('0-1', '0-1'))
        self._say('[agent] libvirt live vCPUs after the unplug: %d'
                  % self.dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE))
