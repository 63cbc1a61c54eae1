"""``nova-xloud``: put the nova-xloud patch series onto upstream Nova."""

import argparse
import json
import os
import sys
import tempfile

from nova_xloud.demo import environment as demo_env
from nova_xloud import releases
from nova_xloud.series import errors
from nova_xloud.series import gitflow
from nova_xloud.series import kolla
from nova_xloud.series import sdist
from nova_xloud.series import series as series_mod
from nova_xloud.series import target as target_mod


def _say(message):
    print(message, flush=True)


def _release(name):
    release = releases.get(name)
    if release is None:
        raise errors.UsageError('unknown release %r; supported: %s'
                                % (name, ', '.join(releases.names())))
    return release


def _patches(args, release):
    return series_mod.load(release, args.patches_dir)


def cmd_releases(args):
    rows = [('RELEASE', 'NOVA', 'PATCHES', 'TESTED')]
    for release in releases.RELEASES:
        rows.append((release.name, release.nova_version,
                     str(len(_patches(args, release))),
                     'yes' if release.tested else 'no'))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        _say('  '.join(cell.ljust(width)
                       for cell, width in zip(row, widths)).rstrip())


def _fetch_sdist(args, release):
    _say('[fetch] nova %s for %s' % (release.nova_version, release.name))
    return sdist.download(release, args.cache_dir, report=_indent)


def _indent(message):
    _say('  ' + message)


def cmd_fetch(args):
    release = _release(args.release)
    archive = _fetch_sdist(args, release)
    dest = args.dest or os.path.join(args.cache_dir, 'src')
    tree = sdist.unpack(release, archive, dest, report=_indent)
    _say(tree)


def cmd_apply(args):
    release = _release(args.release)
    target = target_mod.find(args.target)
    _say('[apply] %s: nova %s (read from %s)'
         % (target.root, target.nova_version, target.version_source))
    if args.reverse:
        series_mod.reverse(release, target, dry_run=args.dry_run,
                           report=_indent)
    else:
        series_mod.apply(release, target, _patches(args, release),
                         dry_run=args.dry_run, report=_indent)


_APPLIED_BY = {
    'apply': 'applied by nova-xloud apply (stamp %(stamp)s)',
    'build': 'built in by nova-xloud build (version label %(label)s)',
    'patch': "patched in without nova-xloud (Kolla's patch -p0 or by"
             ' hand)',
}


def _status_patches(args, target):
    release = releases.for_nova_version(target.nova_version)
    return _patches(args, release) if release else []


def cmd_status(args):
    target = target_mod.find(args.target)
    state = series_mod.status(target, _status_patches(args, target))
    if args.format == 'json':
        _say(json.dumps(state, indent=2, sort_keys=True))
        return
    _say('target:        %s' % state['target'])
    _say('nova version:  %s (read from %s)'
         % (state['nova_version'], state['version_source']))
    _say('release:       %s' % (state['release'] or 'not supported'))
    if state['applied_by'] is None:
        _say('series:        not applied')
        return
    how = _APPLIED_BY[state['applied_by']] % {
        'stamp': state['stamp'],
        'label': '+' + state['nova_version'].split('+', 1)[-1]}
    if state['applied']:
        _say('series:        %s, applied (%d patches): %s'
             % (state['applied_release'], len(state['patches']), how))
    else:
        _say('series:        %s, PARTLY applied (%d of %d patches): %s'
             % (state['applied_release'], len(state['patches']),
                len(state['patches']) + len(state['missing_patches']), how))
    for name in state['patches']:
        _say('  present: %s' % name)
    for name in state['missing_patches']:
        _say('  MISSING: %s' % name)
    if state['stamp'] is None:
        return
    if state['changed_since']:
        _say('changed since: %s' % ', '.join(state['changed_since']))
    else:
        _say('changed since: nothing')


def _patched_tree(args, release, parent):
    archive = _fetch_sdist(args, release)
    tree = sdist.unpack_fresh(release, archive, parent)
    _say('[apply] the %s series onto %s' % (release.name, tree))
    series_mod.apply(release, target_mod.find(tree),
                     _patches(args, release), report=_indent)
    return tree


def _build(args, release, out_dir):
    with tempfile.TemporaryDirectory(prefix='nova-xloud-build-') as work:
        tree = _patched_tree(args, release, work)
        _say('[build] wheel into %s' % out_dir)
        wheel = sdist.build_wheel(release, tree, out_dir, report=_indent)
    _say(wheel)
    return wheel


def cmd_build(args):
    release = _release(args.release)
    _build(args, release, os.path.abspath(args.out))


