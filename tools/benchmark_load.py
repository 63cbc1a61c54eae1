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

"""Live adjustments under load, in process (not a test).

Boots SERVERS servers (default 50) spread over N libvirt computes on
fakelibvirt, then sends ADJUSTMENTS adjustments (default 500) of random
servers to random sizes, as fast as the API takes them, from THREADS
client threads (default 20), with RPC casts sent as casts. It prints, per
number of computes:

* adjustments per second, from the first POST until the last adjustment
  finished;
* p50 and p95 of POST latency (to the 202) and of POST to finished (the
  compute event's finish time);
* how many POSTs got each status;
* whether, at the end, every server's running guest and domain XML on its
  host, GET /os-xloud-adjust and its placement allocation agree, and that
  no adjustment is left pending.

It exits 1 if any server disagrees or is left pending. Run it where the
functional tests run (for example in .tox/functional-2026.2):

    python tools/benchmark_load.py [--computes 1 5] [--seed N]

All services share this process and its two cores, so more computes add
parallel work but no CPU: the figures show where the control path waits,
not a real cloud's throughput.
"""

import argparse
import datetime
import random
import sys
import threading
import time
import unittest

from nova.tests.fixtures import libvirt as nova_fakelibvirt

from nova_xloud.realcloud import scenario
from nova_xloud.testing import base

FLAVOR = (2, 1024)
MINIMUM = (1, 256)
SIZES = [(vcpus, memory) for vcpus in (1, 2)
         for memory in (256, 512, 768, 1024)]
# 8 host CPUs (the fake host reports 16 online) and 64 GiB: with
# an allocation ratio of 16, one compute holds all the servers at their
# flavor's maximum.
BIG_HOST = dict(cpu_nodes=1, cpu_sockets=1, cpu_cores=4, cpu_threads=2,
                kB_mem=64 * 1024 * 1024)


def _utc(text):
    return datetime.datetime.fromisoformat(text.replace('Z', '')[:26])


