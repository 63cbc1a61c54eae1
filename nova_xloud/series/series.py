"""A release's patch series and the operations on a target."""

import dataclasses
import hashlib
import os
import sys
import sysconfig

from nova_xloud import releases
from nova_xloud.series import engine
from nova_xloud.series import errors
from nova_xloud.series import patchfile
from nova_xloud.series import target as target_mod

PATCHES_ENV = 'NOVA_XLOUD_PATCHES'


def default_patches_dir():
    """Where the series live: $NOVA_XLOUD_PATCHES, a checkout, or data."""
    if os.environ.get(PATCHES_ENV):
        return os.environ[PATCHES_ENV]
    checkout = os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), 'patches')
    if os.path.isdir(checkout):
        return checkout
    for prefix in (sysconfig.get_path('data'), sys.prefix):
        installed = os.path.join(prefix, 'share', 'nova-xloud', 'patches')
        if os.path.isdir(installed):
            return installed
    return checkout


@dataclasses.dataclass
class PatchFile(object):
    name: str
    data: bytes

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()

    def parse(self):
        return patchfile.parse(self.data, self.name)


def read_series_names(series_path):
    """Patch names of a quilt ``series`` file, in order."""
    names = []
    with open(series_path, encoding='utf-8') as handle:
        for line in handle:
            entry = line.split('#', 1)[0].split()
            if entry:
                names.append(entry[0])
    return names


def load(release, patches_dir=None):
    """The patches of ``release`` as a list of PatchFile, in order."""
    directory = os.path.join(patches_dir or default_patches_dir(),
                             release.name)
    series_path = os.path.join(directory, 'series')
    if not os.path.isfile(series_path):
        return []
    patches = []
    for name in read_series_names(series_path):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise errors.SeriesError('%s lists %s, which does not exist'
                                     % (series_path, name))
        with open(path, 'rb') as handle:
            patches.append(PatchFile(name, handle.read()))
    return patches


def check_release_matches(release, target):
    found = releases.for_nova_version(target.nova_version)
    if found is None or found.name != release.name:
        raise errors.SeriesError(
            '%s holds nova %s (%s), but the %s series is for nova %s;'
            ' choose the series of that release'
            % (target.root, target.nova_version,
               found.name if found else 'no supported release',
               release.name, release.nova_version))


def same_series(stamp, release, patches):
    return (stamp.get('release') == release.name and
            [(p['name'], p['sha256']) for p in stamp.get('patches', [])] ==
            [(p.name, p.sha256) for p in patches])


def _staged_hashes(tree):
    return {path: (hashlib.sha256(data).hexdigest() if data is not None
                   else None)
            for path, data in tree.changes.items()}


def apply(release, target, patches, dry_run=False, report=print):
    """Apply ``patches`` to ``target``; all of them or none."""
    check_release_matches(release, target)
    stamp = target.read_stamp()
    if stamp is not None:
        if same_series(stamp, release, patches):
            report('the %s series (%d patches) is already applied to %s'
                   % (release.name, len(patches), target.root))
            return
        raise errors.SeriesError(
            '%s already carries another series (%s, %d patches, recorded in'
            ' %s); reverse it first with: nova-xloud apply --reverse %s %s'
            % (target.root, stamp.get('release'),
               len(stamp.get('patches', [])), target.stamp_path,
               stamp.get('release'), target.root))
    if '+xloud.' in target.nova_version:
        report('%s holds nova %s, built with the series by nova-xloud build;'
               ' nothing to apply' % (target.root, target.nova_version))
        return
    if not patches:
        raise errors.SeriesError('the %s series has no patches'
                                 % release.name)
    tree = engine.PendingTree(target.root)
    for patch in patches:
        report('checking %s' % patch.name)
        engine.apply_patches(tree, [patch.parse()])
    if dry_run:
        report('dry run: all %d patches apply cleanly; %s would change: %s'
               % (len(patches), target.root, ', '.join(tree.changed_paths())))
        return
    stamp = {
        'release': release.name,
        'nova_version': target.nova_version,
        'patches': [{'name': p.name, 'sha256': p.sha256,
                     'text': p.data.decode('utf-8')} for p in patches],
        'files': _staged_hashes(tree),
    }
    tree.stage('nova/' + target_mod.STAMP_NAME, target.stamp_bytes(stamp))
    tree.write()
    report('applied the %s series (%d patches) to %s'
           % (release.name, len(patches), target.root))


