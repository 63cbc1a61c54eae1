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

"""python -m nova_xloud.realcloud prepare RELEASE | cleanup | timings

``prepare`` installs what the real cloud needs from Debian's packages and
PyPI (only what is missing) and downloads Debian's kernel package;
``cleanup`` ends every process of a cloud by PID and by its mark;
``timings`` prints the table the last scenario wrote.
"""

import argparse
import importlib.metadata
import os
import subprocess
import sys

from nova_xloud.realcloud import errors
from nova_xloud.realcloud import guest
from nova_xloud.realcloud import processes
from nova_xloud.realcloud import scenario
from nova_xloud import releases

DEBIAN_PACKAGES = (
    'libvirt-daemon', 'libvirt-daemon-driver-qemu', 'qemu-system-x86',
    'qemu-utils', 'libvirt-clients', 'busybox-static', 'libvirt-dev',
    'pkg-config', 'gcc', 'rabbitmq-server', 'mariadb-server',
    'mariadb-client')
# Keystone and Glance of the same release cycle as the Nova.
SERVICES = {
    '2024.1': ('25.0.0', '28.1.0'),
    '2025.1': ('27.1.0', '30.2.0'),
    '2025.2': ('28.1.0', '31.1.0'),
    '2026.1': ('29.1.0', '32.0.0'),
    '2026.2': ('30.0.0', '33.0.0'),
}
POLICY_RC = '/usr/sbin/policy-rc.d'


def _say(text):
    print('[realcloud] %s' % text, flush=True)


def _missing_debs():
    missing = []
    for package in DEBIAN_PACKAGES:
        result = subprocess.run(
            ['dpkg-query', '-W', '-f=${Status}', package],
            capture_output=True, text=True)
        if 'install ok installed' not in result.stdout:
            missing.append(package)
    return missing


def install_debs():
    missing = _missing_debs()
    if not missing:
        _say('Debian packages: all installed')
        return
    _say('apt-get install %s' % ' '.join(missing))
    # Keep apt from starting RabbitMQ, MariaDB or libvirtd as system
    # services: the cloud starts its own.
    own_policy = not os.path.exists(POLICY_RC)
    if own_policy:
        with open(POLICY_RC, 'w') as handle:
            handle.write('#!/bin/sh\nexit 101\n')
        os.chmod(POLICY_RC, 0o755)
    try:
        result = subprocess.run(
            ['apt-get', 'install', '-y', '-q', '--no-install-recommends'] +
            missing, capture_output=True, text=True,
            env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'),
            timeout=900)
    except subprocess.TimeoutExpired:
        raise errors.RealCloudError('apt-get install did not finish in'
                                    ' 900 s')
    finally:
        if own_policy:
            os.unlink(POLICY_RC)
    if result.returncode:
        raise errors.RealCloudError(
            'apt-get install %s failed (exit %d; run apt-get update'
            ' first?):\n%s' % (' '.join(missing), result.returncode,
                               result.stderr.strip()[-1500:]))


def install_python(release_name):
    release = releases.get(release_name)
    keystone, glance = SERVICES[release_name]
    wanted = {'keystone': keystone, 'glance': glance,
              'openstack-placement': release.placement_version,
              'gunicorn': None, 'PyMySQL': None, 'libvirt-python': None}
    missing = []
    for name, version in wanted.items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have is None or (version and have != version):
            missing.append('%s==%s' % (name, version) if version else name)
    if not missing:
        _say('Python packages: all installed')
        return
    _say('pip install %s' % ' '.join(missing))
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q',
         '--disable-pip-version-check', '-c', release.constraints_path] +
        missing, capture_output=True, text=True, timeout=1200)
    if result.returncode:
        raise errors.RealCloudError(
            'pip install %s failed (exit %d):\n%s'
            % (' '.join(missing), result.returncode,
               (result.stdout + result.stderr).strip()[-1500:]))


def cmd_prepare(args):
    install_debs()
    install_python(args.release)
    deb = guest.download_kernel_deb(scenario.guest_cache_dir())
    _say('kernel package: %s' % deb)
    deb = guest.download_agent_deb(scenario.guest_cache_dir())
    _say('guest agent package: %s' % deb)


def cmd_cleanup(args):
    ended, left = processes.cleanup(args.dir)
    _say('cleanup of %s: stopped %s%s' % (
        args.dir, ', '.join(ended) or 'nothing',
        '; STILL RUNNING: %s' % left if left else ''))
    return 1 if left else 0


def cmd_timings(args):
    path = os.path.join(args.dir, 'timings.txt')
    if os.path.exists(path):
        with open(path) as handle:
            print(handle.read(), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m nova_xloud.realcloud')
    sub = parser.add_subparsers(dest='command', required=True)
    prepare = sub.add_parser('prepare')
    prepare.add_argument('release', choices=sorted(SERVICES))
    prepare.set_defaults(func=cmd_prepare)
    for name, func in (('cleanup', cmd_cleanup), ('timings', cmd_timings)):
        command = sub.add_parser(name)
        command.add_argument('dir', nargs='?', default=scenario.state_dir())
        command.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except errors.RealCloudError as exc:
        print('[realcloud] error: %s' % exc, file=sys.stderr, flush=True)
        return 1


if __name__ == '__main__':
    sys.exit(main())
