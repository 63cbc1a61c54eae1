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

"""A tiny guest: Debian's kernel and a busybox initramfs that reports.

The guest's /init prints, every half second on the serial console, what
the guest itself sees::

    XLOUD boot=<boot id> seq=<n> cpus=<online vCPUs> memtotal_kb=<..> \
memfree_kb=<..>

Two variants. The plain guest's /init onlines every vCPU that appears
(the kernel leaves hot-plugged vCPUs offline). The agent guest leaves
that to Debian's QEMU guest agent, which its /init starts on the virtio
port ``org.qemu.guest_agent.0`` (Nova adds that channel for an image with
``hw_qemu_guest_agent=yes``); through the agent's ``guest-exec`` a test
can also make the guest hold memory in a tmpfs and release it.

Nothing is downloaded but Debian's packages, through apt.
"""

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tarfile

from nova_xloud.realcloud import errors

KERNEL_META_PACKAGE = 'linux-image-amd64'
AGENT_PACKAGE = 'qemu-guest-agent'
# Loaded in this order: the balloon needs virtio over PCI.
MODULES = ('virtio_ring', 'virtio', 'virtio_pci_modern_dev',
           'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_balloon')
# The agent's port; virtio_console needs only virtio and virtio_ring.
AGENT_MODULES = MODULES + ('virtio_console',)
AGENT_CHANNEL = 'org.qemu.guest_agent.0'
# What an image needs for Nova to give its servers the agent channel.
AGENT_IMAGE_PROPERTIES = {'hw_qemu_guest_agent': 'yes'}
# The agent guest's tmpfs where held memory lives (see hold_memory).
HOLD_DIR = '/hold'
BUSYBOX = '/bin/busybox'

INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec >/dev/ttyS0 2>&1
for module in %(modules)s; do insmod /modules/$module.ko; done
%(start_agent)s
read boot < /proc/sys/kernel/random/boot_id
seq=0
while true; do
    cpus=0
    for cpu in /sys/devices/system/cpu/cpu[0-9]*; do
        state=1
        if [ -f $cpu/online ]; then
            read state < $cpu/online
%(online_cpu)s
        fi
        cpus=$((cpus + state))
    done
    while read key value unit; do
        case $key in
            MemTotal:) total=$value ;;
            MemFree:) free=$value ;;
        esac
    done < /proc/meminfo
    echo "XLOUD boot=$boot seq=$seq cpus=$cpus memtotal_kb=$total\
 memfree_kb=$free"
    seq=$((seq + 1))
    sleep 0.5
