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

"""The real-cloud tier's own pieces, without a cloud."""

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time

import fixtures
import testtools

from nova_xloud.realcloud import cloud as cloud_mod
from nova_xloud.realcloud import errors
from nova_xloud.realcloud import guest
from nova_xloud.realcloud import neutron_standin
from nova_xloud.realcloud import processes
from nova_xloud.realcloud import scenario

CONSOLE = '''[    1.0] Run /init as init process
XLOUD boot=b1 seq=0 cpus=1 memtotal_kb=982952 memfree_kb=960000
garbage
XLOUD boot=b1 seq=1 cpus=2 memtotal_kb=982952 memfree_kb=430000
'''

LDD = '''\tlinux-vdso.so.1 (0x00007ffd5b9f1000)
\tlibglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x00007f1a)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f19)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f1b)
'''

LIVE_XML = '''<domain type='qemu'>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>613376</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
</domain>'''


def newc_names(archive):
    """The member names of a newc cpio archive, read by its headers."""
    names, offset = [], 0
    while True:
        header = archive[offset:offset + 110]
        assert header[:6] == b'070701', header
        size, namesize = int(header[54:62], 16), int(header[94:102], 16)
        name = archive[offset + 110:offset + 110 + namesize - 1].decode()
        if name == 'TRAILER!!!':
            return names
        names.append(name)
        offset += 110 + namesize
        offset += (4 - offset % 4) % 4
        offset += size
        offset += (4 - offset % 4) % 4


class GuestTestCase(testtools.TestCase):

    def test_reports_are_parsed_in_order(self):
        reports = guest.parse_reports(CONSOLE)
        self.assertEqual([(0, 1, 960000), (1, 2, 430000)],
                         [(r['seq'], r['cpus'], r['memfree_kb'])
                          for r in reports])

    def test_no_console_no_reports(self):
        self.assertEqual([], guest.parse_reports(None))

    def test_guest_matches_vcpus_and_free_memory_under_the_target(self):
        report = guest.parse_reports(CONSOLE)[-1]
        self.assertTrue(scenario.guest_matches(report, 2, 512))
        self.assertFalse(scenario.guest_matches(report, 1, 512))
        # Free memory above the target: the balloon has not reached it.
        self.assertFalse(scenario.guest_matches(report, 2, 384))
        # Far below: the guest still has a smaller balloon target.
        self.assertFalse(scenario.guest_matches(report, 2, 768))

    def test_initramfs_holds_init_busybox_and_the_modules(self):
        modules = self.useFixture(fixtures.TempDir()).path
        for name in guest.MODULES:
            with open(os.path.join(modules, '%s.ko' % name), 'wb') as out:
                out.write(b'module ' + name.encode())
        busybox = os.path.join(modules, 'busybox')
        with open(busybox, 'wb') as out:
            out.write(b'\x7fELF busybox')
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.realcloud.guest.BUSYBOX', busybox))
        archive = gzip.decompress(guest._initramfs(modules))
        names = newc_names(archive)
        self.assertIn('init', names)
        self.assertIn('bin/busybox', names)
        for name in guest.MODULES:
            self.assertIn('modules/%s.ko' % name, names)
        self.assertIn(b'XLOUD boot=$boot seq=$seq cpus=$cpus', archive)


