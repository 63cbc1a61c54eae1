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

"""Start daemons in their own sessions and stop them by PID.

Every process started here gets ``NOVA_XLOUD_REALCLOUD=<state dir>`` in
its environment and its PID in ``<state dir>/pids``. ``cleanup`` ends
them by process group, then anything else that carries the mark or names
the state directory on its command line or in its environment (QEMU and
virtlogd, which libvirtd starts in sessions of their own), so nothing
outlives a run, also when a step failed.

libvirtd's configuration home is ``short_dir``, outside the state
directory: libvirt binds the sockets of each domain there (QEMU's monitor,
the guest agent's channel), and a UNIX socket path has at most 107 bytes.
``cleanup`` removes it too, and every host folder ``make_host_dir``
created.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import time

MARK = 'NOVA_XLOUD_REALCLOUD'
HOST_DIRS = 'host-dirs'


def short_dir(state_dir):
    """A short folder of the cloud in ``state_dir``, named by its hash.

    ``/dev/shm/xl-<8 hex>`` (or under /tmp): with it as XDG_CONFIG_HOME,
    the guest agent's socket path of a Nova domain, ``<dir>/libvirt/qemu/
    channel/target/domain-<id>-instance-<8 hex>/org.qemu.guest_agent.0``,
    stays under the 107 bytes a UNIX socket path may have.
    """
    parent = '/dev/shm' if os.path.isdir('/dev/shm') else '/tmp'
    digest = hashlib.sha1(os.path.abspath(state_dir).encode()).hexdigest()
    return os.path.join(parent, 'xl-%s' % digest[:8])


def make_host_dir(state_dir, path, uid, gid):
    """Create ``path`` (and the folders above it) for ``uid``; if missing.

    Each folder created is listed in ``<state dir>/host-dirs``, for
    ``cleanup`` to remove; a folder that was there stays.
    """
    missing = []
    folder = path
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):
        os.mkdir(folder, 0o755)
        with open(os.path.join(state_dir, HOST_DIRS), 'a') as handle:
            handle.write(folder + '\n')
    if missing:
        os.chown(path, uid, gid)


def _remove_host_dirs(state_dir):
    listed = os.path.join(state_dir, HOST_DIRS)
    try:
        with open(listed) as handle:
            folders = handle.read().split()
    except OSError:
        return
    # The first created is the outermost: removing it removes the rest.
    for folder in folders[:1]:
        shutil.rmtree(folder, ignore_errors=True)
    os.unlink(listed)


def _pid_dir(state_dir):
    return os.path.join(state_dir, 'pids')


def log_path(state_dir, name):
    return os.path.join(state_dir, 'logs', '%s.log' % name)


def start(state_dir, name, argv, env=None, cwd=None):
    """Start ``argv`` in a new session, logging to logs/NAME.log."""
    os.makedirs(_pid_dir(state_dir), exist_ok=True)
    os.makedirs(os.path.dirname(log_path(state_dir, name)), exist_ok=True)
    environ = dict(env if env is not None else os.environ)
    environ[MARK] = state_dir
    with open(log_path(state_dir, name), 'ab') as log:
        # A session of its own: a timeout or a Ctrl-C around the test
        # must not kill the daemon half-way, cleanup does it by PID.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=environ,
                                cwd=cwd or state_dir,
                                start_new_session=True)
    with open(os.path.join(_pid_dir(state_dir), '%s.pid' % name),
              'w') as handle:
        handle.write('%d\n' % proc.pid)
    return proc


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_pid(pid, grace=10.0):
    """SIGTERM the process group of ``pid``, SIGKILL it after ``grace``."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            break
        time.sleep(0.1)
    # The group too: workers may outlive their master.
    _signal_group(pid, signal.SIGKILL)
    _reap(pid)


def stop(state_dir, name, grace=10.0):
    path = os.path.join(_pid_dir(state_dir), '%s.pid' % name)
    try:
        with open(path) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return
    stop_pid(pid, grace)
    os.unlink(path)


def marked(state_dir):
    """PIDs of processes that carry our mark or name ``state_dir``."""
    found = []
    me = os.getpid()
    needle = ('%s=%s' % (MARK, state_dir)).encode()
    paths = [path.encode() + b'/'
             for path in (state_dir, short_dir(state_dir))]
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open('/proc/%s/environ' % entry, 'rb') as handle:
                environ = handle.read().split(b'\0')
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                cmdline = handle.read()
        except OSError:
            continue
        # virtlogd, which libvirtd starts with a cleaned environment, is
        # known by its HOME (or another variable) in the state directory;
        # QEMU by the disks and sockets its command line names.
        if needle in environ or any(
                path in cmdline or any(b'=' + path in variable
                                       for variable in environ)
                for path in paths):
            found.append(int(entry))
    return found


def cleanup(state_dir, grace=5.0):
    """End every process of the cloud in ``state_dir``.

    SIGTERM to every process group at once, SIGKILL to what is left after
    ``grace`` seconds, then SIGKILL to anything still carrying the mark;
    then remove ``short_dir`` if nothing is left. Returns the names
    stopped and the PIDs that would not go.
    """
    pid_dir = _pid_dir(state_dir)
    pids = {}
    for name in (sorted(os.listdir(pid_dir)) if os.path.isdir(pid_dir)
                 else []):
        try:
            with open(os.path.join(pid_dir, name)) as handle:
                pids[name[:-len('.pid')]] = int(handle.read().strip())
        except (OSError, ValueError):
            continue
    for pid in pids.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for pid in pids.values():
            _reap(pid)
        if not any(_alive(pid) for pid in pids.values()):
            break
        time.sleep(0.1)
    for name, pid in pids.items():
        _signal_group(pid, signal.SIGKILL)
        _reap(pid)
        os.unlink(os.path.join(pid_dir, '%s.pid' % name))
    for attempt in range(5):
        left = marked(state_dir)
        if not left:
            break
        for pid in left:
            _signal_group(pid, signal.SIGKILL)
            _reap(pid)
        time.sleep(0.3)
    left = marked(state_dir)
    if not left:
        shutil.rmtree(short_dir(state_dir), ignore_errors=True)
        _remove_host_dirs(state_dir)
    return sorted(pids), left
