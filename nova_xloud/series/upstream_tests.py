"""Run Nova's own tests on the installed, patched Nova.

Used by the functional tox environments: a hook that breaks upstream
behaviour fails Nova's own tests of the file it touches.  The files are
read from the stamp of the installed, patched Nova.  ``--whole`` runs
Nova's whole unit suite instead, with nova-xloud installed beside it, as a
distribution that runs Nova's tests at package build does.  ``--moves``
runs Nova's own functional tests of moving servers (MOVE_TESTS) with
nova-xloud's plugins loaded, to show that the hooks change nothing for
flavors without the minimum specs.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile

from nova_xloud.series import target as target_mod


def installed_nova_root():
    root = target_mod.installed_root()
    if root is None:
        raise SystemExit('nova is not installed in this environment')
    return root


# Upstream files whose tests do not follow the test_<name>.py rule.
TESTED_BY = {
    'nova/compute/manager.py': (
        'nova.tests.unit.compute.test_compute_mgr',
        'nova.tests.unit.compute.test_compute',
        'nova.tests.unit.test_service'),
    'nova/conductor/manager.py': (
        'nova.tests.unit.conductor.test_conductor',),
    'nova/api/openstack/compute/routes.py': (
        'nova.tests.unit.api.openstack.compute.test_servers',
        'nova.tests.unit.api.openstack.compute.test_auth',
        'nova.tests.unit.api.openstack.compute.test_microversions',
        'nova.tests.unit.api.openstack.compute.test_versions'),
}


# Nova's functional tests of cold and live migration, evacuation, shelve
# and rescue, as (module, class or None for all of it): ServerMovingTests
# checks every move's placement usages. A module that a release does not
# have is left out.
MOVE_TESTS = (
    ('nova.tests.functional.test_servers', 'ServerMovingTests'),
    ('nova.tests.functional.test_cold_migrate', None),
    ('nova.tests.functional.compute.test_live_migration', None),
    ('nova.tests.functional.libvirt.test_evacuate', None),
    ('nova.tests.functional.libvirt.test_live_migration', None),
    ('nova.tests.functional.libvirt.test_rescue_deleted_base', None),
)


def move_tests_regex(root):
    """A stestr filter for the MOVE_TESTS this Nova has."""
    present = ['%s.%s' % (module, cls) if cls else module
               for module, cls in MOVE_TESTS if _exists(root, module)]
    print("Nova's own functional tests of moves: %s" % ', '.join(present),
          flush=True)
    return '^(%s)\\.' % '|'.join(n.replace('.', '\\.') for n in present)


def _exists(root, module):
    return os.path.isfile(os.path.join(root, *module.split('.')) + '.py')


def test_modules(root, files):
    """Module names of nova/tests/unit/.../test_X.py for each nova/.../X.py"""
    modules = []
    for path in sorted(files):
        known = [m for m in TESTED_BY.get(path, ()) if _exists(root, m)]
        if known:
            modules.extend(known)
            continue
        if (not path.endswith('.py') or not path.startswith('nova/') or
                path.startswith('nova/tests/')):
            continue
        directory, name = os.path.split(path[len('nova/'):-len('.py')])
        test_path = os.path.join('nova', 'tests', 'unit', directory,
                                 'test_%s.py' % name)
        if os.path.isfile(os.path.join(root, test_path)):
            modules.append(test_path[:-len('.py')].replace(os.sep, '.'))
    return modules


@contextlib.contextmanager
def api_paste_beside_nova(root):
    """Link <prefix>/etc/nova/api-paste.ini to <root>/etc/nova for the run.

    Nova's tests read etc/nova/api-paste.ini beside the nova package, where
    a source tree keeps it; pip installs it in <prefix>/etc/nova.
    """
    installed = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')
    expected = os.path.join(root, 'etc', 'nova', 'api-paste.ini')
    if os.path.exists(expected) or not os.path.exists(installed):
        yield
        return
    created = [d for d in (os.path.join(root, 'etc'),
                           os.path.join(root, 'etc', 'nova'))
               if not os.path.isdir(d)]
    for directory in created:
        os.mkdir(directory)
    os.symlink(installed, expected)
    try:
        yield
    finally:
        os.unlink(expected)
        for directory in reversed(created):
            os.rmdir(directory)


def hooked_modules_regex(root, stamp, skip=()):
    """A stestr filter for Nova's test modules of the hooked files.

    ``skip`` names modules (their last component) left out.
    """
    modules = [m for m in test_modules(root, stamp['files'])
               if m.rsplit('.', 1)[-1] not in skip]
    left_out = sorted(set(skip))
    if left_out:
        print("Left out of Nova's own unit tests: %s" % ', '.join(left_out),
              flush=True)
    if not modules:
        return None
    print("Nova's own unit tests of the hooked files: %s"
          % ', '.join(modules), flush=True)
    return '^(%s)\\.' % '|'.join(m.replace('.', '\\.') for m in modules)


def stestr_command(root, suite='unit'):
    return [sys.executable, '-m', 'stestr', '--test-path',
            os.path.join(root, 'nova', 'tests', suite), '--top-dir', root]


def run_stestr(root, filters, suite='unit'):
    with tempfile.TemporaryDirectory(prefix='nova-upstream-tests-') as repo:
        subprocess.run([sys.executable, '-m', 'stestr', 'init'], cwd=repo,
                       check=True, stdout=subprocess.DEVNULL)
        # Some of Nova's tests name their data files by paths relative to
        # the source root they run from ('nova/tests/unit/...'). The test
        # processes then import nova through this link (the working
        # directory comes first on their path), so api-paste.ini must be
        # beside the link, as in a source tree.
        os.symlink(os.path.join(root, 'nova'), os.path.join(repo, 'nova'))
        with api_paste_beside_nova(repo):
            return subprocess.call(
                stestr_command(root, suite) + ['run'] + filters, cwd=repo)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m nova_xloud.series.upstream_tests',
        description="Run Nova's own tests on the installed, patched"
                    ' Nova: the unit test modules of the hooked files, all'
                    ' unit tests, or the functional tests of moves.')
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument('--whole', action='store_true',
                        help="Nova's whole unit suite")
    choice.add_argument('--moves', action='store_true',
                        help="Nova's functional tests of moving servers")
    parser.add_argument('--skip', action='append', default=[],
                        metavar='MODULE',
                        help='leave out the hooked files\' test module of'
                             ' this name (test_compute); repeatable')
    return parser.parse_known_args(argv)


def main(argv=None):
    args, stestr_args = parse_args(sys.argv[1:] if argv is None else argv)
    root = installed_nova_root()
    stamp = target_mod.find(root).read_stamp()
    if stamp is None:
        print('the nova in %s carries no nova-xloud series' % root,
              file=sys.stderr)
        return 1
    if (args.whole or args.moves) and args.skip:
        print('--skip applies to the hooked files\' modules, not to'
              ' --whole or --moves', file=sys.stderr)
        return 2
    if args.moves:
        return run_stestr(root, [move_tests_regex(root)] + stestr_args,
                          suite='functional')
    if args.whole:
        print("Nova's whole unit suite, nova-xloud installed beside it",
              flush=True)
        return run_stestr(root, stestr_args)
    regex = hooked_modules_regex(root, stamp, args.skip)
    if regex is None:
        print('the series touches no file that has an upstream unit test'
              ' module', file=sys.stderr)
        return 1
    return run_stestr(root, [regex] + stestr_args)


if __name__ == '__main__':
    sys.exit(main())
