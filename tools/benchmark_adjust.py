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
conductor, scheduler, placement and a libvirt compute on fakelibvirt) and
times, for N rounds (default 50):

* live adjust: POST /os-xloud-adjust/{id} until the instance action's
  compute event has finished;
* resize plus confirm with the same growth: POST resize until the server
  is VERIFY_RESIZE, then confirmResize until it is ACTIVE again.

Each round alternates between the small and the big size. It prints p50
and p95 of both and the ratio resize/adjust. Run it where the functional
tests run (for example in .tox/functional-2026.2):

    python tools/benchmark_adjust.py [--rounds 50]

The numbers measure Nova's and our control path on a fake hypervisor, not
QEMU: real vCPU hot-plug, ballooning and disk copies add their own time.
"""

import argparse
import math
import statistics
import sys
import time
import unittest

from nova_xloud.testing import base

SMALL = (2, 1024)
BIG = (4, 4096)


def percentile(samples, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


class Benchmark(base.LiveAdjustBase):

    rounds = 50
    results = {}

    def runTest(self):
        self._allow_resize_here()

        # Live adjust between SMALL and BIG on a flavor sized BIG.
        server = self._boot(self._flavor(vcpu=BIG[0], memory_mb=BIG[1],
                                         minimum_cpu=str(SMALL[0]),
                                         minimum_memory=str(SMALL[1])))
        adjust = []
        for n in range(self.rounds):
            vcpus, memory = BIG if n % 2 == 0 else SMALL
            start = time.monotonic()
            body = self._post(server, {'current_vcpus': vcpus,
                                       'current_memory_mb': memory})
            self._wait_event(server, body['adjustment']['request_id'],
                             'Success')
            adjust.append(time.monotonic() - start)
        self._delete_server(server)

        # The same growth by resize between two flavors, then confirm.
        small = self._flavor(vcpu=SMALL[0], memory_mb=SMALL[1])
        big = self._flavor(vcpu=BIG[0], memory_mb=BIG[1])
        server = self._boot(small)
        resize = []
        for n in range(self.rounds):
            flavor = big if n % 2 == 0 else small
            start = time.monotonic()
            server = self._resize_server(server, flavor)
            server = self._confirm_resize(server)
            resize.append(time.monotonic() - start)
        type(self).results = {'adjust': adjust, 'resize': resize}


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
                          ('resize + confirm', resize)):
        print('%-22s %8.1f %8.1f %8.1f' % (
            name, percentile(samples, 0.50) * 1000,
            percentile(samples, 0.95) * 1000,
            statistics.mean(samples) * 1000))
    print('ratio resize/adjust: p50 %.1fx, p95 %.1fx' % (
        percentile(resize, 0.50) / percentile(adjust, 0.50),
        percentile(resize, 0.95) / percentile(adjust, 0.95)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