class LoadBenchmark(base.MultiComputeBase):

    CAST_AS_CALL = False
    computes_wanted = 5
    servers_wanted = 50
    adjustments = 500
    threads = 20
    seed = 0
    report = {}

    def start_compute(self, hostname, host_info=None, **kwargs):
        host_info = host_info or nova_fakelibvirt.HostInfo(**BIG_HOST)
        self.flags(cpu_allocation_ratio=16.0)
        self.flags(instances=-1, cores=-1, ram=-1, group='quota')
        return super().start_compute(hostname, host_info=host_info,
                                     **kwargs)

    def _boot_servers(self):
        flavor = self._flavor(vcpu=FLAVOR[0], memory_mb=FLAVOR[1],
                              minimum_cpu=str(MINIMUM[0]),
                              minimum_memory=str(MINIMUM[1]))
        body = self._build_server(name='load', flavor_id=flavor,
                                  networks='none')
        body.update(min_count=self.servers_wanted,
                    max_count=self.servers_wanted)
        self.admin_api.post_server({'server': body})
        deadline = time.monotonic() + 600
        while True:
            servers = self.admin_api.get_servers(detail=True)
            if (len(servers) == self.servers_wanted and
                    all(s['status'] == 'ACTIVE' for s in servers)):
                return servers
            if any(s['status'] == 'ERROR' for s in servers):
                self.fail('a server went to ERROR')
            if time.monotonic() > deadline:
                self.fail('the servers did not all become ACTIVE')
            time.sleep(0.5)

    def _send_all(self, servers):
        rng = random.Random(self.seed)
        jobs = iter([(rng.choice(servers), rng.choice(SIZES))
                     for _ in range(self.adjustments)])
        lock = threading.Lock()
        sent = []

        def client():
            while True:
                with lock:
                    job = next(jobs, None)
                if job is None:
                    return
                server, (vcpus, memory) = job
                posted = datetime.datetime.utcnow()
                start = time.monotonic()
                response = self.admin_api.api_post(
                    base.ADJUST_URL % server['id'],
                    {'current_vcpus': vcpus, 'current_memory_mb': memory},
                    check_response_status=False)
                latency = time.monotonic() - start
                with lock:
                    sent.append((server, posted, latency, response))
        workers = [threading.Thread(target=client)
                   for _ in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return sent

    def _wait_settled(self, servers):
        deadline = time.monotonic() + 600
        while True:
            pending = [s['id'] for s in servers
                       if self._show(s)['last_status'] == 'pending']
            if not pending:
                return
            if time.monotonic() > deadline:
                self.fail('still pending: %s' % pending)
            time.sleep(0.5)

    def _show(self, server):
        return self.admin_api.api_get(
            base.ADJUST_URL % server['id']).body['adjustment']

    def _finished(self, server, request_id):
        action = self.admin_api.get_instance_action_details(
            server['id'], request_id)
        for event in action['events']:
            if event['event'] == base.ADJUST_EVENT and event['finish_time']:
                return _utc(event['finish_time'])
        return None

    def _disagreeing(self, servers):
        wrong = []
        for server in self.admin_api.get_servers(detail=True):
            host = server['OS-EXT-SRV-ATTR:host']
            guest, xml = self._guest_on(host, server)
            shown = self._show(server)
            api = (shown['current_vcpus'], shown['current_memory_mb'])
            allocation = self._allocations_by_host(server)
            if not (guest == xml == api and allocation == {host: api}):
                wrong.append((server['id'], guest, xml, api, allocation))
        return wrong

    def runTest(self):
        self._start_computes(*['compute%d' % n for n in
                               range(2, self.computes_wanted + 1)])
        servers = self._boot_servers()
        hosts = {s['OS-EXT-SRV-ATTR:host'] for s in servers}
        start = time.monotonic()
        first = datetime.datetime.utcnow()
        sent = self._send_all(servers)
        self._wait_settled(servers)
        accepted = [(server, posted, latency, response.body)
                    for server, posted, latency, response in sent
                    if response.status == 202]
        finished = []
        for server, posted, _latency, body in accepted:
            end = self._finished(server,
                                 body['adjustment']['request_id'])
            if end is not None:
                finished.append((end - posted).total_seconds())
        last_end = max(first, *(
            self._finished(s, b['adjustment']['request_id']) or first
            for s, _p, _l, b in accepted))
        statuses = {}
        for _server, _posted, _latency, response in sent:
            statuses[response.status] = statuses.get(response.status, 0) + 1
        type(self).report[self.computes_wanted] = {
            'hosts used': len(hosts),
            'wall': time.monotonic() - start,
            'per second': len(accepted) / max(
                (last_end - first).total_seconds(), 1e-6),
            'post': [latency for _s, _p, latency, _r in sent],
            'finished': finished,
            'statuses': statuses,
            'disagreeing': self._disagreeing(servers),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--computes', type=int, nargs='+', default=[1, 5])
    parser.add_argument('--servers', type=int, default=50)
    parser.add_argument('--adjustments', type=int, default=500)
    parser.add_argument('--threads', type=int, default=20)
    parser.add_argument('--seed', type=int,
                        default=random.SystemRandom().randrange(10 ** 6))
    args = parser.parse_args()
    print('seed %d: %d servers, %d adjustments from %d threads'
          % (args.seed, args.servers, args.adjustments, args.threads),
          flush=True)
    ok = True
    for computes in args.computes:
        LoadBenchmark.computes_wanted = computes
        LoadBenchmark.servers_wanted = args.servers
        LoadBenchmark.adjustments = args.adjustments
        LoadBenchmark.threads = args.threads
        LoadBenchmark.seed = args.seed
        result = unittest.TextTestRunner(stream=sys.stderr,
                                         verbosity=0).run(LoadBenchmark())
        if not result.wasSuccessful():
            return 1
    print('%-9s %6s %8s %9s %9s %9s %9s  %s' % (
        'computes', 'hosts', 'adj/s', 'POST p50', 'POST p95', 'end p50',
        'end p95', 'statuses'))
    for computes, row in sorted(LoadBenchmark.report.items()):
        print('%-9d %6d %8.1f %7.0fms %7.0fms %7.0fms %7.0fms  %s' % (
            computes, row['hosts used'], row['per second'],
            scenario.percentile(row['post'], 0.5) * 1000,
            scenario.percentile(row['post'], 0.95) * 1000,
            scenario.percentile(row['finished'], 0.5) * 1000,
            scenario.percentile(row['finished'], 0.95) * 1000,
            ' '.join('%d: %d' % item
                     for item in sorted(row['statuses'].items()))))
    for computes, row in sorted(LoadBenchmark.report.items()):
        for wrong in row['disagreeing']:
            ok = False
            print('%d computes: server %s disagrees: guest %s, XML %s, '
                  'GET %s, allocations %s' % ((computes,) + wrong))
    print('every server agrees (guest, XML, GET, placement), none pending'
          if ok else 'DISAGREEMENT')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
