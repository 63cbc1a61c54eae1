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

"""Unpacking sdists on Pythons with and without tarfile's filters."""

import io
import os
import tarfile

import fixtures
import testtools

from nova_xloud.series import errors
from nova_xloud.series import sdist

_REAL_EXTRACTALL = tarfile.TarFile.extractall


def _extractall_without_filter(self, path='.', members=None, *,
                               numeric_owner=False, **kwargs):
    # tarfile.TarFile.extractall of Python 3.11.2 (Debian 12): no filter.
    if kwargs:
        raise TypeError('extractall() got an unexpected keyword argument'
                        ' %r' % sorted(kwargs)[0])
    return _REAL_EXTRACTALL(self, path, members,
                            numeric_owner=numeric_owner)


def _archive(path, members):
    """Write a tar.gz of (TarInfo, bytes or None) pairs."""
    with tarfile.open(path, 'w:gz') as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b'x = 1\n', mode=0o644):
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _special(name, kind, linkname=''):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


class UnpackTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.dest = os.path.join(self.tmp, 'dest')
        os.mkdir(self.dest)

    def _extract(self, *members):
        path = _archive(os.path.join(self.tmp, 'a.tar.gz'), members)
        with tarfile.open(path) as tar:
            sdist.extract_all(tar, self.dest, path)

    def _assert_refused(self, why, *members):
        e = self.assertRaises(errors.SeriesError, self._extract, *members)
        self.assertIn(why, str(e))
        self.assertEqual([], os.listdir(self.dest))
        self.assertEqual(['a.tar.gz', 'dest'], sorted(os.listdir(self.tmp)))


class WithoutFilterTestCase(UnpackTestCase):
    """As on Debian 12's Python 3.11.2: tarfile has no filter argument."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch('tarfile.data_filter',
                                             fixtures.MonkeyPatch.delete))
        self.useFixture(fixtures.MonkeyPatch('tarfile.TarFile.extractall',
                                             _extractall_without_filter))

    def test_a_tree_unpacks_without_its_dangerous_modes(self):
        self._extract(_file('nova-1/nova/__init__.py', mode=0o4777),
                      _file('nova-1/bin/run', mode=0o755),
                      _special('nova-1/nova/link', tarfile.SYMTYPE,
                               '__init__.py'))
        init = os.path.join(self.dest, 'nova-1', 'nova', '__init__.py')
        with open(init, 'rb') as handle:
            self.assertEqual(b'x = 1\n', handle.read())
        self.assertEqual(0o755, os.stat(init).st_mode & 0o7777)
        self.assertEqual('__init__.py', os.readlink(
            os.path.join(self.dest, 'nova-1', 'nova', 'link')))

    def test_an_absolute_path_is_refused(self):
        self._assert_refused('an absolute path or ..',
                             _file('/tmp/nova-xloud-evil'))

    def test_dot_dot_is_refused(self):
        self._assert_refused('an absolute path or ..',
                             _file('nova-1/../../evil'))

    def test_a_symlink_out_of_the_tree_is_refused(self):
        self._assert_refused('a link out of the tree',
                             _special('nova-1/etc', tarfile.SYMTYPE,
                                      '../../etc'))
        self._assert_refused('a link out of the tree',
                             _special('nova-1/etc', tarfile.SYMTYPE, '/etc'))

    def test_a_hard_link_out_of_the_tree_is_refused(self):
        self._assert_refused('a link out of the tree',
                             _special('nova-1/passwd', tarfile.LNKTYPE,
                                      '/etc/passwd'))

    def test_devices_and_fifos_are_refused(self):
        for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            self._assert_refused('a device, fifo or other special file',
                                 _file('nova-1/ok.py'),
                                 _special('nova-1/dev', kind))
