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

"""Drive the real cloud as an admin would, and read what each view says.

The views of a server: the guest's own reports on its console (through
Nova's os-getConsoleOutput), ``GET /os-xloud-adjust``, placement's
allocations, and libvirt's domain XML (with QEMU's own vCPU count).
"""

import json
import math
import os
import re
import subprocess
import threading
import time

from nova_xloud.realcloud import cloud as cloud_mod
from nova_xloud.realcloud import errors
from nova_xloud.realcloud import guest

FLAVOR_VCPUS = 4
ADJUST_EVENT = 'compute_xloud_adjust'
FLAVOR_RAM_MB = 1024
# The guest's free memory sits this far below the balloon target at most
# (kernel, initramfs and page tables of a busybox guest).
GUEST_MEMORY_SLACK_MB = 200
# What nova-api says when a memory decrease is not safe for the guest.
SHRINK_REFUSAL = re.compile(
    r'the guest uses (\d+) MiB of its (\d+) MiB \((\d+) MiB usable\).*'
    r'the smallest safe target is (\d+) MiB')


class Views(object):
    """What each view says about a server at one moment."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self):
        values = sorted(item for item in vars(self).items()
                        if item[0] != 'guest_report')
        return 'Views(%s)' % ', '.join('%s=%r' % item for item in values)


class Driver(object):
    """An admin's calls on a running ``cloud.Cloud``."""

    def __init__(self, cloud, report=print):
        self.cloud = cloud
        self.api = cloud.admin
        self.report = report

    # -- images and flavors ---------------------------------------------
    def upload_image(self, name, disk_format, path, **properties):
        body = dict(name=name, disk_format=disk_format,
                    container_format=('bare' if disk_format not in
                                      ('aki', 'ari') else disk_format),
                    visibility='public', **properties)
        resp = self.api.post('image', '/v2/images', body)
        self._expect(resp, 201, 'creating image %s' % name)
        image_id = resp.body['id']
        with open(path, 'rb') as handle:
            data = handle.read()
        resp = self.api.put(
            'image', '/v2/images/%s/file' % image_id, raw=data,
            headers={'Content-Type': 'application/octet-stream'})
        self._expect(resp, 204, 'uploading image %s' % name)
        return image_id

    def upload_guest(self, cache_dir, agent=False):
        """The guest's image; with ``agent``, the one running qemu-ga.

        The agent guest's image sets hw_qemu_guest_agent=yes, so that
        Nova gives its servers the agent's channel and nova-xloud brings
        hot-plugged vCPUs online through it (its init does not).
        """
        kernel, initramfs = guest.build(cache_dir,
                                        self.cloud.path('guest'),
                                        agent=agent)
        root = self.cloud.path('guest', 'root.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', root,
                        '64M'], check=True)
        kernel_id = self.upload_image('xloud-kernel', 'aki', kernel)
        ramdisk_id = self.upload_image('xloud-initramfs', 'ari', initramfs)
        properties = dict(guest.AGENT_IMAGE_PROPERTIES if agent else {})
        return self.upload_image(
            'xloud-guest', 'qcow2', root, kernel_id=kernel_id,
            ramdisk_id=ramdisk_id,
            os_command_line='console=ttyS0 panic=-1 quiet', **properties)

    def create_flavor(self, minimum_cpu, minimum_memory):
        resp = self.api.post('compute', '/flavors', {'flavor': {
            'name': 'xloud.real', 'vcpus': FLAVOR_VCPUS,
            'ram': FLAVOR_RAM_MB, 'disk': 1}})
        self._expect(resp, 200, 'creating the flavor')
        flavor_id = resp.body['flavor']['id']
        resp = self.api.post('compute', '/flavors/%s/os-extra_specs'
                             % flavor_id, {'extra_specs': {
                                 'minimum_cpu': str(minimum_cpu),
                                 'minimum_memory': str(minimum_memory)}})
        self._expect(resp, 200, 'setting the minimum extra specs')
        return flavor_id

    # -- servers ----------------------------------------------------------
    def create_server(self, image_id, flavor_id):
        resp = self.api.post('compute', '/servers', {'server': {
            'name': 'xloud-real', 'imageRef': image_id,
            'flavorRef': flavor_id, 'networks': 'none'}})
        self._expect(resp, 202, 'creating the server')
        return resp.body['server']['id']

    def server(self, server_id):
        resp = self.api.get('compute', '/servers/%s' % server_id)
        self._expect(resp, 200, 'showing the server')
        return resp.body['server']

    def wait_status(self, server_id, status, timeout=300):
        def settled():
            server = self.server(server_id)
            if server['status'] == 'ERROR':
                raise errors.RealCloudError('server in ERROR: %s'
                                            % server.get('fault'))
            return (server if server['status'] == status and
                    server['OS-EXT-STS:task_state'] is None else None)
        return self._wait('server %s' % status, settled, timeout)

    def action(self, server_id, body, expect=202):
        resp = self.api.post('compute', '/servers/%s/action' % server_id,
                             body)
        self._expect(resp, expect, 'server action %s' % list(body))
        return resp

    def delete_server(self, server_id):
        self.api.delete('compute', '/servers/%s' % server_id)

        def gone():
            return self.api.get('compute', '/servers/%s'
                                % server_id).status == 404
        self._wait('server deleted', gone, 120)

    # -- adjust -----------------------------------------------------------
    def adjust(self, server_id, **values):
        return self.api.post('compute', '/os-xloud-adjust/%s' % server_id,
                             values)

    def dry_run(self, server_id, **values):
        """A dry run's answer: what could be applied now, and why not."""
        resp = self.adjust(server_id, dry_run=True, **values)
        self._expect(resp, 200, 'POST /os-xloud-adjust with dry_run')
        return resp.body['dry_run']

    def wait_dry_run(self, server_id, what, predicate, timeout=60,
                     **values):
        """Dry runs until ``predicate(answer)`` is true; the answer.

        The balloon statistics the compute reads are as old as Nova's
        ``[libvirt] mem_stats_period_seconds`` (10 s by default).
        """
        def answered():
            answer = self.dry_run(server_id, **values)
            return answer if predicate(answer) else None
        return self._wait(what, answered, timeout, interval=1)

    def adjustment(self, server_id):
        resp = self.api.get('compute', '/os-xloud-adjust/%s' % server_id)
        self._expect(resp, 200, 'GET /os-xloud-adjust')
        return resp.body['adjustment']

    def wait_adjusted(self, server_id, request_id, timeout=120,
                      interval=0.5):
        def done():
            shown = self.adjustment(server_id)
            return (shown if shown['last_request_id'] == request_id and
                    shown['last_status'] != 'pending' else None)
        return self._wait('adjustment %s' % request_id, done, timeout,
                          interval=interval)

    def adjust_timed(self, server_id, **values):
        """(seconds POST -> 202, seconds POST -> finished, what GET shows).

        GET is polled every 10 ms, as the in-process benchmark
        (tools/benchmark_adjust.py) polls, so the two figures compare.
        """
        start = monotonic()
        resp = self.adjust(server_id, **values)
        accepted = monotonic() - start
        self._expect(resp, 202, 'POST /os-xloud-adjust')
        shown = self.wait_adjusted(
            server_id, resp.body['adjustment']['request_id'], interval=0.01)
        return accepted, monotonic() - start, shown

    def adjust_at_once(self, server_id, bodies):
        """POST every body at the same moment, one thread each."""
        responses = [None] * len(bodies)
        ready = threading.Barrier(len(bodies))

        def post(index):
            ready.wait()
            responses[index] = self.adjust(server_id, **bodies[index])
        threads = [threading.Thread(target=post, args=(index,))
                   for index in range(len(bodies))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return responses

    def sequence(self, server_id):
        """The server's adjustment sequence number, read in MariaDB."""
        rows = self.cloud.sql('nova_cell1', (
            "SELECT value FROM instance_system_metadata WHERE "
            "instance_uuid = '%s' AND `key` = 'xloud_adjust_seq' AND "
            "deleted = 0" % server_id))
        return int(rows[0][0]) if rows else 0

    def adjust_event(self, server_id, request_id, timeout=120):
        """The finished compute event of one adjustment."""
        def finished():
            resp = self.api.get('compute', '/servers/%s/os-instance-actions'
                                '/%s' % (server_id, request_id))
            self._expect(resp, 200, 'instance action %s' % request_id)
            for event in resp.body['instanceAction']['events']:
                if event['event'] == ADJUST_EVENT and event['result']:
                    return event
            return None
        return self._wait('the event of %s' % request_id, finished,
                          timeout)

    # -- the guest agent, through the tier's libvirt connection ---------------
    def agent(self, server_id, request, timeout=5):
        """What the guest's qemu-ga returns for ``request`` (JSON text)."""
        out = self.cloud.virsh('qemu-agent-command', '--timeout',
                               str(timeout), self.domain_name(server_id),
                               request)
        return json.loads(out)['return']

    def guest_exec(self, server_id, request, timeout=120):
        """Run a guest-exec ``request``; its status once it exited."""
        pid = self.agent(server_id, request)['pid']

        def exited():
            status = self.agent(server_id, guest.agent_exec_status(pid))
            return status if status.get('exited') else None
        return self._wait('guest-exec %d to exit' % pid, exited, timeout)

    # -- the views ----------------------------------------------------------
    def guest_reports(self, server_id):
        resp = self.api.post('compute', '/servers/%s/action' % server_id,
                             {'os-getConsoleOutput': {'length': 40}})
        if resp.status != 200:
            return []
        return guest.parse_reports(resp.body.get('output'))

    def last_report(self, server_id):
        reports = self.guest_reports(server_id)
        return reports[-1] if reports else None

    def wait_guest(self, server_id, cpus, memory_mb, after=None,
                   timeout=240):
        """The first report newer than ``after`` that shows the values."""
        def seen():
            for report in self.guest_reports(server_id):
                if after and report['boot'] == after['boot'] and (
                        report['seq'] <= after['seq']):
                    continue
                if guest_matches(report, cpus, memory_mb):
                    return report
            return None
        return self._wait('the guest to see %d vCPUs and %d MiB'
                          % (cpus, memory_mb), seen, timeout, interval=0.25)

    def allocation(self, server_id):
        resp = self.api.get('placement', '/allocations/%s' % server_id)
        self._expect(resp, 200, 'placement allocations')
        resources = {}
        for alloc in resp.body['allocations'].values():
            resources.update(alloc['resources'])
        return resources

    def domain_name(self, server_id):
        return self.server(server_id)['OS-EXT-SRV-ATTR:instance_name']

    def qemu_vcpus(self, domain):
        out = self.cloud.virsh('qemu-monitor-command', domain,
                               '{"execute": "query-cpus-fast"}')
        return len(json.loads(out)['return'])

    def views(self, server_id):
        domain = self.domain_name(server_id)
        live = self.cloud.virsh('dumpxml', domain)
        config = self.cloud.virsh('dumpxml', '--inactive', domain)
        shown = self.adjustment(server_id)
        alloc = self.allocation(server_id)
        report = self.last_report(server_id)
        return Views(
            api_vcpus=shown['current_vcpus'],
            api_memory_mb=shown['current_memory_mb'],
            last_status=shown['last_status'],
            last_message=shown['last_message'],
            observed=shown['observed'],
            placement_vcpus=alloc.get('VCPU'),
            placement_memory_mb=alloc.get('MEMORY_MB'),
            xml_vcpus=xml_current_vcpus(live),
            xml_memory_mb=xml_current_memory_mb(live),
            config_vcpus=xml_current_vcpus(config),
            config_memory_mb=xml_current_memory_mb(config),
            qemu_vcpus=self.qemu_vcpus(domain),
            guest_cpus=report and report['cpus'],
            guest_report=report,
            guest_memtotal_mb=report and report['memtotal_kb'] // 1024,
            guest_memfree_mb=report and report['memfree_kb'] // 1024,
            domain_state=self.cloud.virsh('domstate', domain).strip())

    def settled_views(self, server_id, vcpus, memory_mb, timeout=120):
        """The views once the balloon and the guest reached the values."""
        deadline = time.monotonic() + timeout
        while True:
            views = self.views(server_id)
            views.guest_matches = bool(views.guest_report) and guest_matches(
                views.guest_report, vcpus, memory_mb)
            settled = (views.xml_memory_mb == memory_mb and
                       views.qemu_vcpus == vcpus and
                       views.guest_cpus == vcpus and views.guest_matches)
            if settled or time.monotonic() > deadline:
                return views
            time.sleep(1)

    # -- helpers ----------------------------------------------------------
    def _expect(self, resp, status, what):
        if resp.status != status:
            raise errors.RealCloudError('%s: expected HTTP %d, got %r'
                                        % (what, status, resp))

    def _wait(self, what, predicate, timeout, interval=0.5):
        return cloud_mod.wait_for(
            what, predicate, timeout, interval=interval,
            proc=self.cloud.procs.get('nova-compute'),
            log=self.cloud.log('nova-compute'))


def without_observations(shown):
    """GET's adjustment less what the guest was last observed to have.

    nova-compute's drift repair stores a new observation (a new time) of
    a running guest every [xloud] drift_repair_interval seconds, whatever
    else happens.
    """
    return {key: value for key, value in shown.items()
            if key != 'observed'}


def shrink_refusal_numbers(message):
    """(uses, actual, usable, smallest safe) in MiB from a 409's message."""
    match = SHRINK_REFUSAL.search(message or '')
    if match is None:
        return None
    return tuple(int(value) for value in match.groups())


def guest_matches(report, cpus, memory_mb):
    free_mb = report['memfree_kb'] / 1024.0
    return (report['cpus'] == cpus and
            memory_mb - GUEST_MEMORY_SLACK_MB <= free_mb <= memory_mb)


def xml_current_vcpus(xml):
    match = re.search(r"<vcpu([^>]*)>(\d+)</vcpu>", xml)
    current = re.search(r"current='(\d+)'", match.group(1))
    return int(current.group(1) if current else match.group(2))


def xml_current_memory_mb(xml):
    match = re.search(r"<currentMemory unit='KiB'>(\d+)</currentMemory>", xml)
    return int(match.group(1)) // 1024


def percentile(samples, fraction):
    """Nearest-rank percentile; the benchmarks in tools/ use it too."""
    ordered = sorted(samples)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


def latency_table(accepted, finished):
    """p50 / p95 in ms of POST -> 202 and POST -> finished."""
    lines = ['%-44s %9s %9s' % ('one adjustment on real services (%d)'
                                % len(finished), 'p50 ms', 'p95 ms')]
    for what, values in (('POST -> 202', accepted),
                         ('POST -> finished (GET polled every 10 ms)',
                          finished)):
        lines.append('%-44s %9.1f %9.1f' % (
            what, 1000 * percentile(values, 0.5),
            1000 * percentile(values, 0.95)))
    return '\n'.join(lines)


def timing_table(rows, reference):
    """Rows of (what, seconds) beside ``reference`` (a stop + start)."""
    lines = ['%-44s %9s %14s' % ('step (request -> the guest sees it)',
                                 'seconds', 'stop+start / x')]
    for what, seconds in rows:
        ratio = reference / seconds if seconds else float('inf')
        lines.append('%-44s %9.1f %14.1f' % (what, seconds, ratio))
    return '\n'.join(lines)


def state_dir():
    # Memory-backed where there is one: the databases' migrations sync
    # to disk at every table otherwise.
    parent = '/dev/shm' if os.path.isdir('/dev/shm') else '/tmp'
    return os.environ.get('NOVA_XLOUD_REALCLOUD_DIR',
                          os.path.join(parent, 'nova-xloud-realcloud'))


def guest_cache_dir():
    from nova_xloud.series import sdist
    return os.path.join(sdist.default_cache_dir(), 'realcloud')


def monotonic():
    return time.monotonic()
