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

"""nova-xloud demo --real: a real VM grows live, the guest's view beside.

The same one-node cloud as ``tox -e realcloud``, in this environment,
which must hold the release's patched Nova (``nova-xloud install
RELEASE``); what else the cloud needs is installed first. Needs root.
"""

import os
import time

from nova_xloud.realcloud import __main__ as realcloud_cli
from nova_xloud.realcloud import cloud as cloud_mod
from nova_xloud.realcloud import errors
from nova_xloud.realcloud import scenario

STEPS = ((1, 512), (2, 512), (2, 768), (2, 1024), (2, 512))


def _say(text):
    print(text, flush=True)


def _row(elapsed, shown, report):
    guest = ('%d vCPUs, MemTotal %4d MiB, MemFree %4d MiB'
             % (report['cpus'], report['memtotal_kb'] // 1024,
                report['memfree_kb'] // 1024) if report else '(no report)')
    return ('  %5.1f s   API: %d vCPUs, %4d MiB (%s)   guest: %s'
            % (elapsed, shown['current_vcpus'], shown['current_memory_mb'],
               shown['last_status'], guest))


def _watch(driver, server_id, vcpus, memory_mb, start, timeout=120):
    """Print both views each second until the guest shows the values."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = driver.last_report(server_id)
        shown = driver.adjustment(server_id)
        _say(_row(time.monotonic() - start, shown, report))
        if report and scenario.guest_matches(report, vcpus, memory_mb):
            return
        time.sleep(1)
    raise errors.RealCloudError('the guest did not show %d vCPUs and %d'
                                ' MiB within %d s' % (vcpus, memory_mb,
                                                      timeout))


def run(release_name):
    if os.geteuid() != 0:
        raise errors.RealCloudError('demo --real needs root (it installs'
                                    ' packages and runs libvirtd and QEMU)')
    realcloud_cli.install_debs()
    realcloud_cli.install_python(release_name)
    cloud = cloud_mod.Cloud(scenario.state_dir(), report=_say)
    try:
        cloud.up()
        driver = scenario.Driver(cloud, report=_say)
        image_id = driver.upload_guest(scenario.guest_cache_dir())
        flavor_id = driver.create_flavor(1, 512)
        _say('[demo] booting a server of flavor 4 vCPUs / 1024 MiB with'
             ' minimum_cpu=1, minimum_memory=512 on QEMU ...')
        start = time.monotonic()
        server_id = driver.create_server(image_id, flavor_id)
        driver.wait_status(server_id, 'ACTIVE')
        driver.wait_guest(server_id, 1, 512)
        _say('[demo] the guest runs after %.1f s'
             % (time.monotonic() - start))
        for vcpus, memory_mb in STEPS[1:]:
            _say('\n== POST /os-xloud-adjust {"current_vcpus": %d,'
                 ' "current_memory_mb": %d} ==' % (vcpus, memory_mb))
            start = time.monotonic()
            resp = driver.adjust(server_id, current_vcpus=vcpus,
                                 current_memory_mb=memory_mb)
            if resp.status != 202:
                raise errors.RealCloudError('adjust refused: %r' % (resp,))
            _watch(driver, server_id, vcpus, memory_mb, start)
        _say('\n[demo] finished: the guest saw every change live, without'
             ' a reboot')
    finally:
        ended, left = cloud.down()
        _say('[demo] stopped %s%s' % (', '.join(ended),
                                      '; STILL RUNNING: %s' % left
                                      if left else ''))
    return 0