class AgentGuestTestCase(testtools.TestCase):

    def _files(self, *names):
        folder = self.useFixture(fixtures.TempDir()).path
        paths = []
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'wb') as out:
                out.write(b'file ' + name.encode())
            paths.append(path)
        return folder, paths

    def test_ldd_names_the_libraries_and_the_loader_not_the_vdso(self):
        self.assertEqual(['/lib/x86_64-linux-gnu/libglib-2.0.so.0',
                          '/lib/x86_64-linux-gnu/libc.so.6',
                          '/lib64/ld-linux-x86-64.so.2'],
                         guest.parse_ldd(LDD))

    def test_a_library_ldd_cannot_find_is_an_error(self):
        error = self.assertRaises(
            errors.RealCloudError, guest.parse_ldd,
            '\tliburing.so.2 => not found\n')
        self.assertIn('liburing.so.2', str(error))

    def test_agent_init_starts_qemu_ga_and_onlines_nothing(self):
        init = guest.init_script(agent=True)
        self.assertNotIn('> $cpu/online', init)
        self.assertIn('virtio_console', init)
        self.assertIn('= org.qemu.guest_agent.0 ]', init)
        self.assertIn('qemu-ga -m virtio-serial -p /dev/${port##*/}', init)
        self.assertIn('mount -t tmpfs -o size=100% hold /hold', init)
        self.assertIn('XLOUD boot=$boot seq=$seq cpus=$cpus', init)

    def test_plain_init_onlines_vcpus_and_runs_no_agent(self):
        init = guest.init_script()
        self.assertIn('echo 1 > $cpu/online', init)
        self.assertNotIn('qemu-ga', init)
        self.assertNotIn('virtio_console', init)

    def test_initramfs_holds_the_agent_its_libraries_and_folders(self):
        modules, paths = self._files(*['%s.ko' % name
                                       for name in guest.AGENT_MODULES])
        _folder, (busybox, qemu_ga, glib, loader) = self._files(
            'busybox', 'qemu-ga', 'libglib', 'ld.so')
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.realcloud.guest.BUSYBOX', busybox))
        agent = [('bin/qemu-ga', qemu_ga),
                 ('lib/x86_64-linux-gnu/libglib-2.0.so.0', glib),
                 ('lib64/ld-linux-x86-64.so.2', loader)]
        archive = gzip.decompress(guest._initramfs(modules, agent))
        names = newc_names(archive)
        for name in ('bin/qemu-ga', 'modules/virtio_console.ko',
                     'lib64/ld-linux-x86-64.so.2',
                     'lib/x86_64-linux-gnu/libglib-2.0.so.0'):
            self.assertIn(name, names)
        self.assertEqual(1, names.count('bin'))
        self.assertLess(names.index('lib'),
                        names.index('lib/x86_64-linux-gnu'))
        self.assertLess(names.index('lib/x86_64-linux-gnu'),
                        names.index('lib/x86_64-linux-gnu/libglib-2.0.so.0'))
        self.assertIn(b'file libglib', archive)

    def test_qemu_ga_comes_out_of_the_deb_executable(self):
        data = b'\x7fELF qemu-ga'
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode='w') as tar:
            member = tarfile.TarInfo('./usr/sbin/qemu-ga')
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        buffer.seek(0)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_xloud.realcloud.guest._deb_tarfile',
            lambda deb: tarfile.open(fileobj=buffer)))
        dest = self.useFixture(fixtures.TempDir()).path
        path = guest._extract_agent('agent.deb', dest)
        with open(path, 'rb') as handle:
            self.assertEqual(data, handle.read())
        self.assertTrue(os.access(path, os.X_OK))

    def test_a_cached_agent_deb_is_used_without_apt(self):
        cache, (deb,) = self._files(
            'qemu-guest-agent_1%3a7.2+dfsg-7_amd64.deb')
        self.useFixture(fixtures.MonkeyPatch(
            'subprocess.run', lambda *args, **kwargs: self.fail(args)))
        self.assertEqual(deb, guest.download_agent_deb(cache))

    def test_held_memory_is_a_file_in_the_tmpfs_written_by_guest_exec(self):
        request = json.loads(guest.hold_memory(300))
        self.assertEqual('guest-exec', request['execute'])
        self.assertEqual('/bin/sh', request['arguments']['path'])
        command = request['arguments']['arg'][1]
        self.assertIn('of=/hold/held.', command)
        self.assertIn('count=300', command)
        release = json.loads(guest.release_memory())
        self.assertEqual('rm -f /hold/held.*',
                         release['arguments']['arg'][1])
        self.assertEqual({'execute': 'guest-exec-status',
                          'arguments': {'pid': 7}},
                         json.loads(guest.agent_exec_status(7)))


