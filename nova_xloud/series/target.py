"""Find the Nova a target holds: a source tree or an installed package."""

import dataclasses
import email.parser
import glob
import hashlib
import json
import os
import subprocess
import sys

from nova_xloud.series import errors

STAMP_NAME = '.nova-xloud-series.json'

# Run in a fresh interpreter: the caller may have just (re)installed Nova,
# or may ask about another environment's Python.
_ROOT_PROBE = ('import importlib.util, os; '
               "spec = importlib.util.find_spec('nova'); "
               "print(os.path.dirname(os.path.dirname(spec.origin)) "
               "if spec and spec.origin else '')")


def installed_root(python=None):
    """The directory holding the nova package ``python`` imports, or None."""
    result = subprocess.run([python or sys.executable, '-c', _ROOT_PROBE],
                            capture_output=True, text=True)
    return result.stdout.strip() or None


@dataclasses.dataclass
class Target(object):
    root: str
    nova_version: str
    # Where the version was read: shown to the operator.
    version_source: str

    @property
    def stamp_path(self):
        return os.path.join(self.root, 'nova', STAMP_NAME)

    def read_stamp(self):
        if not os.path.exists(self.stamp_path):
            return None
        try:
            with open(self.stamp_path, encoding='utf-8') as handle:
                return json.load(handle)
        except ValueError as exc:
            raise errors.SeriesError(
                '%s is not a valid nova-xloud stamp (%s); restore it or'
                ' reinstall Nova' % (self.stamp_path, exc))

    def drop_stamp(self):
        if os.path.exists(self.stamp_path):
            os.unlink(self.stamp_path)

    def stamp_bytes(self, stamp):
        return (json.dumps(stamp, indent=2, sort_keys=True) + '\n').encode()

    def file_sha256(self, path):
        full = os.path.join(self.root, *path.split('/'))
        if not os.path.exists(full):
            return None
        with open(full, 'rb') as handle:
            return hashlib.sha256(handle.read()).hexdigest()


def _metadata_version(path):
    with open(path, encoding='utf-8', errors='replace') as handle:
        headers = email.parser.Parser().parse(handle, headersonly=True)
    if (headers.get('Name') or '').lower() != 'nova':
        return None
    return headers.get('Version')


def _candidate_metadata(root):
    yield os.path.join(root, 'PKG-INFO')
    for pattern in ('nova-*.dist-info/METADATA', 'nova-*.egg-info/PKG-INFO',
                    'nova.egg-info/PKG-INFO', 'nova-*.egg-info'):
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            yield path


def _git_version(root):
    if not os.path.exists(os.path.join(root, '.git')):
        return None
    try:
        described = subprocess.run(
            ['git', '-C', root, 'describe', '--tags', '--abbrev=0'],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return described or None


def find(root):
    """Describe the Nova in ``root`` or raise a UsageError/SeriesError."""
    if not os.path.isdir(root):
        raise errors.UsageError('target %s is not a directory' % root)
    if not os.path.isfile(os.path.join(root, 'nova', '__init__.py')):
        raise errors.UsageError(
            'target %s holds no nova/ package: give a Nova source tree or'
            ' the site-packages directory Nova is installed in' % root)
    for path in _candidate_metadata(root):
        if os.path.isfile(path):
            version = _metadata_version(path)
            if version:
                return Target(os.path.abspath(root), version,
                              os.path.relpath(path, root))
    version = _git_version(root)
    if version:
        return Target(os.path.abspath(root), version, 'git tag')
    raise errors.SeriesError(
        'cannot tell which Nova version %s holds: no PKG-INFO, no'
        ' nova-*.dist-info and no git tag' % root)
