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

"""Time live adjustments against resize plus confirm (not a test).

Runs the same in-process deployment as the functional tests (API,
conductor, scheduler, placement and a libvirt compute on fakelibvirt),
with RPC casts sent as casts (the functional tests run them as calls), and
times, for N rounds (default 50):

* live adjust: POST /os-xloud-adjust/{id} until the instance action's
  compute event has finished, and POST until its 202 alone;
* resize plus confirm with the same growth: POST resize until the server
  is VERIFY_RESIZE, then confirmResize until it is ACTIVE again with the
  confirm event finished;
* the floor: the same deployment doing only what an adjustment must, the
  libvirt calls and one records write, called in this process.

Each operation ends when nova-compute finishes its instance action event
(``compute_xloud_adjust``; ``compute_finish_resize``, then
``compute_confirm_resize``), seen in this process the moment nova-compute
records it: nothing polls the API, so no waiting thread takes CPU from
the deployment and no polling interval is added to either operation. The
check that the server got there (event result, status, migration) is made
after the clock stopped. Each round alternates between the small and the
big size. It prints p50 and p95 of each and the ratio resize/adjust, and
per operation what it cost: instance loads and saves, SQL statements
(Nova's and placement's databases), placement requests and RPC messages
(calls and casts), counted from the POST until the event finished, without
the checks. Run it where the functional tests run (for example in
.tox/functional-2026.2):

    python tools/benchmark_adjust.py [--rounds 50]

The numbers measure Nova's and our control path on a fake hypervisor, not
QEMU: real vCPU hot-plug, ballooning and disk copies add their own time.
"""

import argparse
import collections
import contextlib
import statistics
import sys
import threading
import time
import unittest

import fixtures
from nova import context as nova_context
from nova import objects
from nova.scheduler.client import report
from oslo_messaging.rpc import client as rpc_client
import sqlalchemy

from nova_xloud.realcloud import scenario
from nova_xloud import records
from nova_xloud import store
from nova_xloud.testing import base
from nova_xloud.virt import libvirt_adjust

SMALL = (2, 1024)
BIG = (4, 4096)
WAIT = 60
FINISH_RESIZE = 'compute_finish_resize'
CONFIRM_RESIZE = 'compute_confirm_resize'


COUNTED = ('instance loads', 'instance saves', 'SQL statements',
           'placement requests', 'RPC messages')


class Counters(fixtures.Fixture):
    """Count what the deployment does, except the benchmark's checks."""

    def _setUp(self):
        self.counts = collections.Counter()
        self.local = threading.local()
        for name, owner, attribute in (
                ('instance loads', objects.Instance, 'get_by_uuid'),
                ('instance loads', objects.Instance, 'refresh'),
                ('instance saves', objects.Instance, 'save'),
                ('placement requests', report.SchedulerReportClient, 'get'),
                ('placement requests', report.SchedulerReportClient, 'put'),
                ('placement requests', report.SchedulerReportClient, 'post'),
                ('placement requests', report.SchedulerReportClient,
                 'delete'),
                ('RPC messages', rpc_client._BaseCallContext, 'call'),
                ('RPC messages', rpc_client._BaseCallContext, 'cast')):
            self._wrap(name, owner, attribute)
        sqlalchemy.event.listen(sqlalchemy.engine.Engine,
                                'before_cursor_execute', self._statement)
        self.addCleanup(sqlalchemy.event.remove, sqlalchemy.engine.Engine,
                        'before_cursor_execute', self._statement)

    def _counting(self):
        return not getattr(self.local, 'paused', False)

    def _statement(self, *args, **kwargs):
        if self._counting():
            self.counts['SQL statements'] += 1

    def _wrap(self, name, owner, attribute):
        real = owner.__dict__[attribute]
        func = real.__func__ if isinstance(real, classmethod) else real
        counters = self

        def counted(*args, **kwargs):
            if counters._counting():
                counters.counts[name] += 1
            return func(*args, **kwargs)
        counted.__name__ = func.__name__
        wrapped = classmethod(counted) if isinstance(real, classmethod) \
            else counted
        self.useFixture(fixtures.MonkeyPatch(
            '%s.%s.%s' % (owner.__module__, owner.__name__, attribute),
            wrapped))

    @contextlib.contextmanager
    def paused(self):
        self.local.paused = True
        try:
            yield
        finally:
            self.local.paused = False

    def take(self):
        counts = dict(self.counts)
        self.counts.clear()
        return counts