done
'''

# The plain guest brings each hot-plugged vCPU online itself.
ONLINE_CPU = '''            if [ "$state" = 0 ]; then
                echo 1 > $cpu/online
                read state < $cpu/online
            fi'''

# The agent guest waits for the agent's port (the host announces ports
# after the driver loads), then keeps qemu-ga running on it; qemu-ga's
# own log goes to a file, never between the reports.
START_AGENT = r'''mkdir -p /run %(hold)s
mount -t tmpfs -o size=100%% hold %(hold)s
(
    while true; do
        for port in /sys/class/virtio-ports/*; do
            read name < $port/name 2>/dev/null
            if [ "$name" = %(channel)s ]; then
                echo "XLOUD agent port=/dev/${port##*/}"
                while true; do
                    qemu-ga -m virtio-serial -p /dev/${port##*/} -t /run \
 -f /run/qemu-ga.pid -l /run/qemu-ga.log
                    sleep 1
                done
            fi
        done
        sleep 0.2
    done
) &'''

REPORT = re.compile(r'XLOUD boot=(?P<boot>\S+) seq=(?P<seq>\d+)'
                    r' cpus=(?P<cpus>\d+) memtotal_kb=(?P<memtotal_kb>\d+)'
                    r' memfree_kb=(?P<memfree_kb>\d+)')


def parse_reports(console):
    """The guest's reports in a console log, oldest first, as dicts."""
    reports = []
    for match in REPORT.finditer(console or ''):
        report = match.groupdict()
        for key in ('seq', 'cpus', 'memtotal_kb', 'memfree_kb'):
            report[key] = int(report[key])
        reports.append(report)
    return reports


def _run(command, what):
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=600)
    except FileNotFoundError:
        raise errors.RealCloudError('%s: %s is not installed'
                                    % (what, command[0]))
    except subprocess.TimeoutExpired:
        raise errors.RealCloudError('%s: timed out after 600 s' % what)
    if result.returncode:
        tail = '\n'.join((result.stdout + result.stderr).splitlines()[-10:])
        raise errors.RealCloudError('%s failed (exit %d):\n%s'
                                    % (what, result.returncode, tail))
    return result.stdout


def kernel_package():
    """The versioned kernel package that Debian's meta package names."""
    out = _run(['apt-cache', 'depends', KERNEL_META_PACKAGE],
               'apt-cache depends %s' % KERNEL_META_PACKAGE)
    for line in out.splitlines():
        name = line.split(':', 1)[-1].strip()
        if line.strip().startswith('Depends:') and name.startswith(
                'linux-image-'):
            return name
    raise errors.RealCloudError(
        'apt-cache knows no kernel behind %s; run apt-get update'
        % KERNEL_META_PACKAGE)


def init_script(agent=False):
    """The guest's /init: the plain one, or the one that runs the agent."""
    if agent:
        return INIT % {'modules': ' '.join(AGENT_MODULES),
                       'start_agent': START_AGENT % {
                           'hold': HOLD_DIR, 'channel': AGENT_CHANNEL},
                       'online_cpu': ''}
    return INIT % {'modules': ' '.join(MODULES), 'start_agent': '',
                   'online_cpu': ONLINE_CPU}


def download_kernel_deb(cache_dir):
    """The kernel .deb in ``cache_dir``, downloaded by apt if missing."""
    return download_deb(cache_dir, kernel_package())


def download_agent_deb(cache_dir):
    """Debian's qemu-guest-agent .deb in ``cache_dir`` (apt if missing)."""
    return download_deb(cache_dir, AGENT_PACKAGE)


def download_deb(cache_dir, package):
    """``package``'s .deb in ``cache_dir``, downloaded by apt if missing."""
    os.makedirs(cache_dir, exist_ok=True)
    found = [name for name in os.listdir(cache_dir)
             if name.startswith(package + '_') and name.endswith('.deb')]
    if found:
        return os.path.join(cache_dir, found[0])
    partial = os.path.join(cache_dir, 'partial')
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    # apt's sandbox user cannot write into root's cache: download there
    # as it allows (the warning is harmless), then move.
    subprocess.run(['chmod', '0777', partial], check=False)
    try:
        result = subprocess.run(['apt-get', 'download', package],
                                cwd=partial, capture_output=True,
                                text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise errors.RealCloudError(
            'downloading the package %s timed out after 600 s' % package)
    debs = [name for name in os.listdir(partial) if name.endswith('.deb')]
    if result.returncode or not debs:
        stderr = (result.stderr or '').strip()[-600:]
        raise errors.RealCloudError(
            'could not download the package %s with apt-get'
            ' download (exit %d): %s' % (package, result.returncode, stderr))
    final = os.path.join(cache_dir, debs[0])
    os.replace(os.path.join(partial, debs[0]), final)
    shutil.rmtree(partial, ignore_errors=True)
    return final


def _deb_tarfile(deb):
    """The files of a .deb as an open tar archive (no install)."""
    tar_bytes = subprocess.run(['dpkg-deb', '--fsys-tarfile', deb],
                               capture_output=True, check=True).stdout
    return tarfile.open(fileobj=io.BytesIO(tar_bytes))


def _extract_kernel_files(deb, dest, modules=MODULES):
    """vmlinuz and the modules we load, from the .deb (no install)."""
    wanted = {'%s.ko' % name: None for name in modules}
    kernel = None
    with _deb_tarfile(deb) as tar:
        for member in tar.getmembers():
            base = os.path.basename(member.name)
            if member.isfile() and base.startswith('vmlinuz-'):
                kernel = member
            elif member.isfile() and base in wanted and wanted[base] is None:
                wanted[base] = member
        missing = [name for name, member in wanted.items() if member is None]
        if kernel is None or missing:
            raise errors.RealCloudError(
                '%s lacks %s' % (deb, ', '.join(missing or ['vmlinuz'])))
        os.makedirs(os.path.join(dest, 'modules'), exist_ok=True)
        with open(os.path.join(dest, 'vmlinuz'), 'wb') as out:
            out.write(tar.extractfile(kernel).read())
        for base, member in wanted.items():
            with open(os.path.join(dest, 'modules', base), 'wb') as out:
                out.write(tar.extractfile(member).read())


def _extract_agent(deb, dest):
    """``dest``/qemu-ga from the agent's .deb (no install); its path."""
    with _deb_tarfile(deb) as tar:
        try:
            member = tar.getmember('./usr/sbin/qemu-ga')
        except KeyError:
            raise errors.RealCloudError('%s lacks usr/sbin/qemu-ga' % deb)
        path = os.path.join(dest, 'qemu-ga')
        with open(path, 'wb') as out:
            out.write(tar.extractfile(member).read())
    os.chmod(path, 0o755)
    return path


def parse_ldd(output):
    """The absolute paths ldd names: libraries and the dynamic loader.

    The kernel's vDSO has no file and is left out; a library ldd could not
    find is an error, as the guest could not run the binary.
    """
    paths = []
    for line in output.splitlines():
        line = line.strip()
        if '=> not found' in line:
            raise errors.RealCloudError(
                'ldd finds no %s on this host: install the Debian package'
                ' that ships it' % line.split()[0])
        found = re.match(r'(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$', line)
        if found:
            paths.append(found.group(1))
    return paths


def shared_libraries(binary):
    """Every file ``binary`` needs to run, as host paths (through ldd)."""
    return parse_ldd(_run(['ldd', binary], 'ldd %s' % binary))


def agent_files(qemu_ga):
    """(guest path, host path) of qemu-ga and each library it needs."""
    return [('bin/qemu-ga', qemu_ga)] + [
        (path.lstrip('/'), path) for path in shared_libraries(qemu_ga)]


def _cpio_newc(entries):
    """A newc cpio archive of (path, mode, data-or-None) entries."""
    out = io.BytesIO()
    ino = 1
    for path, mode, data in list(entries) + [('TRAILER!!!', 0, b'')]:
        name = path.encode() + b'\0'
        data = data or b''
        header = '070701' + ''.join('%08X' % value for value in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0))
        out.write(header.encode() + name)
        out.write(b'\0' * ((4 - (110 + len(name)) % 4) % 4))
        out.write(data)
        out.write(b'\0' * ((4 - len(data) % 4) % 4))
        ino += 1
    return out.getvalue()


def _parent_dirs(paths):
    """Every folder above ``paths`` (relative), parents first."""
    dirs = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    return sorted(dirs, key=lambda name: (name.count('/'), name))


def _initramfs(modules_dir, agent=None):
    """The gzipped initramfs; with ``agent`` (from agent_files), qemu-ga.

    Without ``agent`` it is the plain guest, whose /init onlines vCPUs.
    """
    modules = AGENT_MODULES if agent else MODULES
    with open(BUSYBOX, 'rb') as handle:
        busybox = handle.read()
    entries = [('bin', 0o40755, None), ('dev', 0o40755, None),
               ('proc', 0o40755, None), ('sys', 0o40755, None),
               ('modules', 0o40755, None),
               ('bin/busybox', 0o100755, busybox),
               ('init', 0o100755, init_script(bool(agent)).encode())]
    for name in modules:
        with open(os.path.join(modules_dir, '%s.ko' % name), 'rb') as handle:
            entries.append(('modules/%s.ko' % name, 0o100644,
                            handle.read()))
    agent = agent or []
    guest_paths = [guest_path for guest_path, _host in agent]
    entries.extend((folder, 0o40755, None)
                   for folder in _parent_dirs(guest_paths)
                   if folder != 'bin')
    for guest_path, host_path in agent:
        with open(host_path, 'rb') as handle:
            entries.append((guest_path, 0o100755, handle.read()))
    return gzip.compress(_cpio_newc(entries), compresslevel=6)


def build(cache_dir, dest, agent=False):
    """Write ``dest``/vmlinuz and ``dest``/initramfs; return both paths.

    With ``agent`` the guest runs Debian's qemu-guest-agent (give its image
    AGENT_IMAGE_PROPERTIES) and leaves onlining vCPUs to it.
    """
    if not os.path.exists(BUSYBOX):
        raise errors.RealCloudError(
            '%s is missing: apt-get install busybox-static' % BUSYBOX)
    deb = download_kernel_deb(cache_dir)
    os.makedirs(dest, exist_ok=True)
    _extract_kernel_files(deb, dest, AGENT_MODULES if agent else MODULES)
    files = None
    if agent:
        files = agent_files(_extract_agent(download_agent_deb(cache_dir),
                                           dest))
    initramfs = os.path.join(dest, 'initramfs')
    with open(initramfs, 'wb') as handle:
        handle.write(_initramfs(os.path.join(dest, 'modules'), files))
    return os.path.join(dest, 'vmlinuz'), initramfs


# -- requests to the agent guest's qemu-ga, as qemuAgentCommand takes them --
def agent_exec(command):
    """A guest-exec request that runs a busybox shell ``command``."""
    return json.dumps({'execute': 'guest-exec', 'arguments': {
        'path': '/bin/sh', 'arg': ['-c', command],
        'capture-output': True}})


def agent_exec_status(pid):
    """The guest-exec-status request for a guest-exec's ``pid``."""
    return json.dumps({'execute': 'guest-exec-status',
                       'arguments': {'pid': pid}})


def hold_memory(mib):
    """A guest-exec request: the guest holds ``mib`` MiB more in a tmpfs.

    Pages of a tmpfs file cannot be reclaimed without swap (the guest has
    none), so the guest cannot give them to the balloon.
    """
    return agent_exec('dd if=/dev/zero of=%s/held.$$ bs=1M count=%d'
                      % (HOLD_DIR, mib))


def release_memory():
    """A guest-exec request: the guest frees all it holds (hold_memory)."""
    return agent_exec('rm -f %s/held.*' % HOLD_DIR)
