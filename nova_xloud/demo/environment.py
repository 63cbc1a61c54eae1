"""Find or build the Python that runs the demo of a release."""

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

from nova_xloud.series import errors
from nova_xloud.series import sdist

DIST = 'nova-xloud'


def default_venv(cache_dir, release):
    return os.path.join(cache_dir, 'demo', release.name)


def venv_python(venv):
    return os.path.join(venv, 'bin', 'python')


def run_isolated(python, args, **kwargs):
    """subprocess.run ``python -I args`` from an empty directory.

    What ``python`` has installed, not what the caller's directory holds:
    from a clone, ``-m`` would import the clone's nova_xloud and
    importlib.metadata would read the clone's nova_xloud.egg-info.
    """
    with tempfile.TemporaryDirectory(prefix='nova-xloud-demo-') as cwd:
        return subprocess.run([python, '-I'] + list(args), cwd=cwd,
                              **kwargs)


def probe(python, release):
    """(nova-xloud version or None, [reasons it cannot run the demo])."""
    result = run_isolated(python, ['-m', 'nova_xloud.demo.probe',
                                   release.name],
                          capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        return None, ['nova-xloud does not run there (%s)'
                      % (lines[-1] if lines else 'exit status %d'
                         % result.returncode)]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return answer['nova_xloud'], answer['missing']


def _checkout_root():
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    return root if os.path.isfile(os.path.join(root, 'setup.cfg')) else None


def _from_direct_url(text):
    """pip arguments for a PEP 610 direct_url.json of a local install."""
    info = json.loads(text)
    url = urllib.parse.urlparse(info.get('url', ''))
    if url.scheme != 'file':
        return None
    path = urllib.request.url2pathname(url.path)
    if not os.path.exists(path):
        return None
    if info.get('dir_info', {}).get('editable'):
        return ['-e', path]
    return [path]


_SELF_PROBE = ('import importlib.metadata as m, json\n'
               'try:\n'
               '    d = m.distribution(%r)\n'
               'except m.PackageNotFoundError:\n'
               '    print("{}")\n'
               'else:\n'
               '    print(json.dumps({"version": d.version,\n'
               '                      "direct_url": d.read_text(\n'
               '                          "direct_url.json")}))\n' % DIST)


def own_install():
    """{'version', 'direct_url'} of the nova-xloud installed here, or {}.

    Asked as the probe asks another Python: a clone's nova_xloud.egg-info
    in the current directory is not what is installed here.
    """
    result = run_isolated(sys.executable, ['-c', _SELF_PROBE],
                          capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if result.returncode == 0 and lines else {}


def own_version():
    return own_install().get('version')


def own_source():
    """pip arguments that install this nova-xloud into another venv."""
    # Running from a source tree (an editable install of any kind, or no
    # install): that tree, editable.
    root = _checkout_root()
    if root:
        return ['-e', root]
    installed = own_install()
    if not installed:
        raise errors.UsageError('cannot tell where nova-xloud comes from;'
                                ' give --source (a checkout, sdist or'
                                ' wheel)')
    direct_url = installed.get('direct_url')
    found = _from_direct_url(direct_url) if direct_url else None
    # Installed from an index: the same index has it.
    return found or ['%s==%s' % (DIST, installed['version'])]


def is_venv(path):
    return os.path.isfile(os.path.join(path, 'pyvenv.cfg'))


def create_venv(venv, report):
    """Create ``venv``, or recreate a virtualenv whose Python is gone."""
    command = [sys.executable, '-m', 'venv', venv]
    if is_venv(venv):
        # A first run stopped half-way, or the Python it was made with
        # was removed: a virtualenv that cannot run is rebuilt.
        report('[demo] recreating the virtualenv %s: its Python %s does not'
               ' run' % (venv, venv_python(venv)))
        command.insert(3, '--clear')
    elif os.path.exists(venv) and (not os.path.isdir(venv) or
                                   os.listdir(venv)):
        raise errors.UsageError(
            '%s exists but is not a virtualenv; remove it or give another'
            ' --venv' % venv)
    else:
        report('[demo] creating the virtualenv %s' % venv)
    sdist.run_checked(command, 'creating %s' % venv)


def python_runs(python):
    try:
        return subprocess.run([python, '-c', ''],
                              capture_output=True).returncode == 0
    except OSError:
        return False


def install_nova_xloud(venv, source, report):
    report('[demo] installing nova-xloud into %s from %s'
           % (venv, ' '.join(source)))
    try:
        sdist.run_pip(['install'] + list(source),
                      'installing nova-xloud into %s' % venv,
                      python=venv_python(venv))
    except errors.SeriesError as exc:
        raise errors.SeriesError('%s\ngive --source: a checkout, sdist or'
                                 ' wheel of nova-xloud' % exc)


def install_nova(venv, release, cache_dir, report):
    report('[demo] installing nova %s with its test requirements and'
           ' placement into %s, then applying the series (first run only:'
           ' a few minutes)' % (release.nova_version, venv))
    # The venv's own nova-xloud, as a module: the command needs no
    # console script. Its progress lines go straight to the terminal.
    returncode = run_isolated(
        venv_python(venv), ['-m', 'nova_xloud.cmd.series', '--cache-dir',
                            cache_dir, 'install', release.name,
                            '--with-tests']).returncode
    if returncode != 0:
        raise errors.SeriesError('installing nova %s into %s failed (exit'
                                 ' status %d)' % (release.nova_version, venv,
                                                  returncode))


def prepare(release, venv, cache_dir, source=None, report=print):
    """The Python that runs the demo of ``release``.

    This environment's, when it has the release's patched Nova and its
    test requirements and no ``venv`` is asked for; otherwise ``venv`` (by
    default one per release in the cache), built or brought up to date.
    """
    if venv is None:
        _, missing = probe(sys.executable, release)
        if not missing:
            report('[demo] this environment has the patched nova %s: %s'
                   % (release.nova_version, sys.prefix))
            return sys.executable
        venv = default_venv(cache_dir, release)
        report('[demo] not in this environment (%s); using %s'
               % ('; '.join(missing), venv))
    venv = os.path.abspath(venv)
    python = venv_python(venv)
    if not python_runs(python):
        create_venv(venv, report)
    version, missing = probe(python, release)
    if source or version is None or version != own_version():
        install_nova_xloud(venv, [source] if source else own_source(),
                           report)
        version, missing = probe(python, release)
    if missing:
        install_nova(venv, release, cache_dir, report)
        version, missing = probe(python, release)
    if missing:
        raise errors.SeriesError(
            '%s still cannot run the demo: %s\nremove it (rm -rf %s) and run'
            ' the demo again to build it afresh'
            % (venv, '; '.join(missing), venv))
    report('[demo] %s is ready' % venv)
    return python


def run_scenario(python, release, full_xml=False):
    """Run the scenario with ``python``; its exit status."""
    command = ['-m', 'nova_xloud.demo', release.name]
    if full_xml:
        command.append('--full-xml')
    return run_isolated(python, command).returncode