class FinishedEvents(fixtures.Fixture):
    """When nova-compute finished an instance action event, as it does."""

    def _setUp(self):
        self.finished = {}
        self.condition = threading.Condition()
        real = objects.InstanceActionEvent.__dict__[
            'event_finish_with_failure'].__func__
        events = self

        def finish(cls, context, instance_uuid, event_name, *args, **kwargs):
            try:
                return real(cls, context, instance_uuid, event_name, *args,
                            **kwargs)
            finally:
                events._record(instance_uuid, event_name)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.objects.instance_action.InstanceActionEvent.'
            'event_finish_with_failure', classmethod(finish)))

    def _record(self, uuid, event_name):
        with self.condition:
            self.finished[(uuid, event_name)] = time.monotonic()
            self.condition.notify_all()

    def arm(self, uuid, event_name):
        """Forget an earlier finish of this event before it is started."""
        with self.condition:
            self.finished.pop((uuid, event_name), None)

    def wait(self, uuid, event_name):
        """The monotonic time at which the armed event finished."""
        key = (uuid, event_name)
        with self.condition:
            if not self.condition.wait_for(
                    lambda: key in self.finished, timeout=WAIT):
                raise AssertionError('%s of %s did not finish in %d s'
                                     % (event_name, uuid, WAIT))
            return self.finished[key]


