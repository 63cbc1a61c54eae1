"""Parse unified diffs as ``git format-patch`` writes them.

Only what a patch series of hooks needs is supported: modified, new and
deleted text files.  Renames, copies and binary diffs are refused so that
a series never depends on a feature one of its consumers (quilt, git am,
``patch -p1``) lacks.
"""

import dataclasses
import re
import typing as ty

from nova_xloud.series import errors

_HUNK_RE = re.compile(rb'^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@')
_NO_EOL = b'\\ No newline at end of file'


@dataclasses.dataclass
class Hunk:
    number: int
    header: str
    old_start: int
    new_start: int
    # Each line keeps its ending; the last line of a file that has no
    # newline at its end has none.
    old_lines: ty.List[bytes]
    new_lines: ty.List[bytes]

    def reversed(self):
        return Hunk(self.number, self.header, self.new_start,
                    self.old_start, self.new_lines, self.old_lines)


@dataclasses.dataclass
class FilePatch:
    path: str
    hunks: ty.List[Hunk]
    created: bool = False
    deleted: bool = False

    def reversed(self):
        return FilePatch(self.path, [h.reversed() for h in self.hunks],
                         created=self.deleted, deleted=self.created)


@dataclasses.dataclass
class Patch:
    name: str
    subject: str
    files: ty.List[FilePatch]

    def reversed(self):
        return Patch(self.name, self.subject,
                     [f.reversed() for f in reversed(self.files)])


def _strip_prefix(raw, name, line_no):
    path = raw.split(b'\t')[0].decode('utf-8')
    if path == '/dev/null':
        return None
    if not path.startswith(('a/', 'b/')):
        raise errors.PatchFormatError(
            '%s: line %d: path %r is not -p1 (a/... or b/...)'
            % (name, line_no, path))
    return path[2:]


def _subject(lines):
    for index, line in enumerate(lines):
        if line.startswith(b'Subject:'):
            subject = line[len(b'Subject:'):].strip()
            for follow in lines[index + 1:]:
                if not follow.startswith((b' ', b'\t')):
                    break
                subject += b' ' + follow.strip()
            return re.sub(r'^\[PATCH[^\]]*\]\s*', '',
                          subject.decode('utf-8'))
        if not line.strip():
            break
    return ''


def _count(group):
    # A hunk header omits the count when it is one line.
    return 1 if group is None else int(group)


def _read_hunk(lines, index, name, number):
    match = _HUNK_RE.match(lines[index])
    old_count = _count(match.group(2))
    new_count = _count(match.group(4))
    hunk = Hunk(number, lines[index].decode('utf-8', 'replace').rstrip(),
                int(match.group(1)), int(match.group(3)), [], [])
    index += 1
    old_seen = new_seen = 0
    while old_seen < old_count or new_seen < new_count:
        if index >= len(lines):
            raise errors.PatchFormatError(
                '%s: hunk #%d (%s) ends early' % (name, number, hunk.header))
        line = lines[index]
        body = line[1:]
        if line[:1] == b' ' or line in (b'\n', b'\r\n'):
            body = body if line[:1] == b' ' else line
            hunk.old_lines.append(body)
            hunk.new_lines.append(body)
            old_seen += 1
            new_seen += 1
        elif line[:1] == b'-':
            hunk.old_lines.append(body)
            old_seen += 1
        elif line[:1] == b'+':
            hunk.new_lines.append(body)
            new_seen += 1
        else:
            raise errors.PatchFormatError(
                '%s: hunk #%d (%s): unexpected line %d: %r'
                % (name, number, hunk.header, index + 1, line[:40]))
        index += 1
        index = _take_no_eol_marker(lines, index, hunk, line[:1])
    return hunk, index


def _take_no_eol_marker(lines, index, hunk, kind):
    if index < len(lines) and lines[index].rstrip(b'\r\n') == _NO_EOL:
        for side, applies in ((hunk.old_lines, kind in (b' ', b'-')),
                              (hunk.new_lines, kind in (b' ', b'+'))):
            if applies and side:
                side[-1] = side[-1].rstrip(b'\n')
        index += 1
    return index


def parse(data, name='<patch>'):
    """Parse the bytes of one patch file into a :class:`Patch`."""
    lines = data.splitlines(keepends=True)
    patch = Patch(name, _subject(lines), [])
    current = None
    old_path = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith(b'diff --git '):
            current = FilePatch(path='', hunks=[])
            patch.files.append(current)
            old_path = None
        elif current is not None and line.startswith(
                (b'rename ', b'copy ', b'GIT binary patch', b'Binary files')):
            raise errors.PatchFormatError(
                '%s: %s is a rename, copy or binary change, which the series'
                ' does not support' % (name, current.path or 'a file'))
        elif current is not None and line.startswith(b'new file mode'):
            current.created = True
        elif current is not None and line.startswith(b'deleted file mode'):
            current.deleted = True
        elif current is not None and line.startswith(b'--- '):
            old_path = _strip_prefix(line[4:].rstrip(b'\r\n'), name,
                                     index + 1)
        elif current is not None and line.startswith(b'+++ '):
            new_path = _strip_prefix(line[4:].rstrip(b'\r\n'), name,
                                     index + 1)
            current.path = new_path or old_path
        elif current is not None and line.startswith(b'@@ '):
            hunk, index = _read_hunk(lines, index, name,
                                     len(current.hunks) + 1)
            current.hunks.append(hunk)
            continue
        index += 1
    for file_patch in patch.files:
        if not file_patch.path:
            raise errors.PatchFormatError(
                '%s: a diff section has no ---/+++ lines' % name)
    if not patch.files:
        raise errors.PatchFormatError('%s: contains no diff' % name)
    return patch