class DomainXmlTestCase(testtools.TestCase):

    def test_current_vcpus_and_memory(self):
        self.assertEqual(2, scenario.xml_current_vcpus(LIVE_XML))
        self.assertEqual(599, scenario.xml_current_memory_mb(LIVE_XML))

    def test_vcpus_without_current_is_the_maximum(self):
        self.assertEqual(4, scenario.xml_current_vcpus(
            "<vcpu placement='static'>4</vcpu>"))


class AdjustAnswersTestCase(testtools.TestCase):

    def test_the_numbers_of_a_refused_shrink(self):
        message = (
            'current_memory_mb 512 is not safe: the guest uses 471 MiB of'
            ' its 768 MiB (297 MiB usable); 512 MiB leaves less than the'
            ' 128 MiB margin: the smallest safe target is 599 MiB. Send'
            ' "force": true to lower it anyway.')
        self.assertEqual((471, 768, 297, 599),
                         scenario.shrink_refusal_numbers(message))
        self.assertIsNone(scenario.shrink_refusal_numbers('Conflict'))
        self.assertIsNone(scenario.shrink_refusal_numbers(None))

    def test_observations_left_out(self):
        shown = {'current_memory_mb': 512, 'observed': {'memory': {}}}
        self.assertEqual({'current_memory_mb': 512},
                         scenario.without_observations(shown))
        self.assertIn('observed', shown)


class LatencyTestCase(testtools.TestCase):

    def test_nearest_rank_percentile(self):
        samples = [0.5, 0.1, 0.4, 0.2, 0.3]
        self.assertEqual(0.3, scenario.percentile(samples, 0.5))
        self.assertEqual(0.5, scenario.percentile(samples, 0.95))
        self.assertEqual(0.1, scenario.percentile(samples, 0))
        self.assertEqual(7, scenario.percentile([7], 0.5))

    def test_latency_table_in_milliseconds(self):
        table = scenario.latency_table([0.05, 0.07, 0.06],
                                       [0.3, 0.2, 0.25])
        lines = table.splitlines()
        self.assertIn('one adjustment on real services (3)', lines[0])
        self.assertEqual(['POST', '->', '202', '60.0', '70.0'],
                         lines[1].split())
        self.assertEqual(['250.0', '300.0'], lines[2].split()[-2:])