class Benchmark(base.LiveAdjustBase):

    CAST_AS_CALL = False
    rounds = 50
    results = {}
    costs = {}

    def _event_result(self, server, request_id, event_name):
        action = self.admin_api.get_instance_action_details(
            server['id'], request_id)
        return [event['result'] for event in action['events']
                if event['event'] == event_name]

    def _timed_adjust(self, server, vcpus, memory):
        self.events.arm(server['id'], base.ADJUST_EVENT)
        start = time.monotonic()
        body = self._post(server, {'current_vcpus': vcpus,
                                   'current_memory_mb': memory})
        accepted = time.monotonic() - start
        finished = self.events.wait(server['id'], base.ADJUST_EVENT)
        with self.counters.paused():
            self.assertEqual(['Success'], self._event_result(
                server, body['adjustment']['request_id'], base.ADJUST_EVENT))
        return accepted, finished - start

    def _timed_resize(self, server, flavor):
        for event_name in (FINISH_RESIZE, CONFIRM_RESIZE):
            self.events.arm(server['id'], event_name)
        start = time.monotonic()
        self.admin_api.post_server_action(
            server['id'], {'resize': {'flavorRef': flavor}})
        resized = self.events.wait(server['id'], FINISH_RESIZE)
        # Only what nova-compute took counts, not this thread's reaction.
        confirm = time.monotonic()
        self.admin_api.post_server_action(server['id'],
                                          {'confirmResize': None})
        confirmed = self.events.wait(server['id'], CONFIRM_RESIZE)
        with self.counters.paused():
            self.assertEqual('ACTIVE', self.admin_api.get_server(
                server['id'])['status'])
            self.assertEqual('confirmed', self._newest_migration(server))
        return (resized - start) + (confirmed - confirm)

    def _newest_migration(self, server):
        migrations = self.admin_api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']).body[
                'migrations']
        return max(migrations, key=lambda m: m['id'])['status']

    def _floor(self, server):
        """The libvirt calls and one records write, nothing around them."""
        driver = self.computes[base.COMPUTE].driver
        context = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(
            context, server['id'], expected_attrs=['system_metadata',
                                                   'flavor'])
        times = []
        for n in range(self.rounds):
            vcpus, memory = BIG if n % 2 == 0 else SMALL
            start = time.monotonic()
            libvirt_adjust.set_vcpus(driver, instance, vcpus,
                                     decrease=vcpus == SMALL[0])
            libvirt_adjust.set_memory(driver, instance, memory)
            store.update(context, instance, records.set_live,
                         instance.flavor, vcpus=vcpus, memory_mb=memory)
            times.append(time.monotonic() - start)
        return times

    def runTest(self):
        self.counters = self.useFixture(Counters())
        self.events = self.useFixture(FinishedEvents())
        self._allow_resize_here()

        # Live adjust between SMALL and BIG on a flavor sized BIG.
        server = self._boot(self._flavor(vcpu=BIG[0], memory_mb=BIG[1],
                                         minimum_cpu=str(SMALL[0]),
                                         minimum_memory=str(SMALL[1])))
        accepted, adjust, adjust_costs = [], [], []
        self.counters.take()
        for n in range(self.rounds):
            vcpus, memory = BIG if n % 2 == 0 else SMALL
            to_202, to_end = self._timed_adjust(server, vcpus, memory)
            accepted.append(to_202)
            adjust.append(to_end)
            adjust_costs.append(self.counters.take())
        floor = self._floor(server)
        self._delete_server(server)

        # The same growth by resize between two flavors, then confirm.
        small = self._flavor(vcpu=SMALL[0], memory_mb=SMALL[1])
        big = self._flavor(vcpu=BIG[0], memory_mb=BIG[1])
        server = self._boot(small)
        resize, resize_costs = [], []
        self.counters.take()
        for n in range(self.rounds):
            resize.append(self._timed_resize(
                server, big if n % 2 == 0 else small))
            resize_costs.append(self.counters.take())
        type(self).results = {'adjust': adjust, 'accepted': accepted,
                              'floor': floor, 'resize': resize}
        type(self).costs = {'adjust': adjust_costs, 'resize': resize_costs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=50)
    args = parser.parse_args()
    Benchmark.rounds = args.rounds
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        Benchmark())
    if not result.wasSuccessful():
        return 1
    adjust = Benchmark.results['adjust']
    resize = Benchmark.results['resize']
    print('%-22s %8s %8s %8s' % ('operation (n=%d)' % args.rounds,
                                 'p50 ms', 'p95 ms', 'mean ms'))
    for name, samples in (('live adjust', adjust),
                          ('  POST to 202 alone', Benchmark.results[
                              'accepted']),
                          ('  floor (libvirt+write)', Benchmark.results[
                              'floor']),
                          ('resize + confirm', resize)):
        print('%-22s %8.1f %8.1f %8.1f' % (
            name, scenario.percentile(samples, 0.50) * 1000,
            scenario.percentile(samples, 0.95) * 1000,
            statistics.mean(samples) * 1000))
    print('ratio resize/adjust: p50 %.1fx, p95 %.1fx' % (
        (scenario.percentile(resize, 0.50) /
         scenario.percentile(adjust, 0.50)),
        (scenario.percentile(resize, 0.95) /
         scenario.percentile(adjust, 0.95))))
    print()
    print('%-22s %s' % ('per operation (mean)',
                        ' '.join('%9s' % name.split()[-1][:9]
                                 for name in COUNTED)))
    print('%-22s %s' % ('', ' '.join('%9s' % name.split()[0][:9]
                                     for name in COUNTED)))
    for name, key in (('live adjust', 'adjust'),
                      ('resize + confirm', 'resize')):
        costs = Benchmark.costs[key]
        print('%-22s %s' % (name, ' '.join(
            '%9.1f' % statistics.mean(c.get(counted, 0) for c in costs)
            for counted in COUNTED)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
