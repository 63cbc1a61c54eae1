"""The series in the form Kolla's ``patches_path`` takes (2025.1 and later).

Kolla copies ``<patches_path>/<image>/`` to ``/patches`` in the image and,
from ``/``, runs ``patch -p0 --fuzz=0`` for each file its ``series``
lists. The paths in each patch are therefore the paths of the files in the
image, relative to ``/``: ``var/lib/kolla/venv/lib/pythonX.Y/site-packages/
nova/...``. Git's extended header lines are left out: plain unified diffs
are what ``patch -p0`` reads without surprises.
"""

import os
import re

from nova_xloud.series import errors

IMAGE = 'nova-base'
DEFAULT_VENV = '/var/lib/kolla/venv'
NAME_PREFIX = 'nova-xloud-'
_GIT_ONLY = re.compile(r'^(diff --git |new file mode |deleted file mode |'
                       r'index [0-9a-f]+\.\.|old mode |new mode )')


def site_packages(venv, python):
    if not re.fullmatch(r'3\.\d+', python):
        raise errors.UsageError('--python takes a version like 3.12, not %r'
                                % python)
    if not venv.startswith('/'):
        raise errors.UsageError('--venv takes an absolute path, not %r'
                                % venv)
    return '%s/lib/python%s/site-packages' % (venv.strip('/'), python)


def _rewrite_path(line, prefix):
    marker, path = line[:4], line[4:].rstrip('\n')
    if path == '/dev/null':
        return line
    return '%s%s/%s\n' % (marker, prefix, path[2:])


def to_kolla(text, prefix):
    """A series patch rewritten for ``patch -p0`` from ``/``."""
    out = []
    in_diff = False
    for line in text.splitlines(keepends=True):
        if line.startswith('diff --git '):
            in_diff = True
        if in_diff and not line.startswith(('+', '-', ' ', '@', '\\')):
            if _GIT_ONLY.match(line):
                continue
        if in_diff and line.startswith(('--- ', '+++ ')) and (
                line[4:6] in ('a/', 'b/') or line[4:].startswith('/dev')):
            line = _rewrite_path(line, prefix)
        out.append(line)
    return ''.join(out)


def export(release, patches, dest, python, venv=DEFAULT_VENV,
           report=print):
    """Write ``dest/nova-base/series`` and its patches; return the dir."""
    prefix = site_packages(venv, python)
    if not patches:
        raise errors.SeriesError('the %s series has no patches'
                                 % release.name)
    directory = os.path.join(dest, IMAGE)
    os.makedirs(directory, exist_ok=True)
    names = []
    for patch in patches:
        name = NAME_PREFIX + patch.name
        with open(os.path.join(directory, name), 'w', encoding='utf-8',
                  newline='\n') as handle:
            handle.write(to_kolla(patch.data.decode('utf-8'), prefix))
        names.append(name)
    with open(os.path.join(directory, 'series'), 'w', encoding='utf-8',
              newline='\n') as handle:
        handle.write('# nova-xloud %s series for nova %s, Kolla image %s\n'
                     '# files under /%s\n'
                     % (release.name, release.nova_version, IMAGE, prefix))
        handle.write(''.join('%s\n' % name for name in names))
    report('wrote %d patches and series to %s' % (len(names), directory))
    return directory