class NeutronStandinTestCase(testtools.TestCase):

    def _call(self, method, path):
        got = {}

        def start_response(status, headers):
            got['status'] = status
        body = b''.join(neutron_standin.application(
            {'REQUEST_METHOD': method, 'PATH_INFO': path,
             'QUERY_STRING': 'device_id=x'}, start_response))
        return got['status'], json.loads(body)

    def test_lists_are_empty(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', io.StringIO()))
        self.assertEqual(('200 OK', {'ports': []}),
                         self._call('GET', '/v2.0/ports'))
        self.assertEqual(('200 OK', {'security_groups': []}),
                         self._call('GET', '/v2.0/security-groups'))

    def test_anything_else_is_404(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', io.StringIO()))
        status, body = self._call('POST', '/v2.0/ports')
        self.assertEqual('404 Not Found', status)
        self.assertIn('POST /v2.0/ports', body['NeutronError']['message'])


class ProcessesTestCase(testtools.TestCase):

    def setUp(self):
        super(ProcessesTestCase, self).setUp()
        self.state_dir = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(processes.cleanup, self.state_dir, 0.5)

    def test_cleanup_ends_the_group_and_what_carries_the_mark(self):
        # A daemon that leaves its group (as QEMU and virtlogd do), and a
        # child that ignores SIGTERM.
        script = ('import os, signal, subprocess, sys, time\n'
                  'subprocess.Popen([sys.executable, "-c",'
                  ' "import time; time.sleep(600)"],'
                  ' start_new_session=True)\n'
                  'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
                  'time.sleep(600)\n')
        proc = processes.start(self.state_dir, 'sleeper',
                               [sys.executable, '-c', script])
        deadline = time.monotonic() + 30
        while (len(processes.marked(self.state_dir)) < 2 and
               time.monotonic() < deadline):
            time.sleep(0.1)
        self.assertEqual(2, len(processes.marked(self.state_dir)))
        # Known by a variable naming the state directory, as virtlogd.
        home = subprocess.Popen(
            [sys.executable, '-c', 'import time; time.sleep(600)'],
            env={'HOME': os.path.join(self.state_dir, 'libvirt')},
            start_new_session=True)
        self.addCleanup(home.wait)
        deadline = time.monotonic() + 30
        while (home.pid not in processes.marked(self.state_dir) and
               time.monotonic() < deadline):
            time.sleep(0.1)
        ended, left = processes.cleanup(self.state_dir, grace=0.5)
        self.assertEqual(['sleeper'], ended)
        self.assertEqual([], left)
        self.assertIsNotNone(proc.poll())
        self.assertIsNotNone(home.wait(timeout=10))
        self.assertEqual([], os.listdir(os.path.join(self.state_dir,
                                                     'pids')))

    def test_short_dir_fits_the_agent_socket_of_a_nova_domain(self):
        short = processes.short_dir(self.state_dir)
        self.assertEqual(short, processes.short_dir(self.state_dir + '/'))
        self.assertNotEqual(short, processes.short_dir(self.state_dir + 'x'))
        self.assertFalse(short.startswith(self.state_dir))
        socket = os.path.join(
            short, 'libvirt', 'qemu', 'channel', 'target',
            'domain-9999-instance-0000ffff', guest.AGENT_CHANNEL)
        self.assertLessEqual(len(socket), 107)

    def test_cleanup_ends_what_names_the_short_dir_and_removes_it(self):
        # QEMU is known by the sockets under the short folder that its
        # command line names.
        short = processes.short_dir(self.state_dir)
        os.makedirs(os.path.join(short, 'libvirt'))
        self.addCleanup(subprocess.run, ['rm', '-rf', short])
        qemu = subprocess.Popen(
            [sys.executable, '-c', 'import time; time.sleep(600)',
             'path=%s/libvirt/monitor.sock' % short],
            env={}, start_new_session=True)
        self.addCleanup(qemu.wait)
        self.assertIn(qemu.pid, processes.marked(self.state_dir))
        ended, left = processes.cleanup(self.state_dir, grace=0.5)
        self.assertEqual([], left)
        self.assertIsNotNone(qemu.wait(timeout=10))
        self.assertFalse(os.path.exists(short))

    def test_host_dirs_made_are_removed_and_those_found_stay(self):
        outside = self.useFixture(fixtures.TempDir()).path
        wanted = os.path.join(outside, 'var', 'lib', 'qemu')
        processes.make_host_dir(self.state_dir, wanted, os.getuid(),
                                os.getgid())
        processes.make_host_dir(self.state_dir, wanted, os.getuid(),
                                os.getgid())
        self.assertTrue(os.path.isdir(wanted))
        with open(os.path.join(wanted, 'agent.sock'), 'w'):
            pass
        processes.cleanup(self.state_dir, grace=0.5)
        self.assertEqual([], os.listdir(outside))
        self.assertFalse(os.path.exists(os.path.join(
            self.state_dir, processes.HOST_DIRS)))


class ApiProcessesTestCase(testtools.TestCase):

    def test_request_ids_map_to_the_worker_that_answered(self):
        state = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(state, 'logs'))
        line = cloud_mod.ACCESS_LOG_FORMAT.replace(
            '%(p)s', '<%d>').replace(
            '%({x-openstack-request-id}o)s', '%s').replace(
            '%(r)s', 'POST /v2.1/os-xloud-adjust/x HTTP/1.1').replace(
            '%(s)s', '202')
        with open(processes.log_path(state, 'nova-api'), 'w') as log:
            log.write('[INFO] Booting worker with pid: 11\n')
            log.write(line % (11, 'req-a') + '\n')
            log.write(line % (12, 'req-b') + '\n')
            log.write(line % (12, 'req-other') + '\n')
            log.write('access: <13>\n')
        cloud = cloud_mod.Cloud(state)
        self.assertEqual({'req-a': 11, 'req-b': 12},
                         cloud.api_processes({'req-a', 'req-b', 'req-c'}))
        self.assertEqual({'nova-api': 2}, cloud_mod.WORKERS)
