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

The guest's /init onlines every vCPU that appears (the kernel leaves
hot-plugged vCPUs offline) and prints, every half second on the serial
console, what the guest itself sees::

    XLOUD boot=<boot id> seq=<n> cpus=<online vCPUs> memtotal_kb=<..> \
memfree_kb=<..>

Nothing is downloaded but Debian's kernel package, through apt.
"""

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile

from nova_xloud.realcloud import errors

KERNEL_META_PACKAGE = 'linux-image-amd64'
# Loaded in this order: the balloon needs virtio over PCI.
MODULES = ('virtio_ring', 'virtio', 'virtio_pci_modern_dev',
           'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_balloon')
BUSYBOX = '/bin/busybox'

INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec >/dev/ttyS0 2>&1
for module in %(modules)s; do insmod /modules/$module.ko; done
read boot < /proc/sys/kernel/random/boot_id
seq=0
while true; do
    cpus=0
    for cpu in /sys/devices/system/cpu/cpu[0-9]*; do
        state=1
        if [ -f $cpu/online ]; then
            read state < $cpu/online
            if [ "$state" = 0 ]; then
                echo 1 > $cpu/online
                read state < $cpu/online
            fi
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


def download_kernel_deb(cache_dir):
    """The kernel .deb in ``cache_dir``, downloaded by apt if missing."""
    package = kernel_package()
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
            'downloading the kernel package %s timed out after 600 s'
            % package)
    debs = [name for name in os.listdir(partial) if name.endswith('.deb')]
    if result.returncode or not debs:
        stderr = (result.stderr or '').strip()[-600:]
        raise errors.RealCloudError(
            'could not download the kernel package %s with apt-get'
            ' download (exit %d): %s' % (package, result.returncode, stderr))
    final = os.path.join(cache_dir, debs[0])
    os.replace(os.path.join(partial, debs[0]), final)
    shutil.rmtree(partial, ignore_errors=True)
    return final


def _extract_kernel_files(deb, dest):
    """vmlinuz and the modules we load, from the .deb (no install)."""
    tar_bytes = subprocess.run(['dpkg-deb', '--fsys-tarfile', deb],
                               capture_output=True, check=True).stdout
    wanted = {'%s.ko' % name: None for name in MODULES}
    kernel = None
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
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


def _initramfs(modules_dir):
    with open(BUSYBOX, 'rb') as handle:
        busybox = handle.read()
    entries = [('bin', 0o40755, None), ('dev', 0o40755, None),
               ('proc', 0o40755, None), ('sys', 0o40755, None),
               ('modules', 0o40755, None),
               ('bin/busybox', 0o100755, busybox),
               ('init', 0o100755,
                (INIT % {'modules': ' '.join(MODULES)}).encode())]
    for name in MODULES:
        with open(os.path.join(modules_dir, '%s.ko' % name), 'rb') as handle:
            entries.append(('modules/%s.ko' % name, 0o100644,
                            handle.read()))
    return gzip.compress(_cpio_newc(entries), compresslevel=6)


def build(cache_dir, dest):
    """Write ``dest``/vmlinuz and ``dest``/initramfs; return both paths."""
    if not os.path.exists(BUSYBOX):
        raise errors.RealCloudError(
            '%s is missing: apt-get install busybox-static' % BUSYBOX)
    deb = download_kernel_deb(cache_dir)
    os.makedirs(dest, exist_ok=True)
    _extract_kernel_files(deb, dest)
    initramfs = os.path.join(dest, 'initramfs')
    with open(initramfs, 'wb') as handle:
        handle.write(_initramfs(os.path.join(dest, 'modules')))
    return os.path.join(dest, 'vmlinuz'), initramfs
