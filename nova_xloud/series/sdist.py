"""Fetch, unpack and build upstream Nova sdists."""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from nova_xloud.series import errors

CACHE_ENV = 'NOVA_XLOUD_CACHE'
_UNPACKED_MARK = '.nova-xloud-sdist-sha256'


def default_cache_dir():
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
        os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'nova-xloud')


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def run_checked(command, what, env=None):
    """Run ``command`` quietly; on failure raise with its last lines."""
    result = subprocess.run(command, capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        tail = '\n'.join((result.stdout + result.stderr).splitlines()[-15:])
        raise errors.SeriesError('%s failed (%s exited %d):\n%s'
                                 % (what, os.path.basename(command[0]),
                                    result.returncode, tail))
    return result


def run_pip(args, what, python=None, env=None):
    return run_checked([python or sys.executable, '-m', 'pip',
                        '--disable-pip-version-check'] + args, what, env)


def sdist_path(release, cache_dir):
    return os.path.join(cache_dir, 'sdists',
                        'nova-%s.tar.gz' % release.nova_version)


def download(release, cache_dir, report=print):
    """The path of the release's verified sdist, downloaded if needed."""
    path = sdist_path(release, cache_dir)
    if os.path.exists(path) and _sha256(path) == release.sdist_sha256:
        report('using cached %s' % path)
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    report('downloading the nova %s sdist from the package index'
           % release.nova_version)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as work:
        # pip, not a URL of our own: operators' index and proxy settings
        # in pip.conf apply.
        run_pip(['download', '--no-deps', '--no-binary', ':all:',
                 '-d', work, 'nova==%s' % release.nova_version],
                'downloading nova %s' % release.nova_version)
        found = glob.glob(os.path.join(work, 'nova-*.tar.gz'))
        if not found:
            raise errors.SeriesError('pip downloaded no nova sdist')
        digest = _sha256(found[0])
        if digest != release.sdist_sha256:
            raise errors.SeriesError(
                'the downloaded %s has sha256 %s, expected %s; refusing to'
                ' use it' % (os.path.basename(found[0]), digest,
                             release.sdist_sha256))
        os.replace(found[0], path)
    report('verified sha256 %s' % release.sdist_sha256)
    return path


def _inside(root, path):
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def _refusal(archive, member, why):
    return errors.SeriesError('%s: refusing to unpack %s: %s'
                              % (archive, member.name, why))


def _checked_member(archive, member, dest):
    """``member`` made harmless, as tarfile's 'data' filter does, or raise.

    For the Pythons without extraction filters (before 3.9.17, 3.10.12,
    3.11.4: Debian 12's 3.11.2 among them).
    """
    name = member.name
    if os.path.isabs(name) or '..' in name.replace('\\', '/').split('/'):
        raise _refusal(archive, member, 'an absolute path or ..')
    if not _inside(dest, os.path.join(dest, name)):
        raise _refusal(archive, member, 'it points out of the tree')
    if not (member.isfile() or member.isdir() or member.issym() or
            member.islnk()):
        raise _refusal(archive, member, 'a device, fifo or other special'
                                        ' file')
    if member.issym():
        if os.path.isabs(member.linkname) or not _inside(
                dest, os.path.join(dest, os.path.dirname(name),
                                   member.linkname)):
            raise _refusal(archive, member, 'a link out of the tree')
    if member.islnk():
        if os.path.isabs(member.linkname) or not _inside(
                dest, os.path.join(dest, member.linkname)):
            raise _refusal(archive, member, 'a link out of the tree')
    member.uid, member.gid, member.uname, member.gname = (
        os.getuid(), os.getgid(), '', '')
    # No setuid, setgid, sticky or group/other write bits.
    member.mode = (member.mode & 0o755) | (0o600 if member.isfile() else 0)
    return member


def extract_all(tar, dest, archive):
    """Extract ``tar`` into ``dest``, refusing what may leave the tree."""
    if hasattr(tarfile, 'data_filter'):
        tar.extractall(dest, filter='data')
        return
    dest = os.path.realpath(dest)
    members = [_checked_member(archive, member, dest)
               for member in tar.getmembers()]
    tar.extractall(dest, members=members)


def _unpack_to(archive, dest_parent, top):
    """Unpack ``archive`` so its tree is ``dest_parent/top``."""
    os.makedirs(dest_parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_parent) as work:
        with tarfile.open(archive) as tar:
            extract_all(tar, work, archive)
        unpacked = os.path.join(work, top)
        if not os.path.isdir(unpacked):
            raise errors.SeriesError('%s has no %s/ at its top'
                                     % (archive, top))
        final = os.path.join(dest_parent, top)
        os.replace(unpacked, final)
    return final


def unpack(release, archive, dest_parent, report=print):
    """The unpacked tree of the sdist in ``dest_parent``; reused if there."""
    top = 'nova-%s' % release.nova_version
    tree = os.path.join(dest_parent, top)
    mark = os.path.join(tree, _UNPACKED_MARK)
    if os.path.isdir(tree):
        if os.path.exists(mark):
            report('using the unpacked tree %s' % tree)
            return tree
        raise errors.SeriesError(
            '%s exists but was not unpacked by nova-xloud; remove it or'
            ' choose another --dest' % tree)
    report('unpacking into %s' % tree)
    _unpack_to(archive, dest_parent, top)
    with open(mark, 'w') as handle:
        handle.write(release.sdist_sha256 + '\n')
    return tree


def unpack_fresh(release, archive, dest_parent):
    """Unpack into a new directory with no marker (a build or worktree)."""
    return _unpack_to(archive, dest_parent, 'nova-%s' % release.nova_version)


def build_wheel(release, tree, out_dir, report=print):
    """Build a wheel of the patched tree, versioned with our local label."""
    os.makedirs(out_dir, exist_ok=True)
    report('building the wheel of nova %s' % release.local_version)
    run_pip(['wheel', '--no-deps', '-w', out_dir, tree],
            'building the wheel',
            env=dict(os.environ, PBR_VERSION=release.local_version))
    wheel = os.path.join(out_dir, 'nova-%s-py3-none-any.whl'
                         % release.local_version)
    if not os.path.exists(wheel):
        raise errors.SeriesError('pip built no %s' % wheel)
    return wheel


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def install(release, archive, requirements=(), extra=()):
    """pip install ``archive`` with the release's upper-constraints."""
    args = ['install', '-c', release.constraints_path, archive]
    for path in requirements:
        args += ['-r', path]
    run_pip(args + list(extra), 'installing %s' % os.path.basename(archive))


def reinstall(archive):
    """pip install ``archive`` again, alone, over what is installed."""
    run_pip(['install', '--force-reinstall', '--no-deps', archive],
            'reinstalling %s' % os.path.basename(archive))
