"""Say whether this Python can run the demo of a release, as JSON.

Run by ``nova-xloud demo`` with the Python it is about to use:
``python -m nova_xloud.demo.probe RELEASE`` prints
``{"nova_xloud": VERSION, "missing": [REASON, ...]}``.
"""

import importlib
import importlib.metadata
import json
import sys

from nova_xloud import releases
from nova_xloud.series import errors
from nova_xloud.series import series as series_mod
from nova_xloud.series import target as target_mod


def _series_missing(release):
    root = target_mod.installed_root()
    if root is None:
        return ['nova is not installed']
    target = target_mod.find(root)
    found = releases.for_nova_version(target.nova_version)
    if found is None or found.name != release.name:
        return ['nova %s is installed, not nova %s'
                % (target.nova_version, release.nova_version)]
    state = series_mod.status(target)
    if state['applied_by'] is None:
        return ['the %s series is not applied to %s' % (release.name, root)]
    if not state['applied']:
        return ['%s lacks patches of the %s series: %s'
                % (root, release.name, ', '.join(state['missing_patches']))]
    stamp = target.read_stamp()
    if stamp is not None and not series_mod.same_series(
            stamp, release, series_mod.load(release)):
        return ['%s carries another revision of the %s series'
                % (root, release.name)]
    changed = state['changed_since']
    if changed:
        return ['%s changed since the series was applied'
                % ', '.join(changed)]
    return []


def _imports_missing():
    """Nova's test fixtures, placement and their requirements."""
    try:
        importlib.import_module('nova_xloud.testing.base')
    except ImportError as exc:
        return ["Nova's functional test fixtures do not import (%s)" % exc]
    return []


def missing(release):
    """Why this Python cannot run the demo of ``release``; [] if it can."""
    try:
        return _series_missing(release) or _imports_missing()
    except errors.SeriesError as exc:
        return [str(exc)]


def _own_version():
    try:
        return importlib.metadata.version('nova-xloud')
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    release = releases.get(argv[0]) if argv else None
    if release is None:
        print('usage: python -m nova_xloud.demo.probe RELEASE',
              file=sys.stderr)
        return 2
    version = _own_version()
    # Nova finds our plugins through the installed entry points.
    reasons = (missing(release) if version else
               ['nova-xloud is not installed, only importable'])
    print(json.dumps({'nova_xloud': version, 'missing': reasons}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
