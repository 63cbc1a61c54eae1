"""The Nova releases nova-xloud supports: data, not code branches."""

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Release(object):
    name: str
    nova_version: str
    sdist_sha256: str
    # Bump when the release's series changes: it is the local label of
    # the patched Nova wheel (29.4.0+xloud.<revision>).
    series_revision: int
    # openstack-placement for the functional tests (not in upstream's
    # upper-constraints, which leave out services).
    placement_version: str
    tested: bool
    # Needed at run time but not declared by that Nova's requirements.
    runtime_requirements: tuple = ()
    # Kolla of the same release: whether it applies patches_path (2025.1+)
    # and the Python of its images' virtualenv (Ubuntu 24.04 base).
    kolla_patches: bool = True
    kolla_python: str = '3.12'

    @property
    def nova_major(self):
        return int(self.nova_version.split('.')[0])

    @property
    def constraints_path(self):
        return os.path.join(os.path.dirname(__file__), 'constraints',
                            '%s.txt' % self.name)

    @property
    def local_version(self):
        return '%s+xloud.%d' % (self.nova_version, self.series_revision)


RELEASES = (
    Release('2024.1', '29.4.0',
            '91a804a32ac76aa42dfb78c770462aed759ad9dbcf272872449642405e40c48d',
            1, '11.0.1', True,
            # nova/virt/__init__.py imports pkg_resources, which
            # setuptools 82 removed.
            runtime_requirements=('setuptools<82',),
            kolla_patches=False, kolla_python='3.10'),
    Release('2025.1', '31.3.1',
            '483991f483d72edb3bcb61b4da75199c39da727c7ed255e584ee08aea6162c41',
            1, '13.0.1', True),
    Release('2025.2', '32.2.1',
            '576a8890d726bd8ff2205eec456e412ea03519c41fb48b5276ba450308e1e639',
            1, '14.0.0', True),
    Release('2026.1', '33.0.2',
            '84ab864ced8867f2989f3ba65ead61a7e39891ee7ea693850331636ac9d360ea',
            1, '15.0.0', True),
    Release('2026.2', '34.0.0',
            '919eef77cda4ce0cc4746a5853b5d9341ebd0ae37bc8b1939eb77d17727c00df',
            1, '16.0.0', True),
)


def newest():
    """The newest release the series is tested on."""
    return [release for release in RELEASES if release.tested][-1]


def names():
    return [release.name for release in RELEASES]


def get(name):
    """The release called ``name``, or None."""
    for release in RELEASES:
        if release.name == name:
            return release
    return None


def for_nova_version(version):
    """The release whose Nova major version ``version`` has, or None."""
    try:
        major = int(version.split('.')[0])
    except ValueError:
        return None
    for release in RELEASES:
        if release.nova_major == major:
            return release
    return None