def cmd_install(args):
    release = _release(args.release)
    archive = _fetch_sdist(args, release)
    requirements, extra = [], list(release.runtime_requirements)
    if args.with_tests:
        unpacked = sdist.unpack(release, archive,
                                os.path.join(args.cache_dir, 'src'),
                                report=_indent)
        requirements.append(os.path.join(unpacked, 'test-requirements.txt'))
        extra += ['openstack-placement==%s' % release.placement_version,
                  # for the tests of our openstackclient plugin
                  'python-openstackclient']
    installed_before = target_mod.installed_root()
    _say('[install] nova %s with the %s upper-constraints'
         % (release.nova_version, release.name))
    sdist.install(release, archive, requirements, extra)
    if installed_before:
        # pip may keep or replace a Nova it finds installed, and never
        # removes our stamp: put upstream's files back, then apply afresh.
        _say('[install] reinstalling nova %s with upstream\'s files'
             % release.nova_version)
        sdist.reinstall(archive)
    root = target_mod.installed_root()
    if root is None:
        raise errors.SeriesError('nova is not importable after the install')
    target = target_mod.find(root)
    if installed_before:
        target.drop_stamp()
    _say('[apply] %s' % target.root)
    series_mod.apply(release, target, _patches(args, release),
                     report=_indent)


def _new_directory(path):
    dest = os.path.abspath(path)
    if os.path.exists(dest) and os.listdir(dest):
        raise errors.UsageError('%s exists and is not empty' % dest)
    return dest


def _worktree_in(args, release, parent):
    """A worktree of ``release`` built inside ``parent``."""
    patches = _patches(args, release)
    archive = _fetch_sdist(args, release)
    tree = sdist.unpack_fresh(release, archive, parent)
    _say('[worktree] git repository of nova %s' % release.nova_version)
    gitflow.init_worktree(tree, release)
    gitflow.am_patches(tree, patches, report=_indent)
    return tree, patches


def _move_into(tree, dest):
    if os.path.exists(dest):
        os.rmdir(dest)
    os.replace(tree, dest)


def cmd_worktree(args):
    release = _release(args.release)
    dest = _new_directory(args.dir)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(dest),
                                     prefix='.nova-xloud-') as work:
        tree, patches = _worktree_in(args, release, work)
        _move_into(tree, dest)
    _say('%s: upstream import plus %d commits' % (dest, len(patches)))


def cmd_rebase(args):
    source, goal = _release(args.from_release), _release(args.to_release)
    dest = _new_directory(args.dir)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(dest),
                                     prefix='.nova-xloud-') as work:
        tree, _ = _worktree_in(args, source, os.path.join(work, 'from'))
        goal_root = sdist.unpack_fresh(goal, _fetch_sdist(args, goal),
                                       os.path.join(work, 'to'))
        _say('[rebase] %s (nova %s) onto %s (nova %s)' % (
            source.name, source.nova_version, goal.name, goal.nova_version))
        results = gitflow.rebase(tree, source, goal, goal_root,
                                 report=_indent)
        _move_into(tree, dest)
    conflicts = [subject for subject, files in results if files]
    _say('%s: %d commits on nova %s, %d with conflict markers'
         % (dest, len(results), goal.nova_version, len(conflicts)))
    if conflicts:
        raise errors.ConflictError(
            'resolve the conflict markers in %s (for example with git'
            ' rebase -i), then: nova-xloud export %s %s'
            % ('; '.join(conflicts), dest, goal.name))
    _say('next: run the tests, then nova-xloud export %s %s'
         % (dest, goal.name))


def cmd_export(args):
    release = _release(args.release)
    tree = os.path.abspath(args.dir)
    if not os.path.isdir(os.path.join(tree, '.git')):
        raise errors.UsageError('%s is not a git worktree' % tree)
    patches_dir = args.patches_dir or series_mod.default_patches_dir()
    _say('[export] %s -> %s' % (tree, os.path.join(patches_dir,
                                                   release.name)))
    gitflow.export(tree, release, patches_dir, report=_indent)


def cmd_export_kolla(args):
    release = _release(args.release)
    if not release.kolla_patches:
        _say('note: Kolla %s has no patches_path; build its images with the'
             ' template override in README ("Building images with Kolla")'
             % release.name)
    _say('[export-kolla] %s for Python %s in %s' % (
        release.name, args.python or release.kolla_python, args.venv))
    kolla.export(release, _patches(args, release), os.path.abspath(args.dir),
                 args.python or release.kolla_python, args.venv,
                 report=_indent)


def cmd_demo(args):
    release = _release(args.release) if args.release else releases.newest()
    if args.real:
        _demo_real(release)
        return
    if args.patches_dir:
        # For every nova-xloud the demo runs: the probe, install, scenario.
        os.environ[series_mod.PATCHES_ENV] = os.path.abspath(
            args.patches_dir)
    python = demo_env.prepare(release, args.venv, args.cache_dir,
                              args.source, report=_say)
    returncode = demo_env.run_scenario(python, release, args.full_xml)
    if returncode != 0:
        raise errors.SeriesError('the demo failed (exit status %d); see'
                                 ' above' % returncode)


def _demo_real(release):
    from nova_xloud.realcloud import demo as real_demo
    from nova_xloud.realcloud import errors as real_errors
    try:
        real_demo.run(release.name)
    except real_errors.RealCloudError as exc:
        raise errors.SeriesError(str(exc))