def reverse(release, target, dry_run=False, report=print):
    """Take back the series recorded in the target's stamp."""
    stamp = target.read_stamp()
    if stamp is None:
        report('no nova-xloud series is applied to %s; nothing to reverse'
               % target.root)
        return
    if stamp.get('release') != release.name:
        raise errors.SeriesError(
            '%s carries the %s series, not %s' % (
                target.root, stamp.get('release'), release.name))
    for path in _changed_since(target, stamp):
        report('note: %s changed since the series was applied; the reverse'
               ' keeps those changes where they do not touch its hunks'
               % path)
    # The stamp keeps the text that was applied, so a target can be
    # restored even after nova-xloud itself was upgraded.
    recorded = [PatchFile(p['name'], p['text'].encode('utf-8'))
                for p in stamp['patches']]
    tree = engine.PendingTree(target.root)
    for patch in reversed(recorded):
        report('checking the reverse of %s' % patch.name)
        engine.apply_patches(tree, [patch.parse().reversed()])
    if dry_run:
        report('dry run: the %s series reverses cleanly; %s would change: %s'
               % (release.name, target.root,
                  ', '.join(tree.changed_paths())))
        return
    tree.stage('nova/' + target_mod.STAMP_NAME, None)
    tree.write()
    report('reversed the %s series (%d patches) on %s'
           % (release.name, len(recorded), target.root))


def _present(tree, patch):
    """Whether the code ``patch`` adds is in ``tree``: it reverses cleanly.

    The reverse is staged on ``tree`` so that the patches before it are
    checked against the files as they were before it.
    """
    staged = {}
    try:
        for file_patch in patch.files:
            current = (staged[file_patch.path] if file_patch.path in staged
                       else tree.read(file_patch.path))
            staged[file_patch.path] = engine.apply_file(patch, file_patch,
                                                        current)
    except errors.ConflictError:
        return False
    for path, data in staged.items():
        tree.stage(path, data)
    return True


def present_patches(target, patches):
    """{name: True if the patch's code is in ``target``} for ``patches``."""
    tree = engine.PendingTree(target.root)
    found = {}
    for patch in reversed(patches):
        found[patch.name] = _present(tree, patch.parse().reversed())
    return {patch.name: found[patch.name] for patch in patches}


def _applied_by(stamp, target):
    if stamp is not None:
        return 'apply'
    if '+xloud.' in target.nova_version:
        return 'build'
    return 'patch'


def status(target, patches=None):
    """What the operator needs to know about a target, as a dict.

    Each patch is looked for in the files themselves: the text the stamp
    recorded when ``nova-xloud apply`` put the series there, otherwise
    ``patches`` (by default the series of the target's release), as a
    wheel of ``nova-xloud build`` or Kolla's ``patch -p0`` carry it.
    """
    found = releases.for_nova_version(target.nova_version)
    stamp = target.read_stamp()
    if stamp is not None:
        patches = [PatchFile(p['name'], p['text'].encode('utf-8'))
                   for p in stamp['patches']]
    elif patches is None:
        patches = load(found) if found else []
    present = present_patches(target, patches)
    names = [name for name, there in present.items() if there]
    applied = bool(patches) and len(names) == len(patches)
    result = {
        'target': target.root,
        'nova_version': target.nova_version,
        'version_source': target.version_source,
        'release': found.name if found else None,
        # Every patch's code is in the files, however it got there.
        'applied': applied,
        # apply (a stamp), build (a wheel labelled +xloud.N) or patch
        # (Kolla's patch -p0, or by hand); None when no patch is there.
        'applied_by': _applied_by(stamp, target) if names or stamp else None,
        'applied_release': (stamp.get('release') if stamp else
                            found.name if names else None),
        'patches': names,
        'missing_patches': [name for name, there in present.items()
                            if not there],
        'stamp': target.stamp_path if stamp else None,
        'changed_since': [],
    }
    if stamp:
        result['changed_since'] = _changed_since(target, stamp)
    return result


def _changed_since(target, stamp):
    return sorted(path for path, digest in stamp.get('files', {}).items()
                  if target.file_sha256(path) != digest)
