"""Small Nova-like trees and patches the tool's tests build themselves."""

import hashlib
import io
import os
import tarfile

from nova_xloud import releases

CONFIG_PY = ''.join('line %d\n' % n for n in range(1, 21))
API_PY = 'a\nb\nc\nd\ne\nf\ng\n'

PATCH_CONFIG = """\
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: nova-xloud <nova-xloud@localhost>
Subject: virt: change line ten and add a hook module

Why the hook lives in Nova.

Origin: vendor
Forwarded: not-needed
Last-Update: 2026-11-21

diff --git a/nova/virt/config.py b/nova/virt/config.py
--- a/nova/virt/config.py
+++ b/nova/virt/config.py
@@ -7,7 +7,7 @@
 line 7
 line 8
 line 9
-line 10
+line ten
 line 11
 line 12
 line 13
diff --git a/nova/virt/hooks.py b/nova/virt/hooks.py
new file mode 100644
--- /dev/null
+++ b/nova/virt/hooks.py
@@ -0,0 +1,2 @@
+def hook():
+    pass
"""

PATCH_API = """\
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: nova-xloud <nova-xloud@localhost>
Subject: api: capitalise d

Origin: vendor
Forwarded: not-needed
Last-Update: 2026-11-21

diff --git a/nova/api.py b/nova/api.py
--- a/nova/api.py
+++ b/nova/api.py
@@ -2,5 +2,5 @@
 b
 c
-d
+D
 e
 f
"""


def write(root, path, text, mode='w'):
    full = os.path.join(root, *path.split('/'))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, mode) as handle:
        handle.write(text)
    return full


def make_nova_tree(root, version='29.4.0', layout='sdist'):
    """A tree with the files the fake patches touch.

    ``layout`` is ``sdist`` (PKG-INFO at the top) or ``site-packages``
    (a nova-X.dist-info beside the package).
    """
    write(root, 'nova/__init__.py', '')
    write(root, 'nova/virt/__init__.py', '')
    write(root, 'nova/virt/config.py', CONFIG_PY)
    write(root, 'nova/api.py', API_PY)
    metadata = 'Metadata-Version: 2.1\nName: nova\nVersion: %s\n' % version
    if layout == 'sdist':
        write(root, 'PKG-INFO', metadata)
    else:
        write(root, 'nova-%s.dist-info/METADATA' % version, metadata)
    return root


def make_series(patches_dir, release='2024.1', patches=None):
    patches = patches if patches is not None else [
        ('virt-change-line-ten.patch', PATCH_CONFIG),
        ('api-capitalise-d.patch', PATCH_API)]
    directory = os.path.join(patches_dir, release)
    os.makedirs(directory, exist_ok=True)
    for name, text in patches:
        write(directory, name, text)
    write(directory, 'series',
          '# test series\n' + ''.join('%s\n' % n for n, _ in patches))
    return directory


def snapshot(root):
    """Every file's bytes and mode below ``root``: to compare trees."""
    result = {}
    for top, dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(top, name)
            with open(full, 'rb') as handle:
                result[os.path.relpath(full, root)] = (
                    handle.read(), os.stat(full).st_mode)
    return result


def make_sdist_release(cache_dir, tree_root, version='29.4.0'):
    """Cache a tar.gz of ``tree_root`` as the sdist of a fake release."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        tar.add(tree_root, arcname='nova-%s' % version)
    data = buffer.getvalue()
    path = os.path.join(cache_dir, 'sdists', 'nova-%s.tar.gz' % version)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data)
    real = releases.for_nova_version(version)
    return releases.Release(real.name, version,
                            hashlib.sha256(data).hexdigest(), 1,
                            real.placement_version, real.tested)
