import testtools

from nova_xloud.series import engine
from nova_xloud.series import errors
from nova_xloud.series import patchfile
from tests.unit.series import fakes

NO_EOL_PATCH = b"""\
Subject: version: end without a newline

diff --git a/nova/v.py b/nova/v.py
--- a/nova/v.py
+++ b/nova/v.py
@@ -1,2 +1,2 @@
 first
-second
\\ No newline at end of file
+second, changed
\\ No newline at end of file
"""


class ParseTestCase(testtools.TestCase):

    def test_subject_files_and_hunks(self):
        patch = patchfile.parse(fakes.PATCH_CONFIG.encode(), 'p.patch')
        self.assertEqual('virt: change line ten and add a hook module',
                         patch.subject)
        self.assertEqual(['nova/virt/config.py', 'nova/virt/hooks.py'],
                         [f.path for f in patch.files])
        self.assertFalse(patch.files[0].created)
        self.assertTrue(patch.files[1].created)
        hunk = patch.files[0].hunks[0]
        self.assertEqual(7, hunk.old_start)
        self.assertEqual(7, len(hunk.old_lines))
        self.assertIn(b'line 10\n', hunk.old_lines)
        self.assertIn(b'line ten\n', hunk.new_lines)

    def test_patch_prefix_in_subject_is_dropped(self):
        text = fakes.PATCH_API.replace('Subject: api:',
                                       'Subject: [PATCH 2/3] api:')
        self.assertEqual('api: capitalise d',
                         patchfile.parse(text.encode()).subject)

    def test_reversed_patch_swaps_sides(self):
        patch = patchfile.parse(fakes.PATCH_CONFIG.encode()).reversed()
        self.assertEqual('nova/virt/hooks.py', patch.files[0].path)
        self.assertTrue(patch.files[0].deleted)
        self.assertIn(b'line ten\n', patch.files[1].hunks[0].old_lines)

    def test_no_newline_at_end_of_file_round_trips(self):
        patch = patchfile.parse(NO_EOL_PATCH, 'eol.patch')
        content = b'first\nsecond'
        changed = engine.apply_file(patch, patch.files[0], content)
        self.assertEqual(b'first\nsecond, changed', changed)
        back = patch.reversed()
        self.assertEqual(content,
                         engine.apply_file(back, back.files[0], changed))

    def test_newline_added_at_end_is_not_ignored(self):
        patch = patchfile.parse(NO_EOL_PATCH, 'eol.patch')
        self.assertRaises(errors.ConflictError, engine.apply_file, patch,
                          patch.files[0], b'first\nsecond\n')

    def test_rename_is_refused(self):
        text = (b'Subject: x\n\ndiff --git a/nova/a.py b/nova/b.py\n'
                b'similarity index 100%\nrename from nova/a.py\n'
                b'rename to nova/b.py\n')
        exc = self.assertRaises(errors.PatchFormatError, patchfile.parse,
                                text, 'r.patch')
        self.assertIn('r.patch', str(exc))

    def test_paths_must_be_p1(self):
        text = fakes.PATCH_API.replace('--- a/nova', '--- nova').encode()
        exc = self.assertRaises(errors.PatchFormatError, patchfile.parse,
                                text, 'p0.patch')
        self.assertIn('is not -p1', str(exc))

    def test_truncated_hunk_is_reported(self):
        text = fakes.PATCH_API.rsplit(' e\n', 1)[0].encode()
        exc = self.assertRaises(errors.PatchFormatError, patchfile.parse,
                                text, 't.patch')
        self.assertIn('ends early', str(exc))

    def test_patch_without_diff_is_refused(self):
        self.assertRaises(errors.PatchFormatError, patchfile.parse,
                          b'Subject: nothing\n\njust words\n', 'e.patch')