def build_parser():
    parser = argparse.ArgumentParser(
        prog='nova-xloud',
        description='Apply, check, reverse, build and maintain the '
                    'nova-xloud patch series on upstream Nova.')
    parser.add_argument('--patches-dir', default=None,
                        help='directory holding RELEASE/series (default: '
                             '$%s, the checkout, or the installed data)'
                             % series_mod.PATCHES_ENV)
    parser.add_argument('--cache-dir', default=sdist.default_cache_dir(),
                        help='where sdists, trees and wheels are cached '
                             '(default: %(default)s)')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True

    sub = commands.add_parser('releases', help='list supported releases')
    sub.set_defaults(func=cmd_releases)

    sub = commands.add_parser('fetch', help='download and unpack a sdist')
    sub.add_argument('release')
    sub.add_argument('--dest', help='parent directory of the unpacked tree')
    sub.set_defaults(func=cmd_fetch)

    sub = commands.add_parser('apply', help='apply (or reverse) a series')
    sub.add_argument('release')
    sub.add_argument('target', help='a Nova source tree, or the directory '
                                    'holding an installed nova/ package')
    sub.add_argument('--dry-run', action='store_true',
                     help='check only; change nothing')
    sub.add_argument('--reverse', action='store_true',
                     help='take the applied series back out')
    sub.set_defaults(func=cmd_apply)

    sub = commands.add_parser('status', help='show what a target carries')
    sub.add_argument('target')
    sub.add_argument('--format', choices=('text', 'json'), default='text')
    sub.set_defaults(func=cmd_status)

    sub = commands.add_parser('build', help='build a patched Nova wheel')
    sub.add_argument('release')
    sub.add_argument('--out', default='dist',
                     help='directory for the wheel (default: %(default)s)')
    sub.set_defaults(func=cmd_build)

    sub = commands.add_parser(
        'install', help="pip install the release's Nova here, with its "
                        'upper-constraints, and apply the series to it')
    sub.add_argument('release')
    sub.add_argument('--with-tests', action='store_true',
                     help="also install Nova's test requirements, placement "
                          'and openstackclient (for the functional tests)')
    sub.set_defaults(func=cmd_install)

    sub = commands.add_parser('worktree',
                              help='git repository with a commit a patch')
    sub.add_argument('release')
    sub.add_argument('dir')
    sub.set_defaults(func=cmd_worktree)

    sub = commands.add_parser(
        'export-kolla', help="write the series for Kolla's patches_path")
    sub.add_argument('release')
    sub.add_argument('dir', help='the patches_path directory')
    sub.add_argument('--python', help="Python X.Y of the image's virtualenv "
                                      '(default: the release\'s Kolla)')
    sub.add_argument('--venv', default=kolla.DEFAULT_VENV,
                     help='virtualenv of the image (default: %(default)s)')
    sub.set_defaults(func=cmd_export_kolla)

    sub = commands.add_parser(
        'rebase', help="carry one release's series onto another release")
    sub.add_argument('from_release', metavar='FROM')
    sub.add_argument('to_release', metavar='TO')
    sub.add_argument('dir', help='new worktree for the TO release')
    sub.set_defaults(func=cmd_rebase)

    sub = commands.add_parser(
        'demo', help='run an in-process Nova of a release (no cloud needed)'
                     ' and adjust a server live',
        description='Start placement, nova-api, conductor, scheduler and a'
                    ' libvirt compute on fakelibvirt in one process, from'
                    " the release's patched Nova and Nova's own test"
                    ' fixtures; boot a server with a minimum flavor, adjust'
                    ' it up and down, and print the domain XML and the'
                    ' placement allocations at each step. Uses this'
                    " environment when it has that release's patched Nova"
                    ' and test requirements; otherwise builds a virtualenv'
                    ' (in the cache, reused afterwards).')
    sub.add_argument('release', nargs='?',
                     help='default: %s' % releases.newest().name)
    sub.add_argument('--venv', help='virtualenv to build or reuse (default:'
                                    ' CACHE_DIR/demo/RELEASE)')
    sub.add_argument('--source', help='where to install nova-xloud into the'
                                      ' virtualenv from (default: where'
                                      ' this one came from)')
    sub.add_argument('--full-xml', action='store_true',
                     help='print the whole domain XML, not the elements'
                          ' that change')
    sub.add_argument('--real', action='store_true',
                     help='root on Linux: a real one-node cloud on QEMU'
                          ' (as tox -e realcloud) in this environment,'
                          " which holds the release's patched Nova; a"
                          " real VM grows live, the guest's view beside"
                          " the API's")
    sub.set_defaults(func=cmd_demo)

    sub = commands.add_parser('export',
                              help='write a worktree back as the series')
    sub.add_argument('dir')
    sub.add_argument('release')
    sub.set_defaults(func=cmd_export)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except errors.SeriesError as exc:
        print('nova-xloud %s: error: %s' % (args.command, exc),
              file=sys.stderr, flush=True)
        return exc.exit_code
    except OSError as exc:
        print('nova-xloud %s: error: %s%s' % (
            args.command, '%s: ' % exc.filename if exc.filename else '',
            exc.strerror or exc), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
