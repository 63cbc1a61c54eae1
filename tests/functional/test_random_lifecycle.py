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

"""A seeded random walk of adjustments, moves, reboots and stop/start.

Two servers on two computes go through a random sequence of operations;
after every step the guest on the host where the server runs, ``GET
/os-xloud-adjust`` and the server's allocations (on that host only) must
equal what a small model of the promises says: an adjustment sets the live
values (and the persisted ones with ``persist: true``); a live migration
and a soft reboot keep the live values; everything that defines the domain
again (hard reboot, stop/start, cold migration confirmed or reverted)
boots the persisted values.

The seed is printed in the test's details and in every failure, with the
steps taken. The default seed is fixed, so that CI walks the same
sequence every run; ``XLOUD_RANDOM_SEED=random`` draws a new one, a number
replays one, and ``XLOUD_RANDOM_STEPS`` makes the walk longer (default
14 steps).
"""

import os
import random

import testtools

from nova_xloud.testing import base

FLAVOR_MINIMUM = (1, 1024)
VCPUS = (1, 2, 3, 4)
MEMORY_MB = (1024, 1536, 2048, 3072, 4096)
HOSTS = ('compute1', 'compute2')


# CI walks the same sequence every run, so that a red run is reproducible
# and never a draw; XLOUD_RANDOM_SEED=random draws a new one.
DEFAULT_SEED = 20261130


def _seed(value):
    if not value:
        return DEFAULT_SEED
    if value == 'random':
        return random.SystemRandom().randrange(2 ** 32)
    return int(value)


class Model(object):
    """What a server must have, by the README's promises."""

    def __init__(self):
        self.persisted = FLAVOR_MINIMUM
        self.live = FLAVOR_MINIMUM

    def adjust(self, values, persist):
        self.live = values
        if persist:
            self.persisted = values

    def boot_anew(self):
        self.live = self.persisted


class RandomLifecycleTestCase(base.MultiComputeBase):

    TIMEOUT_SCALING_FACTOR = 4

    def setUp(self):
        super().setUp()
        self._no_disk_to_move()
        self.seed = _seed(os.environ.get('XLOUD_RANDOM_SEED'))
        self.steps = int(os.environ.get('XLOUD_RANDOM_STEPS') or 14)
        self.addDetail('seed', testtools.content.text_content(
            'XLOUD_RANDOM_SEED=%d' % self.seed))
        self.random = random.Random(self.seed)
        # Nova's base clears the test's attributes before the details are
        # read: keep the list itself.
        history = self.history = []
        self.addDetail('steps', testtools.content.Content(
            testtools.content_type.UTF8_TEXT,
            lambda: ['\n'.join(history).encode('utf-8')]))

    def _step(self, server, model, operation):
        self.history.append('%s %s' % (server['name'], operation.__name__))
        operation(server, model)

    # Operations: each changes the server and the model alike.

    def adjust(self, server, model):
        values = (self.random.choice(VCPUS), self.random.choice(MEMORY_MB))
        persist = self.random.choice((True, False))
        self.history[-1] += ' %s persist=%s' % (values, persist)
        self._adjust_and_wait(server, *values, persist=persist)
        model.adjust(values, persist)

    def hard_reboot(self, server, model):
        self._reboot_server(server, hard=True)
        model.boot_anew()

    def soft_reboot(self, server, model):
        self._reboot_server(server, hard=False)

    def stop_start(self, server, model):
        server = self._stop_server(server)
        self._start_server(server)
        model.boot_anew()

    def live_migrate(self, server, model):
        self.admin_api.post_server_action(
            server['id'], {'os-migrateLive': {'host': None,
                                              'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['completed'])
        self._wait_for_state_change(server, 'ACTIVE')
        # The guest keeps its live values; the next steps (a soft reboot,
        # a stop) find it defined on the destination.

    def cold_migrate_confirm(self, server, model):
        self.admin_api.post_server_action(server['id'], {'migrate': None})
        self._wait_for_state_change(server, 'VERIFY_RESIZE')
        self._confirm_resize(server)
        model.boot_anew()

    def cold_migrate_revert(self, server, model):
        self.admin_api.post_server_action(server['id'], {'migrate': None})
        self._wait_for_state_change(server, 'VERIFY_RESIZE')
        self._revert_resize(server)
        model.boot_anew()

    OPERATIONS = ('adjust', 'adjust', 'adjust', 'hard_reboot', 'soft_reboot',
                  'stop_start', 'live_migrate', 'cold_migrate_confirm',
                  'cold_migrate_revert')

    def _check(self, server, model):
        host = self.admin_api.get_server(server['id'])[
            'OS-EXT-SRV-ATTR:host']
        shown = self.admin_api.api_get(
            base.ADJUST_URL % server['id']).body['adjustment']
        observed = {
            'guest and its XML': self._guest_on(host, server),
            'GET': (shown['current_vcpus'], shown['current_memory_mb']),
            'allocations': self._allocations_by_host(server),
        }
        expected = {
            'guest and its XML': (model.live, model.live),
            'GET': model.live,
            'allocations': {host: model.live},
        }
        self.assertEqual(expected, observed, 'XLOUD_RANDOM_SEED=%d; steps: '
                         '%s' % (self.seed, '; '.join(self.history)))
        self.assertEqual(model.live == model.persisted, shown['persisted'],
                         'XLOUD_RANDOM_SEED=%d; steps: %s' % (
                             self.seed, '; '.join(self.history)))

    def test_random_walk_keeps_guest_records_and_placement_equal(self):
        flavor_id = self._flavor(minimum_cpu='1', minimum_memory='1024')
        servers = [(self._boot(flavor_id=flavor_id, name='walk%d' % i),
                    Model()) for i in range(2)]
        self._start_computes(*HOSTS[1:])
        for server, model in servers:
            self._check(server, model)
        for _ in range(self.steps):
            server, model = self.random.choice(servers)
            operation = getattr(self, self.random.choice(self.OPERATIONS))
            self._step(server, model, operation)
            self._check(server, model)
