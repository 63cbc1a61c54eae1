"""Apply patches strictly: exact context (fuzz 0), all or nothing.

Every patch of a series is first applied to an in-memory view of the
target; files are written only once the whole series applied there.  A
conflict therefore leaves the target byte for byte as it was.
"""

import os
import tempfile

from nova_xloud.series import errors


def split_lines(data):
    """Split bytes into lines that keep their ``\\n`` (last may lack it)."""
    lines = data.split(b'\n')
    result = [line + b'\n' for line in lines[:-1]]
    if lines[-1]:
        result.append(lines[-1])
    return result


class PendingTree(object):
    """A directory seen through the changes not yet written to it."""

    def __init__(self, root):
        self.root = root
        self.changes = {}

    def _full(self, path):
        return os.path.join(self.root, *path.split('/'))

    def read(self, path):
        if path in self.changes:
            return self.changes[path]
        full = self._full(path)
        if not os.path.isfile(full):
            return None
        with open(full, 'rb') as handle:
            return handle.read()

    def stage(self, path, data):
        self.changes[path] = data

    def changed_paths(self):
        return sorted(self.changes)

    def write(self):
        """Write every staged change; undo those done if one fails."""
        done = []
        try:
            for path in self.changed_paths():
                full = self._full(path)
                before = _read_if_exists(full)
                _write_file(full, self.changes[path])
                done.append((full, before))
        except OSError as exc:
            for full, before in reversed(done):
                _write_file(full, before)
            raise errors.SeriesError(
                'could not write %s: %s; the files written before it were'
                ' restored' % (exc.filename or self.root, exc.strerror))


def _read_if_exists(full):
    if not os.path.exists(full):
        return None
    with open(full, 'rb') as handle:
        return handle.read()


def _write_file(full, data):
    if data is None:
        if os.path.exists(full):
            os.unlink(full)
        return
    directory = os.path.dirname(full)
    os.makedirs(directory, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=directory, prefix='.xloud-')
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(data)
        if os.path.exists(full):
            os.chmod(temp, os.stat(full).st_mode & 0o7777)
        else:
            os.chmod(temp, 0o644)
        os.replace(temp, full)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _find(lines, hunk, expected_at, lowest):
    """Where the hunk's old lines stand exactly, nearest the expected line.

    Like ``patch --fuzz=0`` the position may move (an offset), but no line
    of context may differ.
    """
    highest = len(lines) - len(hunk.old_lines)
    if not hunk.old_lines:
        return expected_at if lowest <= expected_at <= highest else None
    nearest_first = sorted(range(lowest, highest + 1),
                           key=lambda position: abs(position - expected_at))
    for position in nearest_first:
        if lines[position:position + len(hunk.old_lines)] == hunk.old_lines:
            return position
    return None


def _conflict(patch, file_patch, hunk, why):
    return errors.ConflictError(
        'patch %s does not apply: file %s, hunk #%d (%s): %s'
        % (patch.name, file_patch.path, hunk.number, hunk.header, why))


def apply_file(patch, file_patch, content):
    """Return the new content of one file, or raise ConflictError."""
    if file_patch.created and content is not None:
        raise errors.ConflictError(
            'patch %s does not apply: file %s already exists but the patch'
            ' creates it' % (patch.name, file_patch.path))
    if not file_patch.created and content is None:
        raise errors.ConflictError(
            'patch %s does not apply: file %s does not exist'
            % (patch.name, file_patch.path))
    lines = split_lines(content or b'')
    offset = 0
    lowest = 0
    for hunk in file_patch.hunks:
        start = hunk.old_start - 1 if hunk.old_lines else hunk.old_start
        position = _find(lines, hunk, start + offset, lowest)
        if position is None:
            raise _conflict(patch, file_patch, hunk,
                            'its context does not match the file')
        lines[position:position + len(hunk.old_lines)] = hunk.new_lines
        offset = position - start
        lowest = position + len(hunk.new_lines)
    data = b''.join(lines)
    if file_patch.deleted:
        if data:
            raise errors.ConflictError(
                'patch %s does not apply: file %s has content the patch does'
                ' not delete' % (patch.name, file_patch.path))
        return None
    return data


def apply_patches(tree, patches):
    """Stage every patch, in order, on the pending tree."""
    for patch in patches:
        for file_patch in patch.files:
            tree.stage(file_patch.path,
                       apply_file(patch, file_patch,
                                  tree.read(file_patch.path)))
